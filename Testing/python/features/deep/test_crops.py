"""Tumour crops for the deep-feature encoders: slice choice, margin, spacing, geometry, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from deep_testdata import ellipsoid_case, make_image, rotation_z

from CervicalAILib.core.errors import BundleError, InputError
from CervicalAILib.features.deep import (
    CropSpec,
    IntensitySpec,
    align_mask,
    crop_2d,
    crop_3d,
    crop_tumour,
    normalise_crop,
)


def box_case(size=(140, 140, 12), spacing=(0.6, 0.6, 4.0), boxes=None, value=300.0, noise=5.0, seed=0, **kwargs):
    """Image + mask with axis-aligned boxes: `boxes` = {slice: (x0, x1, y0, y1)} inclusive voxel ranges."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(size[::-1], dtype=np.uint8)
    for k, (x0, x1, y0, y1) in (boxes or {}).items():
        mask[k, y0 : y1 + 1, x0 : x1 + 1] = 1
    values = 100.0 + value * mask + rng.normal(0, noise, mask.shape)
    return make_image(values.astype(np.float32), spacing, **kwargs), make_image(mask, spacing, **kwargs)


def spec2d(**overrides) -> CropSpec:
    base = {"mode": "2d", "size": [64, 64], "channels": 3, "margin_mm": 5.0, "spacing_mm": [1.0, 1.0], "fit": True,
            "masking": "none", "antialias": False}
    base.update(overrides)
    return CropSpec.from_dict(base)


def test_largest_slice_and_its_neighbours_are_the_channels():
    # slice 6 holds the largest box (20 x 9 voxels of 0.6 mm = 12 x 5.4 mm); 5 and 7 smaller
    boxes = {4: (30, 35, 30, 33), 5: (28, 40, 30, 36), 6: (25, 44, 30, 38), 7: (27, 41, 31, 37), 8: (30, 33, 32, 34)}
    boxes = {k: (x0 + 30, x1 + 30, y0 + 30, y1 + 30) for k, (x0, x1, y0, y1) in boxes.items()}  # centred in the image
    image, mask = box_case(boxes=boxes)
    crop = crop_2d(image, mask, spec2d())
    assert crop.slice_indices == (5, 6, 7)
    assert crop.image.shape == crop.mask.shape == (3, 64, 64)
    assert crop.spacing_mm == (1.0, 1.0)
    # the centre channel shows the 12 x 5.4 mm box at 1 mm: 12 columns x 6 rows, centred in the crop
    rows, cols = np.nonzero(crop.mask[1])
    assert (cols.min(), cols.max(), rows.min(), rows.max()) == (26, 37, 29, 34)
    assert crop.mask[1].sum() == 72
    # the box covers the in-plane union of the three channel slices, so every channel's tumour is inside
    assert all(crop.mask[c].sum() > 0 for c in range(3))
    assert np.all(crop.valid)
    # intensities come from the right slices: tumour ~400, background ~100
    assert np.median(crop.image[1][crop.mask[1]]) == pytest.approx(400, abs=5)
    assert np.median(crop.image[1][~crop.mask[1]]) == pytest.approx(100, abs=5)


def test_explicit_slice_and_clamping_at_the_volume_ends():
    image, mask = box_case(boxes={0: (20, 40, 20, 40), 1: (25, 35, 25, 35)})
    crop = crop_2d(image, mask, spec2d())
    assert crop.slice_indices == (0, 0, 1)  # no slice -1: the end slice is repeated
    assert np.array_equal(crop.image[0], crop.image[1])
    crop = crop_2d(image, mask, spec2d(), slice_index=1)
    assert crop.slice_indices == (0, 1, 2)
    replicate = crop_2d(image, mask, spec2d(channel_mode="replicate"))
    assert replicate.slice_indices == (0, 0, 0)
    with pytest.raises(InputError, match="outside the image"):
        crop_2d(image, mask, spec2d(), slice_index=40)


def test_margin_and_scale_to_fit():
    boxes = {6: (25, 44, 30, 38)}  # 12 x 5.4 mm
    image, mask = box_case(boxes=boxes)
    # no declared spacing: the box plus 4 mm on each side fills the 32-pixel crop: (12 + 8) / 32 mm
    crop = crop_2d(image, mask, spec2d(size=[32, 32], spacing_mm=None, margin_mm=4.0))
    assert crop.spacing_mm == pytest.approx((0.625, 0.625))
    rows, cols = np.nonzero(crop.mask[1])
    assert (cols.min(), cols.max()) == (6, 25)  # 4 mm = 6.4 px of margin each side, 20 px of tumour
    # a declared spacing is kept while the tumour fits ...
    assert crop_2d(image, mask, spec2d(margin_mm=4.0)).spacing_mm == (1.0, 1.0)
    # ... and enlarged (aspect kept) when it does not: 12 + 2 * 30 mm = 72 mm > 64 mm
    wide = crop_2d(image, mask, spec2d(margin_mm=30.0, spacing_mm=[1.0, 2.0]))
    assert wide.spacing_mm == pytest.approx((72 / 64, 2 * 72 / 64))
    # fit false: the spacing stays and the crop says it cuts the tumour
    cut = crop_2d(image, mask, spec2d(margin_mm=30.0, fit=False))
    assert cut.spacing_mm == (1.0, 1.0)
    assert cut.warnings and "cuts the tumour" in cut.warnings[0]


def test_oblique_direction_and_origin_do_not_change_the_crop():
    straight = ellipsoid_case(seed=3)
    oblique = ellipsoid_case(seed=3, direction=rotation_z(30.0) @ np.diag([1, 1, 1]), origin=(100.0, -50.0, 7.0))
    spec = spec2d(antialias=True)
    a, b = crop_2d(*straight, spec), crop_2d(*oblique, spec)
    assert a.slice_indices == b.slice_indices
    np.testing.assert_allclose(a.image, b.image, atol=1e-3)
    assert np.array_equal(a.mask, b.mask)
    # the crop centre is the tumour's bounding-box centre, in LPS of each image
    tumour = np.argwhere(sitk.GetArrayFromImage(oblique[1]))[:, ::-1]
    center = ((tumour[:, 0].min() + tumour[:, 0].max()) / 2, (tumour[:, 1].min() + tumour[:, 1].max()) / 2, b.slice_indices[1])
    expected = oblique[0].TransformContinuousIndexToPhysicalPoint([float(c) for c in center])
    np.testing.assert_allclose(b.center_lps, expected, atol=1e-6)
    spec3 = CropSpec.from_dict({"mode": "3d", "size": [16, 32, 32], "margin_mm": 3.0, "spacing_mm": [1.5, 1.5, 3.0]})
    np.testing.assert_allclose(crop_3d(*straight, spec3).image, crop_3d(*oblique, spec3).image, atol=1e-3)


def test_3d_crop_extent_spacing_and_outside_voxels():
    # box of 20 x 10 voxels (0.6 mm) on slices 1..4 (4 mm): 12 x 6 x 16 mm, near the first slice
    boxes = {k: (55, 74, 50, 59) for k in range(1, 5)}
    image, mask = box_case(boxes=boxes)
    spec = CropSpec.from_dict({"mode": "3d", "size": [16, 32, 32], "margin_mm": 4.0, "spacing_mm": [1.0, 1.0, 2.0],
                               "masking": "tumor", "antialias": False})
    crop = crop_3d(image, mask, spec)
    assert crop.image.shape == (1, 16, 32, 32)
    assert crop.spacing_mm == (1.0, 1.0, 2.0)  # 16 + 8 mm fits 16 slices of 2 mm
    slices, rows, cols = np.nonzero(crop.mask[0])
    assert cols.max() - cols.min() + 1 == 12 and rows.max() - rows.min() + 1 == 6
    assert slices.max() - slices.min() + 1 == 8
    # the box reaches below the first slice of the image: those voxels are flagged and set to background
    assert not crop.valid.all() and crop.valid.any()
    x = normalise_crop(crop, IntensitySpec.from_dict({"background": -7.0}, 1), spec)
    assert np.all(x[~crop.valid] == -7.0) and np.all(x[~crop.mask] == -7.0)
    assert np.all(x[crop.mask & crop.valid] != -7.0)


def test_antialiasing_when_the_crop_is_coarser_than_the_image():
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 50, (6, 120, 120)).astype(np.float32)
    mask = np.zeros(noise.shape, np.uint8)
    mask[3, 50:69, 50:69] = 1  # odd size: the crop's samples fall on voxel centres
    image, label = make_image(noise, (0.5, 0.5, 4.0)), make_image(mask, (0.5, 0.5, 4.0))
    sharp = crop_2d(image, label, spec2d(size=[24, 24], spacing_mm=[2.0, 2.0], antialias=False))
    smooth = crop_2d(image, label, spec2d(size=[24, 24], spacing_mm=[2.0, 2.0], antialias=True))
    # sigma = (2 - 0.5) / 2 mm = 1.5 px of the source: white noise sd drops by 1 / (2 sqrt(pi) 1.5) = 0.19
    assert sharp.image.std() == pytest.approx(50, rel=0.1)
    assert smooth.image.std() == pytest.approx(50 * 0.188, rel=0.15)


def test_intensity_preprocessing_steps():
    image, mask = ellipsoid_case(texture=60.0, seed=2)
    spec = spec2d(masking="none")
    crop = crop_2d(image, mask, spec)
    z = normalise_crop(crop, IntensitySpec.from_dict({"clip_percentiles": None, "scale": "zscore"}, 3), spec)
    assert z.dtype == np.float32 and z.shape == (3, 64, 64)
    assert z.mean() == pytest.approx(0.0, abs=1e-5) and z.std() == pytest.approx(1.0, abs=1e-5)
    # percentile clip before the z-score: nothing beyond the clipped range survives
    clipped = normalise_crop(crop, IntensitySpec.from_dict({"clip_percentiles": [5, 95], "scale": "none"}, 3), spec)
    low, high = np.percentile(crop.image.astype(np.float64), [5, 95])
    assert clipped.min() == pytest.approx(low, rel=1e-5) and clipped.max() == pytest.approx(high, rel=1e-5)
    # ImageNet style: min-max to [0, 1] then per-channel mean / sd
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    imagenet = normalise_crop(
        crop, IntensitySpec.from_dict({"clip_percentiles": None, "scale": "minmax", "channel_mean": mean, "channel_std": std}, 3), spec
    )
    raw = crop.image.astype(np.float64)
    unit = (raw - raw.min()) / (raw.max() - raw.min())
    expected = (unit - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    np.testing.assert_allclose(imagenet, expected, atol=1e-5)
    # statistics over the tumour only: the tumour voxels get mean 0, sd 1
    tumour = normalise_crop(crop, IntensitySpec.from_dict({"clip_percentiles": None, "stats_region": "tumor"}, 3), spec)
    assert tumour[crop.mask].mean() == pytest.approx(0.0, abs=1e-5)
    assert tumour[crop.mask].std() == pytest.approx(1.0, abs=1e-5)


def test_mask_on_another_grid_is_resampled_with_a_warning():
    image, mask = ellipsoid_case(seed=4)
    fine = sitk.Image([160, 144, 40], sitk.sitkUInt8)
    fine.SetSpacing((0.4, 0.4, 2.0))
    fine.SetOrigin(image.GetOrigin())
    fine = sitk.Resample(mask, fine, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    warnings: list[str] = []
    spec = spec2d()
    moved = crop_tumour(image, fine, spec, role="ADC", warnings=warnings)
    same = crop_tumour(image, mask, spec, role="ADC")
    assert any("another voxel grid" in w and "ADC" in w for w in warnings)
    overlap = (moved.mask & same.mask).sum() * 2 / (moved.mask.sum() + same.mask.sum())
    assert overlap > 0.9


def test_partly_outside_mask_warns_about_the_lost_volume():
    image, mask = ellipsoid_case(seed=5)
    shifted = sitk.Image(mask)
    shifted.SetOrigin(tuple(np.add(mask.GetOrigin(), (-45.0, 0.0, 0.0))))  # tumour now mostly left of the image
    warnings: list[str] = []
    aligned = align_mask(image, shifted, "T2W", warnings)
    assert sitk.GetArrayViewFromImage(aligned).sum() > 0
    assert "% of the tumour volume lies inside" in warnings[0]


def test_bad_masks_are_refused():
    image, mask = ellipsoid_case()
    empty = sitk.Image(mask.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(mask)
    with pytest.raises(InputError, match="mask is empty"):
        crop_tumour(image, empty, spec2d())
    far = sitk.Image(mask)
    far.SetOrigin((500.0, 500.0, 500.0))
    with pytest.raises(InputError, match="does not overlap the T2W image"):
        crop_tumour(image, far, spec2d(), role="T2W")
    with pytest.raises(InputError, match="3D"):
        crop_tumour(image[:, :, 5], mask[:, :, 5], spec2d())
    one_voxel = sitk.Image(empty)
    one_voxel[40, 35, 10] = 1
    crop = crop_tumour(image, one_voxel, spec2d(spacing_mm=None, margin_mm=0.0, size=[8, 8]))
    assert crop.mask[1].sum() == 64 and crop.spacing_mm == pytest.approx((0.1, 0.1))  # one voxel fills the crop


def test_nan_around_the_tumour_is_refused():
    image, mask = ellipsoid_case()
    values = sitk.GetArrayFromImage(image).astype(np.float32)
    values[10, 35, 40] = np.nan
    broken = make_image(values)
    broken.CopyInformation(image)
    with pytest.raises(InputError, match="NaN"):
        crop_tumour(broken, mask, spec2d())


def test_crop_spec_validation():
    with pytest.raises(BundleError, match="odd number"):
        CropSpec.from_dict({"mode": "2d", "size": [32, 32], "channels": 2})
    with pytest.raises(BundleError, match="3 positive integers"):
        CropSpec.from_dict({"mode": "3d", "size": [32, 32]})
    with pytest.raises(BundleError, match="mode"):
        CropSpec.from_dict({"mode": "4d", "size": [32, 32]})
    with pytest.raises(BundleError, match="margin_mm"):
        CropSpec.from_dict({"mode": "2d", "size": [32, 32], "margin_mm": -1})
    with pytest.raises(BundleError, match="fit"):
        CropSpec.from_dict({"mode": "2d", "size": [32, 32], "spacing_mm": None, "fit": False})
    with pytest.raises(BundleError, match="channel_std"):
        IntensitySpec.from_dict({"channel_mean": [0.5, 0.5, 0.5]}, 3)
    with pytest.raises(BundleError, match="3 numbers"):
        IntensitySpec.from_dict({"channel_mean": [0.5], "channel_std": [0.2]}, 3)
    assert CropSpec.from_dict(spec2d().to_dict()) == spec2d()
