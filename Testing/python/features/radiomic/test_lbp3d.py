"""The engine's LBP3D filter (CervicalAILib.features.radiomic.lbp3d) gives pyradiomics' images on any scipy.

pyradiomics' own filter needs `scipy.special.sph_harm`, which scipy 1.17 (Slicer 5.12's) removed;
on such a scipy it yields no image. Here, on the engine's scipy (which has both `sph_harm` and its
successor `sph_harm_y`), the engine's images equal pyradiomics' bit for bit, with either harmonic
function hidden in turn (the paths scipy 1.13 and scipy 1.17 take). The real scipy 1.13.1 and
1.17.1 are exercised by the compatibility tier (Testing/python/compat).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import scipy.special
import SimpleITK as sitk

from CervicalAILib.features.radiomic.lbp3d import lbp3d_images, spherical_harmonic

radiomics = pytest.importorskip("radiomics")
from radiomics import imageoperations  # noqa: E402

# pyradiomics' own filter (the reference) calls the deprecated sph_harm thousands of times
pytestmark = pytest.mark.filterwarnings("ignore:`scipy.special.sph_harm` is deprecated:DeprecationWarning")
needs_both = pytest.mark.skipif(not (hasattr(scipy.special, "sph_harm") and hasattr(scipy.special, "sph_harm_y")),
                                reason="needs a scipy with both sph_harm and sph_harm_y (1.15-1.16)")  # fmt: skip


def volume():
    rng = np.random.default_rng(7)
    array = rng.normal(300.0, 40.0, (12, 22, 20))
    array[4:9, 6:16, 5:14] += 120.0
    mask = np.zeros(array.shape, np.uint32)
    mask[4:9, 6:16, 5:14] = 1
    mask[6, 10, 9] = 0  # a hole: outside voxels inside the bounding box
    mask[2, 3, 3] = 1  # a lone voxel near the edge (samples interpolated up to the border)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.7, 0.7, 3.5))
    mask_image = sitk.GetImageFromArray(mask)
    mask_image.CopyInformation(image)
    return image, mask_image, mask == 1


def images(generator, inside):
    return {name: sitk.GetArrayFromImage(image)[inside] for image, name, _ in generator}


@needs_both
@pytest.mark.parametrize("hidden", [None, "sph_harm", "sph_harm_y"])
@pytest.mark.parametrize("levels", [2, 3])
def test_lbp3d_images_equal_pyradiomics_bit_for_bit(monkeypatch, hidden, levels):
    image, mask, inside = volume()
    theirs = images(imageoperations.getLBP3DImage(image, mask, lbp3DLevels=levels), inside)
    if hidden:  # sph_harm hidden: scipy 1.17's path; sph_harm_y hidden: scipy 1.13's
        monkeypatch.delattr(scipy.special, hidden)
    ours = images(lbp3d_images(image, mask, lbp3DLevels=levels), inside)
    expected = [f"lbp-3D-m{level}" for level in range(1, levels + 1)] + ["lbp-3D-k"]
    assert list(ours) == expected and sorted(theirs) == sorted(expected)
    for name in expected:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)
    assert ours["lbp-3D-m1"].std() > 0 and ours["lbp-3D-k"].std() > 0  # values that could be wrong


@needs_both
def test_without_sph_harm_pyradiomics_yields_nothing_and_the_engine_still_does(monkeypatch, caplog):
    image, mask, inside = volume()
    monkeypatch.delattr(scipy.special, "sph_harm")
    with caplog.at_level(logging.WARNING):
        assert list(imageoperations.getLBP3DImage(image, mask)) == []
    assert "cannot implement filter LBP 3D" in caplog.text  # the breakage on scipy 1.17
    assert [name for _, name, _ in lbp3d_images(image, mask)] == ["lbp-3D-m1", "lbp-3D-m2", "lbp-3D-k"]


@needs_both
def test_spherical_harmonic_maps_the_old_call_onto_the_new_function():
    polar = np.linspace(0.1, 3.0, 7)
    azimuth = np.linspace(-3.0, 3.0, 7)
    for degree in range(3):
        for order in range(-degree, degree + 1):
            old = scipy.special.sph_harm(order, degree, azimuth, polar)  # (order, degree, azimuth, polar)
            np.testing.assert_array_equal(spherical_harmonic(order, degree, azimuth, polar), old)
            np.testing.assert_array_equal(scipy.special.sph_harm_y(degree, order, polar, azimuth), old)


def test_the_extraction_uses_the_engines_filter_for_lbp3d():
    from CervicalAILib.features.radiomic.extraction import _image_filter

    assert _image_filter("LBP3D") is lbp3d_images
    assert _image_filter("Wavelet") is imageoperations.getWaveletImage
