"""The one rule that decides each sequence's transform (registration/rule.py), branch by branch."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from CervicalAILib.io.geometry import same_grid
from CervicalAILib.registration.resample import onto_t2_grid
from CervicalAILib.registration.rule import TransformSource, resolve_transforms, stored_in_use


def _blobs(size, spacing, shift_mm=(0.0, 0.0, 0.0)) -> sitk.Image:
    """Two ellipsoids of different brightness, centred in physical space, moved by `shift_mm`."""
    image = sitk.Image(size, sitk.sitkFloat32)
    image.SetSpacing(spacing)
    image.SetOrigin([-(n - 1) * s / 2 for n, s in zip(size, spacing)])
    k, j, i = np.indices(size[::-1]).astype(float)
    x, y, z = (np.asarray(image.GetOrigin()) + np.asarray(spacing) * np.stack([i, j, k], -1).reshape(-1, 3)).T
    x, y, z = x - shift_mm[0], y - shift_mm[1], z - shift_mm[2]
    array = 100.0 * np.exp(-((x / 22) ** 2 + (y / 16) ** 2 + (z / 20) ** 2))
    array += 80.0 * np.exp(-(((x - 8) / 6) ** 2 + ((y + 4) / 5) ** 2 + ((z - 5) / 6) ** 2))
    result = sitk.GetImageFromArray(array.reshape(size[::-1]).astype(np.float32))
    result.CopyInformation(image)
    return result


T2_SIZE, T2_SPACING = (48, 48, 16), (1.5, 1.5, 4.0)
DWI_SIZE, DWI_SPACING = (24, 24, 12), (3.0, 3.0, 5.0)


def _study(shift=(2.0, -1.5, 3.0)):
    t2 = _blobs(T2_SIZE, T2_SPACING)
    dwi = _blobs(DWI_SIZE, DWI_SPACING, shift)
    adc = _blobs(DWI_SIZE, DWI_SPACING, shift)  # one acquisition with the DWI: one grid
    on_t2 = _blobs(T2_SIZE, T2_SPACING) * 0.5  # a sequence on the T2WI grid (as after `study register`)
    return {"T2W": t2, "DWI": dwi, "ADC": adc, "CET1": on_t2}


def test_same_grid_stored_and_from_stored_adc():
    images = _study()
    stored = {"ADC": sitk.TranslationTransform(3, (2.0, -1.5, 3.0)), "CET1": sitk.TranslationTransform(3, (9.0, 0, 0))}
    found = resolve_transforms(images, ["T2W", "ADC", "DWI", "CET1"], stored)
    assert found.source == {"ADC": TransformSource.STORED, "DWI": TransformSource.FROM_ADC,
                            "CET1": TransformSource.SAME_GRID}  # same grid wins over a stored transform
    assert found.by_role["DWI"] is stored["ADC"] and found.by_role["ADC"] is stored["ADC"]
    assert "CET1" not in found.by_role and found.registered == [] and found.results == {}
    # the stored transforms a provenance check must cover: those that move a sequence
    assert stored_in_use(images, stored) == ["ADC"]


def test_registered_now_dwi_takes_the_adc_transform_even_unrequested():
    images = _study()
    found = resolve_transforms(images, ["DWI"])
    assert found.source == {"DWI": TransformSource.FROM_ADC} and found.registered == ["DWI"]
    assert found.results["DWI"].settings["transform_from"] == "ADC"  # registered with the ADC (register_to_t2)
    translation = np.asarray(found.by_role["DWI"].GetTranslation())
    assert np.allclose(translation, (2.0, -1.5, 3.0), atol=0.6), translation
    # a DWI on a grid of its own is registered by itself
    alone = {"T2W": images["T2W"], "DWI": images["DWI"]}
    found = resolve_transforms(alone, ["T2W", "DWI"])
    assert found.source == {"DWI": TransformSource.REGISTERED} and "transform_from" not in found.results["DWI"].settings
    on_grid = onto_t2_grid(alone, ["T2W", "DWI"], found)
    assert on_grid["T2W"] is alone["T2W"] and same_grid(on_grid["DWI"], alone["T2W"])
    assert on_grid["DWI"].GetPixelID() == sitk.sitkFloat32


def test_without_registration_the_scanner_geometry_is_used():
    images = _study()
    found = resolve_transforms(images, ["DWI", "CET1", "ADC"], register=False)
    assert found.source == {"DWI": TransformSource.SCANNER, "CET1": TransformSource.SAME_GRID,
                            "ADC": TransformSource.SCANNER}
    assert found.by_role == {} and found.registered == []
    on_grid = onto_t2_grid(images, ["DWI", "CET1"], found)
    assert list(on_grid) == ["T2W", "DWI", "CET1"] and on_grid["CET1"] is images["CET1"]
    # a role the study lacks is skipped
    assert resolve_transforms({"T2W": images["T2W"]}, ["DWI"]).source == {}
