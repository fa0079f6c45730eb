"""Training of the segmentation network (torch + MONAI) and its ONNX export into a bundle.

Only `cervicalai train-seg` and research scripts import this package; the run-time path
(`CervicalAILib.segmentation`) never does, so inference needs no torch. torch and monai are
imported inside functions.
"""

from CervicalAILib.research.training.dataset import CachedCase, build_cache, find_cases, prepare_case
from CervicalAILib.research.training.export import export_onnx, write_segmentation_bundle
from CervicalAILib.research.training.train import TrainConfig, default_preprocessing, train_segmentation

__all__ = [
    "CachedCase",
    "TrainConfig",
    "build_cache",
    "default_preprocessing",
    "export_onnx",
    "find_cases",
    "prepare_case",
    "train_segmentation",
    "write_segmentation_bundle",
]
