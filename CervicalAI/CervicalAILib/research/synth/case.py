"""One generated patient as the renderers return it (any generator version)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import SimpleITK as sitk


@dataclass
class SyntheticCase:
    """One generated patient: images and labels (SimpleITK), clinical values, latent truth."""

    case_id: str
    case_index: int
    images: dict[str, sitk.Image]  # case roles: T2W, ADC, DWI, CET1
    labels: dict[str, sitk.Image]  # written as labels/<name>.nii.gz
    clinical: dict[str, Any]
    latent: dict[str, Any]
    truth: dict[str, Any]
    timings: dict[str, float]  # CPU seconds per stage
    center: Any = None  # the centre's scanner profile (protocols for the DICOM headers)
    dwi_b0: sitk.Image | None = None  # the b=0 image of the diffusion series (DICOM output)
    # Series that are not case roles (e.g. the sagittal T2WI), written as <case>/<name>.nii.gz.
    extra_images: dict[str, sitk.Image] = field(default_factory=dict)
    # labels/organs.json: the label table of labels/organs.nii.gz (generator 2.x).
    label_table: dict[str, Any] | None = None
    generator_version: str = ""
