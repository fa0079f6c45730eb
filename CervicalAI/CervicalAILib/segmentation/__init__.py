"""Automatic segmentation of the primary cervical tumour (torch-free: onnxruntime).

    from CervicalAILib.segmentation import segment_case, write_segmentation
    result = segment_case({"T2W": t2, "ADC": adc, "DWI": dwi})   # co-registered, T2WI space
    write_segmentation(result, "out/")    # tumor.nii.gz, tumor_probability.nii.gz, segmentation.json

Preprocessing, patch size, post-processing and the training range all come from the model
bundle (`bundle.json`); see docs/segmentation.md.
"""

from CervicalAILib.segmentation.inference import (
    SegmentationModel,
    SegmentationResult,
    load_model,
    segment_case,
)
from CervicalAILib.segmentation.outputs import MASK_FILE, PROBABILITY_FILE, SUMMARY_FILE, write_segmentation

__all__ = [
    "MASK_FILE",
    "PROBABILITY_FILE",
    "SUMMARY_FILE",
    "SegmentationModel",
    "SegmentationResult",
    "load_model",
    "segment_case",
    "write_segmentation",
]
