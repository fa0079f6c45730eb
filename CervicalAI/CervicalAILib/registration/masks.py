"""The tumour mask on each sequence's own grid.

Features (radiomics, deep) are computed on each sequence's own acquisition grid, as in seed 004
where the tumour was delineated on every sequence: intensities are never interpolated twice (once
onto the T2WI grid, again by pyradiomics' resampling). The reader's mask lives on the T2WI grid;
it is carried onto the DWI/ADC/CE-T1WI grids with the registration transform (T2WI -> sequence).
A case that has its own per-sequence delineation (`labels/tumor_<ROLE>`) uses it as it is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from CervicalAILib.core.errors import InputError
from CervicalAILib.io.geometry import same_grid

log = logging.getLogger(__name__)

# Interpolated fractions within this of 0.5 count as inside (see mask_on_grid). Registration
# parameters differ by about 1e-7 between SimpleITK builds; a fraction moves about as much.
TIE_MARGIN = 1e-4


@dataclass
class SequenceMask:
    mask: sitk.Image  # uint8 0/1 on the sequence's grid
    source: str  # "sequence label", "same grid", "registration transform", "scanner geometry"


def mask_on_grid(mask: sitk.Image, image: sitk.Image, transform: sitk.Transform | None = None) -> sitk.Image:
    """Carry a binary mask onto `image`'s grid; `transform` maps mask (T2WI) points to image points.

    The mask is interpolated linearly as a fraction and thresholded at 0.5, which keeps the
    tumour volume when the target grid is coarser (nearest neighbour would alias thin parts away).
    A voxel exactly halfway between an inside and an outside voxel (common: CE-T1WI slices that
    fall midway between T2WI slices) counts as inside, with a margin (TIE_MARGIN) so that the
    last-digit differences of a registration between SimpleITK builds cannot flip whole slabs.
    """
    inverse = transform.GetInverse() if transform is not None else sitk.Transform()
    fraction = sitk.Resample(sitk.Cast(mask != 0, sitk.sitkFloat32), image, inverse, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return sitk.Cast(fraction >= 0.5 - TIE_MARGIN, sitk.sitkUInt8)


def sequence_masks(
    images: dict[str, sitk.Image],
    t2_mask: sitk.Image | None,
    transforms: dict[str, sitk.Transform] | None = None,
    sequence_labels: dict[str, sitk.Image] | None = None,
    warnings: list[str] | None = None,
) -> dict[str, SequenceMask]:
    """The tumour mask on each role's own grid, and where it came from.

    Order of preference per role: its own delineation in `sequence_labels` (on its grid); the
    T2WI mask when the image is on the T2WI grid; the T2WI mask carried by the registration
    transform; the T2WI mask carried by the scanner geometry alone (a warning says so).
    A role whose mask ends up empty (tumour outside that sequence's field of view) is an error.
    """
    transforms = transforms or {}
    sequence_labels = sequence_labels or {}
    warnings = warnings if warnings is not None else []
    result: dict[str, SequenceMask] = {}
    for role, image in images.items():
        label = sequence_labels.get(role)
        if label is not None and same_grid(label, image):
            result[role] = SequenceMask(sitk.Cast(label != 0, sitk.sitkUInt8), "sequence label")
        elif t2_mask is None:
            raise InputError(f"no tumour mask for {role}: give a T2WI mask or a {role} delineation")
        elif same_grid(t2_mask, image):
            result[role] = SequenceMask(sitk.Cast(t2_mask != 0, sitk.sitkUInt8), "same grid")
        elif role in transforms:
            result[role] = SequenceMask(mask_on_grid(t2_mask, image, transforms[role]), "registration transform")
        else:
            message = f"{role}: no registration transform; the tumour mask was carried by the scanner geometry only"
            warnings.append(message)
            log.warning(message)
            result[role] = SequenceMask(mask_on_grid(t2_mask, image), "scanner geometry")
        if not np.any(sitk.GetArrayViewFromImage(result[role].mask)):
            raise InputError(f"the tumour mask does not reach the {role} image (outside its field of view)")
    return result
