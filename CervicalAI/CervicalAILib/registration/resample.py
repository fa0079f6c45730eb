"""Sequences onto the T2WI grid with the transforms of the rule (`registration.rule`).

Segmentation (its network reads every channel on the T2WI grid) and segmentation training resample
here, the same way `study register` does (`register_to_t2`): linear interpolation, float32, 0 outside
the sequence's field of view. A sequence already on the T2WI grid is used as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import SimpleITK as sitk

from CervicalAILib.contracts.case_folder import REQUIRED_ROLE
from CervicalAILib.io.geometry import resample_to_reference
from CervicalAILib.registration.rule import Transforms, TransformSource


def onto_t2_grid(images: Mapping[str, sitk.Image], roles: Sequence[str], transforms: Transforms) -> dict[str, sitk.Image]:
    """The T2WI and each other role of `roles` on the T2WI grid (T2WI first, then `roles`' order)."""
    t2 = images[REQUIRED_ROLE]
    on_grid = {REQUIRED_ROLE: t2}
    for role in roles:
        if role == REQUIRED_ROLE:
            continue
        if transforms.source[role] is TransformSource.SAME_GRID:
            on_grid[role] = images[role]
        else:  # a role without a transform (scanner geometry) is resampled as it lies in space
            on_grid[role] = resample_to_reference(images[role], t2, transforms.by_role.get(role), sitk.sitkLinear, 0.0,
                                                  sitk.sitkFloat32)
    return on_grid
