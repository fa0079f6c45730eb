"""Mask measurements against outside references: pyradiomics' shape features and MONAI's HD95."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from CervicalAILib.core.errors import InputError
from CervicalAILib.io import measurements as measure


def _blob(seed: int, shape=(14, 40, 44), spacing=(0.7, 0.9, 4.0), direction=None) -> sitk.Image:
    """An irregular 3D blob (union of random ellipsoids) on an anisotropic grid."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape).astype(float)
    array = np.zeros(shape, dtype=np.uint8)
    for _ in range(4):
        centre = np.array(shape) / 2 + rng.normal(0, [1.5, 4, 4])
        radii = rng.uniform([1.5, 5, 5], [3.5, 12, 12])
        array |= (((z - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + ((x - centre[2]) / radii[2]) ** 2 <= 1).astype(np.uint8)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin((-12.0, 30.5, -40.0))
    if direction is not None:
        image.SetDirection(direction)
    return image


def _oblique_direction(degrees: float) -> tuple[float, ...]:
    t = np.radians(degrees)
    rotation = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    tilt = np.array([[1, 0, 0], [0, np.cos(t / 2), -np.sin(t / 2)], [0, np.sin(t / 2), np.cos(t / 2)]])
    return tuple((rotation @ tilt).ravel())


def _pyradiomics_shape(mask: sitk.Image) -> dict[str, float]:
    from radiomics import shape

    image = sitk.Cast(mask, sitk.sitkFloat32)
    features = shape.RadiomicsShape(image, mask, label=1)
    features.enableAllFeatures()
    return {name: float(value) for name, value in features.execute().items()}


@pytest.mark.parametrize("seed, oblique", [(0, False), (1, False), (2, True)])
def test_max_diameter_and_volume_equal_pyradiomics(seed, oblique):
    mask = _blob(seed, direction=_oblique_direction(25) if oblique else None)
    reference = _pyradiomics_shape(mask)
    assert measure.max_diameter_mm(mask) == pytest.approx(reference["Maximum3DDiameter"], rel=1e-6)
    assert measure.volume_ml(mask) * 1000 == pytest.approx(reference["VoxelVolume"], rel=1e-9)


def test_box_diameter_is_edge_to_edge():
    array = np.zeros((6, 10, 10), dtype=np.uint8)
    array[1:4, 2:7, 3:5] = 1  # 3 x 5 x 2 voxels
    mask = sitk.GetImageFromArray(array)
    mask.SetSpacing((0.5, 1.0, 4.0))
    # surface points are the boundary face centres (marching-cubes vertices): the farthest pair
    # lies on the two z faces at opposite corner voxels, 0.5 x 4.0 x 12.0 mm apart
    assert measure.max_diameter_mm(mask) == pytest.approx(np.sqrt(0.5**2 + 4.0**2 + 12.0**2))
    line = np.zeros((6, 10, 10), dtype=np.uint8)
    line[1:4, 5, 5] = 1
    line_mask = sitk.GetImageFromArray(line)
    line_mask.SetSpacing((0.5, 1.0, 4.0))
    assert measure.max_diameter_mm(line_mask) == pytest.approx(12.0)  # edge to edge along the line
    assert measure.volume_ml(mask) == pytest.approx(30 * 2.0 / 1000)
    assert measure.largest_slice_index(mask) == 1


def test_hd95_equals_monai():
    import torch
    from monai.metrics import compute_hausdorff_distance

    a, b = _blob(3), _blob(4)
    ours = measure.hausdorff95_mm(a, b)
    to_tensor = lambda image: torch.from_numpy(measure.mask_array(image)[None, None].astype(np.float32))  # noqa: E731
    theirs = compute_hausdorff_distance(
        to_tensor(a), to_tensor(b), percentile=95, spacing=list(a.GetSpacing()[::-1])
    ).item()
    assert ours == pytest.approx(theirs, rel=1e-6)
    assert ours > 0


def test_dice_and_edit_metrics():
    a = _blob(5)
    array = measure.mask_array(a).astype(np.uint8)
    array[:, :, : array.shape[2] // 2] = 0  # the reader removes the left half
    b = sitk.GetImageFromArray(array)
    b.CopyInformation(a)
    n_a, n_b = measure.mask_array(a).sum(), array.sum()
    assert measure.dice(a, b) == pytest.approx(2 * n_b / (n_a + n_b))
    metrics = measure.edit_metrics(a, b)
    assert metrics.volume_change_ml == pytest.approx(measure.volume_ml(b) - measure.volume_ml(a))
    assert metrics.volume_change_percent < 0 and metrics.hd95_mm > 0
    assert measure.dice(a, a) == 1.0 and measure.hausdorff95_mm(a, a) == 0.0


def test_empty_and_mismatched_masks():
    a = _blob(6)
    empty = sitk.Image(a.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(a)
    assert measure.max_diameter_mm(empty) == 0.0
    assert measure.edit_metrics(a, empty).hd95_mm is None
    assert measure.edit_metrics(empty, a).volume_change_percent is None
    with pytest.raises(InputError, match="empty"):
        measure.largest_slice_index(empty)
    other = _blob(6, spacing=(1.0, 1.0, 4.0))
    with pytest.raises(InputError, match="same voxel grid"):
        measure.dice(a, other)
