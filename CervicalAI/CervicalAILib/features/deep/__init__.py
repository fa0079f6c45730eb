"""Deep features: tumour crops through a pluggable ONNX encoder, one feature vector per sequence.

Torch-free (numpy, SimpleITK, onnxruntime), so it runs inside Slicer. The encoder bundle
(task "encoder") declares the crop, the intensity preprocessing and the network's input and
output; the default encoders (`default_bundle_path("encoder-2d")`, `("encoder-3d")`) are MONAI
ResNets trained self-supervised on synthetic tumours (`CervicalAILib.research.training.encoder`).
"""

from CervicalAILib.features.deep.config import (
    CropSpec,
    EncoderSpec,
    IntensitySpec,
    encoder_sections,
)
from CervicalAILib.features.deep.crops import Crop, align_mask, crop_2d, crop_3d, crop_tumour
from CervicalAILib.features.deep.encoder import Encoder, extract_deep_features, load_encoder, select_roles
from CervicalAILib.features.deep.preprocess import normalise_crop

__all__ = [
    "Crop",
    "CropSpec",
    "Encoder",
    "EncoderSpec",
    "IntensitySpec",
    "align_mask",
    "crop_2d",
    "crop_3d",
    "crop_tumour",
    "encoder_sections",
    "extract_deep_features",
    "load_encoder",
    "normalise_crop",
    "select_roles",
]
