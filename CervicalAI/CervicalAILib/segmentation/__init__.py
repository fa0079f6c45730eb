"""Automatic segmentation of the primary cervical tumour and its anatomy (torch-free: onnxruntime).

    from CervicalAILib.segmentation import segment_case, write_segmentation
    result = segment_case({"T2W": t2, "ADC": adc, "DWI": dwi})   # co-registered, T2WI space
    write_segmentation(result, "out/")    # tumor.nii.gz, tumor_probability.nii.gz, segmentation.json
                                          # (+ organs.nii.gz, organs.json when the network has organs)

Preprocessing, patch size, outputs, post-processing, anatomy gate, OOD score and the training
range all come from the model bundle (`bundle.json`); a site's own nnU-Net model runs through
`segment_case(..., nnunet_model=FOLDER)` (torch + nnunetv2, imported only then). See
docs/segmentation.md.
"""

from CervicalAILib.segmentation.finish import SegmentationResult
from CervicalAILib.segmentation.inference import (
    SegmentationModel,
    load_model,
    segment_case,
)
from CervicalAILib.segmentation.outputs import (
    ORGAN_TABLE_FILE,
    ORGANS_FILE,
    write_segmentation,
)

__all__ = [
    "ORGANS_FILE",
    "ORGAN_TABLE_FILE",
    "SegmentationModel",
    "SegmentationResult",
    "load_model",
    "segment_case",
    "write_segmentation",
]
