"""Case-folder contract and single-image reading with geometry checks."""

from __future__ import annotations

import gzip
import json

import nibabel
import numpy as np
import pytest
import SimpleITK as sitk

from CervicalAILib.core.errors import InputError, OutputExistsError
from CervicalAILib.io.case import load_case, write_case
from CervicalAILib.io.images import read_image


def _image(shape=(4, 5, 6), spacing=(0.7, 0.7, 4.0), value=1.0):
    image = sitk.GetImageFromArray(np.full(shape, value, dtype=np.float32))
    image.SetSpacing(spacing)
    image.SetOrigin((-10.0, 20.0, 5.0))
    return image


def test_write_and_load_case(tmp_path):
    mask = sitk.Cast(_image(value=1) > 0, sitk.sitkUInt8)
    write_case(tmp_path / "case1", {"T2W": _image(), "ADC": _image(spacing=(2, 2, 5))}, {"tumor": mask}, {"age": 51})
    case = load_case(tmp_path / "case1")
    assert case.case_id == "case1"
    assert case.roles == ["T2W", "ADC"]
    assert case.clinical == {"age": 51}
    assert case.image("ADC").GetSpacing() == pytest.approx((2, 2, 5))
    assert sitk.GetArrayFromImage(case.label("tumor")).sum() == 4 * 5 * 6
    with pytest.raises(InputError, match="no DWI image"):
        case.image("DWI")


def test_case_without_t2_is_refused(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    sitk.WriteImage(_image(), str(folder / "ADC.nii.gz"))
    with pytest.raises(InputError, match="no T2W image"):
        load_case(folder)
    with pytest.raises(InputError, match="needs a T2W"):
        write_case(tmp_path / "d", {"ADC": _image()})


def test_case_folder_never_overwritten(tmp_path):
    write_case(tmp_path / "c", {"T2W": _image()})
    with pytest.raises(OutputExistsError):
        write_case(tmp_path / "c", {"T2W": _image(value=2)})
    assert sitk.GetArrayFromImage(load_case(tmp_path / "c").image("T2W")).max() == 1


def test_bad_clinical_json(tmp_path):
    write_case(tmp_path / "c", {"T2W": _image()})
    (tmp_path / "c" / "clinical.json").write_text("{not json")
    with pytest.raises(InputError, match="clinical.json is not valid JSON"):
        load_case(tmp_path / "c")


def _nifti_with_affine(path, affine):
    """Write a NIfTI whose sform is exactly `affine` (patched in the raw header: nibabel refuses
    to build such files itself)."""
    img = nibabel.Nifti1Image(np.ones((4, 4, 3), dtype=np.float32), np.eye(4))
    raw = bytearray(img.to_bytes())
    raw[252:256] = np.array([0, 1], dtype="<i2").tobytes()  # qform_code 0, sform_code 1
    raw[280:328] = np.asarray(affine[:3], dtype="<f4").tobytes()  # srow_x, srow_y, srow_z
    path.write_bytes(gzip.compress(bytes(raw)) if path.name.endswith(".gz") else bytes(raw))


@pytest.mark.parametrize(
    "affine, message",
    [
        (np.diag([1.0, 1.0, np.nan, 1.0]), "NaN"),
        (np.diag([1.0, 0.0, 3.0, 1.0]), "singular"),
    ],
)
def test_nifti_with_broken_affine_is_refused(tmp_path, affine, message):
    path = tmp_path / "T2W.nii.gz"
    _nifti_with_affine(path, affine)
    with pytest.raises(InputError, match=message) as info:
        read_image(path)
    assert "T2W.nii.gz" in str(info.value)


def test_corrupt_file_is_named(tmp_path):
    path = tmp_path / "T2W.nii.gz"
    path.write_bytes(gzip.compress(b"garbage" * 10))
    with pytest.raises(InputError) as info:
        read_image(path)
    assert "T2W.nii.gz" in str(info.value)


def test_good_nifti_reads(tmp_path):
    path = tmp_path / "x.nii.gz"
    nibabel.save(nibabel.Nifti1Image(np.ones((4, 4, 3), dtype=np.float32), np.diag([-0.7, -0.7, 4.0, 1.0])), path)
    image = read_image(path)
    assert image.GetSpacing() == pytest.approx((0.7, 0.7, 4.0))
    assert json.dumps(image.GetSize()) == "[4, 4, 3]"
