"""Writing one synthetic case folder (NIfTI case-folder contract, or a DICOM study).

NIfTI layout (io.case contract):

    <case>/T2W.nii.gz ADC.nii.gz DWI.nii.gz CET1.nii.gz
    <case>/T2W_SAG.nii.gz                          (generator 2: sagittal T2WI, not a case role)
    <case>/labels/tumor.nii.gz tumor_ADC.nii.gz tumor_DWI.nii.gz tumor_CET1.nii.gz
    <case>/labels/organs.nii.gz lymph_nodes.nii.gz tumor_necrosis.nii.gz
    <case>/labels/organs.json                      (generator 2: the organ label table)
    <case>/clinical.json generator_truth.json

DICOM layout: the images become `<case>/dicom/<NN>_<series>/IM0001.dcm ...` (one study, one
series per sequence); labels, clinical.json and generator_truth.json are written as above.

SimpleITK's gzip stream carries no time stamp, so the same case always gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path

from CervicalAILib.core import atomic
from CervicalAILib.io.images import write_image
from CervicalAILib.research.synth.case import SyntheticCase
from CervicalAILib.research.synth.dicom import write_case_dicom


def write_case_folder(case: SyntheticCase, folder: str | Path, fmt: str = "nifti", seed: int = 0,
                      overwrite: bool = False) -> Path:
    """Write `case` to `folder` (built under a temporary name, renamed when complete)."""
    folder = Path(folder)
    with atomic.atomic_directory(folder, overwrite=overwrite) as tmp:
        if fmt == "nifti":
            for role, image in {**case.images, **case.extra_images}.items():
                write_image(image, tmp / f"{role}.nii.gz")
        else:
            write_case_dicom(case, tmp / "dicom", seed)
        (tmp / "labels").mkdir()
        for name, image in case.labels.items():
            write_image(image, tmp / "labels" / f"{name}.nii.gz")
        if case.label_table is not None:
            (tmp / "labels" / "organs.json").write_text(atomic.to_json(case.label_table), encoding="utf-8")
        clinical = dict(case.clinical)
        (tmp / "clinical.json").write_text(atomic.to_json(clinical), encoding="utf-8")
        (tmp / "generator_truth.json").write_text(atomic.to_json(case.truth), encoding="utf-8")
    return folder
