"""The T2WI tumour mask carried onto each sequence's own grid."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from CervicalAILib.core.errors import InputError
from CervicalAILib.io.case import read_transforms
from CervicalAILib.registration.masks import mask_on_grid, sequence_masks
from CervicalAILib.registration.rigid import write_transform


def _grid(size, spacing, origin=(0.0, 0.0, 0.0)):
    image = sitk.Image(size, sitk.sitkFloat32)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    return image


def _sphere_mask(reference, centre_mm, radius_mm):
    array = np.zeros(reference.GetSize()[::-1], dtype=np.uint8)
    k, j, i = np.indices(array.shape)
    points = np.stack([i, j, k], axis=-1).reshape(-1, 3).astype(float)
    matrix = np.asarray(reference.GetDirection()).reshape(3, 3) @ np.diag(reference.GetSpacing())
    physical = points @ matrix.T + np.asarray(reference.GetOrigin())
    inside = np.linalg.norm(physical - np.asarray(centre_mm), axis=1) <= radius_mm
    array.reshape(-1)[inside] = 1
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(reference)
    return mask


def test_translation_moves_the_mask_and_keeps_its_volume():
    t2 = _grid((80, 80, 20), (0.7, 0.7, 4.0))
    dwi = _grid((30, 30, 16), (2.0, 2.0, 5.0), origin=(-2.0, -3.0, 1.0))
    mask = _sphere_mask(t2, (28.0, 28.0, 40.0), 12.0)
    shift = sitk.TranslationTransform(3, (3.0, -2.0, 5.0))  # T2 point -> DWI point
    moved = mask_on_grid(mask, dwi, shift)
    expected = _sphere_mask(dwi, (31.0, 26.0, 45.0), 12.0)
    overlap = np.logical_and(sitk.GetArrayFromImage(moved), sitk.GetArrayFromImage(expected)).sum()
    dice = 2 * overlap / (sitk.GetArrayFromImage(moved).sum() + sitk.GetArrayFromImage(expected).sum())
    assert dice > 0.85
    volume = lambda m: sitk.GetArrayFromImage(m).sum() * np.prod(m.GetSpacing())  # noqa: E731
    assert volume(moved) == pytest.approx(volume(mask), rel=0.15)


def test_a_voxel_halfway_between_slices_does_not_flip_with_registration_noise():
    # CE-T1WI slices of 2 mm between T2WI slices of 4 mm: every other one lies exactly halfway
    t2 = _grid((12, 12, 4), (1.0, 1.0, 4.0))
    array = np.zeros((4, 12, 12), dtype=np.uint8)
    array[:2, 3:9, 3:9] = 1  # inside on the T2WI slices at z = 0 and 4 mm, outside at 8 and 12 mm
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(t2)
    ce = _grid((12, 12, 7), (1.0, 1.0, 2.0))  # z = 0, 2, ..., 12 mm: z = 6 mm is halfway between in and out
    results = [sitk.GetArrayFromImage(mask_on_grid(mask, ce, sitk.TranslationTransform(3, (0.0, 0.0, dz))))
               for dz in (-2e-7, 0.0, 2e-7)]  # the last-digit differences of two SimpleITK builds
    assert results[0][3].sum() == 36  # the halfway slice counts as inside
    assert all(np.array_equal(results[0], other) for other in results[1:])
    assert [int(s.sum()) for s in results[0]] == [36, 36, 36, 36, 0, 0, 0]
    # beyond the margin the fraction decides as before
    below = sitk.GetArrayFromImage(mask_on_grid(mask, ce, sitk.TranslationTransform(3, (0.0, 0.0, -0.01))))
    assert below[3].sum() == 0


def test_sources_in_order_of_preference(tmp_path):
    t2 = _grid((40, 40, 10), (1.0, 1.0, 4.0))
    adc = _grid((20, 20, 8), (2.0, 2.0, 5.0))
    cet1 = _grid((40, 40, 20), (1.0, 1.0, 2.0))
    mask = _sphere_mask(t2, (20.0, 20.0, 20.0), 8.0)
    own = _sphere_mask(cet1, (21.0, 20.0, 20.0), 7.0)
    write_transform(sitk.TranslationTransform(3, (1.0, 0.0, 0.0)), tmp_path / "transforms" / "ADC.tfm")
    transforms = read_transforms(tmp_path)
    warnings: list[str] = []
    masks = sequence_masks(
        {"T2W": t2, "ADC": adc, "CET1": cet1, "DWI": adc}, mask, {"ADC": transforms["ADC"]}, {"CET1": own}, warnings
    )
    assert {role: m.source for role, m in masks.items()} == {
        "T2W": "same grid", "ADC": "registration transform", "CET1": "sequence label", "DWI": "scanner geometry",
    }  # fmt: skip
    assert np.array_equal(sitk.GetArrayFromImage(masks["CET1"].mask), sitk.GetArrayFromImage(own))
    assert len(warnings) == 1 and "DWI" in warnings[0]


def test_mask_outside_a_sequence_is_refused():
    t2 = _grid((40, 40, 10), (1.0, 1.0, 4.0))
    far = _grid((20, 20, 8), (2.0, 2.0, 5.0), origin=(500.0, 0.0, 0.0))
    mask = _sphere_mask(t2, (20.0, 20.0, 20.0), 8.0)
    with pytest.raises(InputError, match="does not reach the ADC image"):
        sequence_masks({"ADC": far}, mask)
