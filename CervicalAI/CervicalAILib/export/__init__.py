"""Export of corrected tumour masks as annotation data sets (issue 8).

    from CervicalAILib.export import export_nnunet, export_dicom_seg, export_mask_file, Deidentifier, load_key

- `nnunet`: nnU-Net v2 raw data set (`DatasetNNN_NAME/imagesTr, labelsTr, dataset.json`).
- `dicom_seg`: DICOM SEG (highdicom) referencing the source T2WI series, SNOMED CT coded.
- `seg_nrrd`: 3D Slicer's `.seg.nrrd`; `masks`: NIfTI masks; `reference`: the reference grid and the mask on it.
- `deidentify`: DICOM PS3.15 Basic Profile with keyed (HMAC-SHA256) pseudonyms, UIDs and dates.
- `manifest`: provenance manifest with the SHA-256 of every exported file.

See docs/export.md.
"""

from CervicalAILib.export.deidentify import Deidentifier, load_key
from CervicalAILib.export.dicom_seg import export_dicom_seg, read_dicom_seg
from CervicalAILib.export.manifest import mask_provenance, verify_manifest
from CervicalAILib.export.masks import export_mask_file, write_nifti_mask
from CervicalAILib.export.nnunet import check_nnunet_dataset, export_nnunet
from CervicalAILib.export.reference import load_reference_series, mask_on_reference
from CervicalAILib.export.seg_nrrd import write_seg_nrrd

__all__ = [
    "Deidentifier",
    "check_nnunet_dataset",
    "export_dicom_seg",
    "export_mask_file",
    "export_nnunet",
    "load_key",
    "load_reference_series",
    "mask_on_reference",
    "mask_provenance",
    "read_dicom_seg",
    "verify_manifest",
    "write_nifti_mask",
    "write_seg_nrrd",
]
