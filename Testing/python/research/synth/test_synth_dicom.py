"""DICOM output of the generator and the MR series writer (io.dicom_write)."""

from __future__ import annotations

import hashlib

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from CervicalAILib.core.errors import InputError
from CervicalAILib.io.case import load_case
from CervicalAILib.io.dicom_write import deterministic_uid, write_dicom_series
from CervicalAILib.research.synth import SynthParams, generate_case, generate_cohort
from CervicalAILib.research.synth.writer import write_case_folder
from CervicalAILib.study.load import load_study

SMALL = SynthParams(matrix_scale=0.3)


@pytest.fixture(scope="module")
def both_formats(tmp_path_factory):
    root = tmp_path_factory.mktemp("dicom")
    case = generate_case(1, 7, SMALL, n_centers=3)
    nifti = write_case_folder(case, root / "nifti" / case.case_id, "nifti", seed=7)
    dicom = write_case_folder(case, root / "dicom" / case.case_id, "dicom", seed=7)
    return case, nifti, dicom


def test_dicom_and_nifti_load_to_the_same_images(both_formats):
    case, nifti, dicom = both_formats
    from_nifti = load_case(nifti)
    study = load_study(dicom / "dicom")
    assert sorted(study.roles_present()) == sorted(from_nifti.roles)
    # the sagittal T2WI is recognised as a T2-weighted series that is not the case's T2W role
    others = [s for s in study.series if s.role == "other"]
    assert [(s.kind, s.orientation) for s in others] == [("T2W", "sagittal")]
    for role in from_nifti.roles:
        a, b = study.image(role), from_nifti.image(role)
        assert a.GetSize() == b.GetSize(), role
        assert np.allclose(a.GetSpacing(), b.GetSpacing(), atol=1e-5), role
        assert np.allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-3), role  # NIfTI stores float32
        assert np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-6), role
        assert np.array_equal(sitk.GetArrayFromImage(a).astype(np.int32), sitk.GetArrayFromImage(b).astype(np.int32)), role
    assert study.series_for("DWI").b_values == [0.0, case.center.b_value]


def test_dicom_study_has_scanner_tags(both_formats):
    case, _, dicom = both_formats
    files = sorted((dicom / "dicom").rglob("*.dcm"))
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    assert len({h.StudyInstanceUID for h in headers}) == 1
    assert len({h.FrameOfReferenceUID for h in headers}) == 1
    assert len({h.SeriesInstanceUID for h in headers}) == 5  # T2W, sagittal T2W, DWI (b0 + b-high), ADC, CE-T1
    assert len({h.SOPInstanceUID for h in headers}) == len(headers)
    for h in headers:
        assert h.Modality == "MR" and h.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4"
        assert str(h.PatientName).startswith("SYNTHETIC^") and h.PatientID == case.case_id
        assert pydicom.uid.UID(h.SOPInstanceUID).is_valid
        assert h.EchoTime > 0 and h.RepetitionTime > h.EchoTime
        assert h.SliceThickness > 0 and h.SpacingBetweenSlices >= h.SliceThickness
    by_role = {}
    for h in headers:
        by_role.setdefault(h.SeriesDescription, h)
    descriptions = set(by_role)
    assert {"ep2d_diff_tra_ADC", "T1 VIBE TRA POST GD"} <= descriptions
    adc = by_role["ep2d_diff_tra_ADC"]
    assert list(adc.ImageType)[:1] == ["DERIVED"] and "ADC" in adc.ImageType
    cet1 = by_role["T1 VIBE TRA POST GD"]
    assert cet1.ContrastBolusAgent and cet1.MRAcquisitionType == "3D"
    dwi = [h for h in headers if "DIFFUSION" in h.ImageType and "TRACEW" in h.ImageType]
    assert {float(h.DiffusionBValue) for h in dwi} == {0.0, case.center.b_value}
    t2 = next(h for h in headers if int(h.SeriesNumber) == 2)
    assert t2.SeriesDescription.startswith(("T2 TSE TRA", "T2 TSE OBL TRA"))
    assert 80 <= float(t2.EchoTime) <= 130 and list(t2.ImageType) == ["ORIGINAL", "PRIMARY", "M", "ND"]
    assert t2.InPlanePhaseEncodingDirection in ("ROW", "COL") and max(t2.AcquisitionMatrix) <= max(t2.Rows, t2.Columns)
    sagittal = next(h for h in headers if int(h.SeriesNumber) == 3)
    assert sagittal.SeriesDescription.startswith("T2 TSE SAG")
    assert abs(float(sagittal.ImageOrientationPatient[1])) == pytest.approx(1.0)  # rows run anterior-posterior


def test_dicom_output_is_deterministic(both_formats, tmp_path):
    case, _, dicom = both_formats
    again = write_case_folder(case, tmp_path / case.case_id, "dicom", seed=7)
    first = {p.relative_to(dicom): hashlib.sha256(p.read_bytes()).hexdigest() for p in dicom.rglob("*") if p.is_file()}
    second = {p.relative_to(again): hashlib.sha256(p.read_bytes()).hexdigest() for p in again.rglob("*") if p.is_file()}
    assert first == second
    assert deterministic_uid("a", 1) == deterministic_uid("a", 1) != deterministic_uid("a", 2)


def test_dicom_cohort_layout(tmp_path):
    result = generate_cohort(tmp_path / "c", 1, seed=3, fmt="dicom", params=SMALL)
    case_dir = next(p for p in result.path.iterdir() if p.is_dir())
    assert (case_dir / "dicom").is_dir() and (case_dir / "labels" / "tumor.nii.gz").is_file()
    assert (case_dir / "clinical.json").is_file() and not (case_dir / "T2W.nii.gz").exists()
    assert len([p for p in (case_dir / "dicom").iterdir() if p.is_dir()]) == 5


def _image(array, spacing=(0.5, 0.6, 2.0), origin=(-10.0, 5.0, 3.0)):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    direction = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # sagittal-like, oblique axes
    image.SetDirection(direction.flatten().tolist())
    return image


COMMON = {"StudyInstanceUID": "1.2.3.4", "FrameOfReferenceUID": "1.2.3.5", "PatientID": "X", "PatientName": "SYNTHETIC^X"}


def test_writer_round_trips_float_images_with_rescale(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.normal(0.0, 2.5e-3, size=(5, 6, 7)).astype(np.float32)
    paths = write_dicom_series(_image(values), tmp_path / "s", common_tags=COMMON,
                               series_tags={"SeriesNumber": 1, "SeriesDescription": "probability"}, uid_seed=("t",))
    assert len(paths) == 5
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(tmp_path / "s")))
    back = reader.Execute()
    header = pydicom.dcmread(paths[0], stop_before_pixels=True)
    slope = float(header.RescaleSlope)
    assert np.allclose(sitk.GetArrayFromImage(back), values, atol=slope)
    assert np.allclose(back.GetDirection(), _image(values).GetDirection(), atol=1e-6)
    assert np.allclose(back.GetOrigin(), (-10.0, 5.0, 3.0), atol=1e-4)


def test_writer_refuses_bad_input(tmp_path):
    image = _image(np.zeros((3, 4, 5), np.int16))
    other = _image(np.zeros((3, 4, 6), np.int16))
    with pytest.raises(InputError, match="share one grid"):
        write_dicom_series([(image, {}), (other, {})], tmp_path / "a", common_tags=COMMON, series_tags={}, uid_seed=("x",))
    with pytest.raises(InputError, match="StudyInstanceUID"):
        write_dicom_series(image, tmp_path / "b", common_tags={"FrameOfReferenceUID": "1.2"}, series_tags={}, uid_seed=("x",))
    nan = _image(np.full((3, 4, 5), np.nan, np.float32))
    with pytest.raises(InputError, match="NaN"):
        write_dicom_series(nan, tmp_path / "c", common_tags=COMMON, series_tags={}, uid_seed=("x",))
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()
