"""Bad input for study loading: each case gets a clear message naming the file/folder and the problem."""

from __future__ import annotations

import gzip
import shutil

import nibabel
import numpy as np
import pytest
import SimpleITK as sitk
from synthetic_dicom import dwi_kwargs, make_series

from CervicalAILib.cli import main
from CervicalAILib.core.errors import InputError
from CervicalAILib.io.case import write_case
from CervicalAILib.study.load import load_study

STUDY = "1.2.826.0.1.3680043.8.498.77"


def test_missing_path(tmp_path):
    with pytest.raises(InputError, match="not found") as error:
        load_study(tmp_path / "nowhere")
    assert error.value.path == tmp_path / "nowhere"


def test_empty_folder(tmp_path):
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    with pytest.raises(InputError, match="folder is empty") as error:
        load_study(tmp_path)
    assert str(tmp_path) in str(error.value)


def test_folder_without_image_series(tmp_path):
    (tmp_path / "notes.txt").write_text("protocol notes")
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.4")
    # a DICOM object without pixel data (e.g. a structured report)
    report = make_series(tmp_path, n_slices=1, write=False).datasets[0]
    del report.PixelData
    report.save_as(tmp_path / "SR0001.dcm", enforce_file_format=True)
    with pytest.raises(InputError, match="no image series found among 3 file") as error:
        load_study(tmp_path)
    assert "without pixel data" in str(error.value) and "notes.txt" in str(error.value)


def test_only_unreadable_files(tmp_path):
    (tmp_path / "IM0001.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\xff" * 40)
    with pytest.raises(InputError, match="unreadable file.*IM0001.dcm"):
        load_study(tmp_path)


def test_missing_slice_is_reported_not_interpolated(tmp_path):
    make_series(tmp_path / "t2", series_number=2, n_slices=8, drop_slices=(4,), study_uid=STUDY)
    make_series(tmp_path / "dwi", study_uid=STUDY, **dwi_kwargs())
    study = load_study(tmp_path)
    t2 = study.find_series("2")
    assert not t2.usable
    assert "non-uniform slice spacing" in t2.problems[0] and "about 1 slice missing" in t2.problems[0]
    assert "6.00 mm between" in t2.problems[0]
    assert str(tmp_path / "t2") in t2.problems[0]
    # it is recognised as a T2, cannot be used, and the study says both
    assert study.series_for("T2W") is None
    assert any("series 2" in p and "looks like T2W but cannot be used" in p for p in study.problems)
    with pytest.raises(InputError, match="looks like the T2W but cannot be used: non-uniform slice spacing"):
        study.image("T2W")
    with pytest.raises(InputError, match="series 2 .*non-uniform slice spacing"):
        t2.image()
    with pytest.raises(InputError, match="cannot be used as T2W.*non-uniform"):
        load_study(tmp_path, role_overrides={"2": "T2W"})


def test_duplicated_slice_is_reported(tmp_path):
    make_series(tmp_path, series_number=2, duplicate_slices=(3,))
    study = load_study(tmp_path)
    series = study.find_series("2")
    assert not series.usable
    assert "duplicated slices" in series.problems[0] and "9.00 mm" in series.problems[0]


def test_exact_copy_of_a_file_is_reported_and_ignored(tmp_path):
    synthetic = make_series(tmp_path, series_number=2, names="ordered")
    shutil.copyfile(synthetic.files[2], tmp_path / "copy_of_slice.dcm")
    study = load_study(tmp_path)
    series = study.find_series("2")
    assert series.usable and series.n_files == 6
    assert any("copy_of_slice.dcm" in p and "same SOPInstanceUID" in p for p in series.problems)
    assert np.array_equal(sitk.GetArrayFromImage(series.image()), sitk.GetArrayFromImage(synthetic.image))


def test_mixed_series_in_one_folder_are_split(tmp_path):
    # T2, DWI and ADC files interleaved in one flat folder
    make_series(tmp_path, series_number=2, study_uid=STUDY, seed=1)
    make_series(tmp_path, study_uid=STUDY, seed=2, **dwi_kwargs())
    make_series(tmp_path, study_uid=STUDY, seed=3, **dwi_kwargs(series_number=7, b_values=None, description="dADC",
                image_type=("DERIVED", "PRIMARY", "ADC")))
    for path in list(tmp_path.rglob("*")):
        if path.is_file():
            path.rename(tmp_path / path.name)
    study = load_study(tmp_path)
    assert study.roles_present() == ["T2W", "ADC", "DWI"]
    assert [s.n_files for s in study.series] == [6, 18, 6]


def test_single_slice_series_is_not_a_volume(tmp_path):
    make_series(tmp_path, series_number=2, n_slices=6, study_uid=STUDY)
    make_series(tmp_path, series_number=9, n_slices=1, description="t2 single slice", study_uid=STUDY)
    study = load_study(tmp_path)
    single = study.find_series("9")
    assert not single.usable and "single slice" in single.problems[0] and "2D image" in single.problems[0]
    assert study.series_for("T2W").key == "2"
    with pytest.raises(InputError, match="single slice"):
        single.image()


def test_non_mr_series_is_marked_and_ct_only_folder_refused(tmp_path):
    make_series(tmp_path / "mr", series_number=2, study_uid=STUDY)
    make_series(tmp_path / "ct", series_number=3, modality="CT", description="CT abdomen", study_uid=STUDY)
    study = load_study(tmp_path)
    ct = study.find_series("3")
    assert ct.role == "other" and ct.kind == "other"
    assert any("modality CT" in p and "not an MR series" in p for p in study.problems)
    assert study.series_for("T2W").key == "2"
    with pytest.raises(InputError, match="no MR image series: found only CT"):
        load_study(tmp_path / "ct")
    with pytest.raises(InputError, match="series 3 .*is CT, not MR: it cannot be used as T2W"):
        load_study(tmp_path, role_overrides={"3": "T2W"})


def _nifti_with_affine(path, affine):
    """A NIfTI whose sform is exactly `affine`: nibabel will not write a NaN/singular affine, so
    the srow fields of the 348-byte header are patched after the fact."""
    header = bytearray(nibabel.Nifti1Image(np.ones((4, 5, 6), dtype=np.float32), np.eye(4)).to_bytes())
    header[252:256] = np.array([0, 1], dtype="<i2").tobytes()  # qform_code 0, sform_code 1
    header[280:328] = np.asarray(affine[:3], dtype="<f4").tobytes()  # srow_x, srow_y, srow_z
    path.write_bytes(gzip.compress(bytes(header)))


@pytest.mark.parametrize("bad", ["zero", "nan"])
def test_nifti_with_broken_affine(tmp_path, bad):
    affine = np.diag([0.5, 0.5, 3.0, 1.0])
    if bad == "zero":
        affine[2, 2] = 0.0
    else:
        affine[0, 3] = np.nan
    _nifti_with_affine(tmp_path / "t2.nii.gz", affine)
    message = "singular" if bad == "zero" else "NaN"
    # a single file
    with pytest.raises(InputError, match=message) as error:
        load_study(tmp_path / "t2.nii.gz")
    assert "t2.nii.gz" in str(error.value)
    # inside a case folder
    good = sitk.GetImageFromArray(np.ones((6, 5, 4), dtype=np.float32))
    write_case(tmp_path / "case", {"T2W": good})
    _nifti_with_affine(tmp_path / "case" / "ADC.nii.gz", affine)
    with pytest.raises(InputError, match=message) as error:
        load_study(tmp_path / "case")
    assert "ADC.nii.gz" in str(error.value)
    # and through the CLI: one line, exit status 2
    assert main(["study", "inspect", str(tmp_path / "case")]) == 2


def test_corrupt_files_among_good_ones_are_skipped_and_reported(tmp_path):
    synthetic = make_series(tmp_path, series_number=2, names="ordered", n_slices=6)
    (tmp_path / "IM0099.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00garbage")  # broken header
    truncated = synthetic.files[0].read_bytes()
    (tmp_path / "IM0098.dcm").write_bytes(truncated[: len(truncated) - 60])  # pixel data cut short
    with gzip.open(tmp_path / "IM0097", "wb") as handle:  # compressed, not DICOM
        handle.write(b"x" * 100)
    study = load_study(tmp_path)
    skipped = {p.name: reason for p, reason in study.skipped_files}
    assert set(skipped) == {"IM0099.dcm", "IM0098.dcm", "IM0097"}
    assert "truncated" in skipped["IM0098.dcm"]
    assert sum("skipped" in p and "IM0099.dcm" in p for p in study.problems) == 1
    # the good series is intact
    assert study.series_for("T2W").key == "2"
    assert np.array_equal(sitk.GetArrayFromImage(study.image("T2W")), sitk.GetArrayFromImage(synthetic.image))


def test_two_patients_are_never_merged(tmp_path):
    make_series(tmp_path / "a", series_number=2, patient_id="ANON-001", seed=1)
    make_series(tmp_path / "b", series_number=2, patient_id="ANON-002", seed=2)
    with pytest.raises(InputError, match="2 different patients") as error:
        load_study(tmp_path)
    message = str(error.value)
    assert "'ANON-001'" in message and "'ANON-002'" in message and "--study" in message
    picked = load_study(tmp_path, study="ANON-002")
    assert picked.patient_id == "ANON-002" and picked.series_for("T2W") is not None
    with pytest.raises(InputError, match="no study matches 'ANON-003'"):
        load_study(tmp_path, study="ANON-003")
    assert main(["study", "inspect", str(tmp_path), "--study", "ANON-001", "--json"]) == 0


def test_two_studies_of_one_patient_are_not_merged(tmp_path):
    first = make_series(tmp_path / "visit1", series_number=2, patient_id="P7", seed=1)
    make_series(tmp_path / "visit2", series_number=2, patient_id="P7", seed=2)
    with pytest.raises(InputError, match="2 different studies of patient 'P7'"):
        load_study(tmp_path)
    assert load_study(tmp_path, study=first.study_uid).study_uid == first.study_uid


def test_cohort_folder_is_refused(tmp_path):
    image = sitk.GetImageFromArray(np.ones((3, 4, 5), dtype=np.float32))
    write_case(tmp_path / "case1", {"T2W": image})
    write_case(tmp_path / "case2", {"T2W": image})
    with pytest.raises(InputError, match="holds 2 case folder"):
        load_study(tmp_path)


def test_cli_prints_one_line_error(tmp_path, capsys):
    assert main(["study", "inspect", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "folder is empty" in err[0] and str(tmp_path) in err[0]
