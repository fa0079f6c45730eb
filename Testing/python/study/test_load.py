"""Studies: role recognition, overrides, case folders and files, real ProstateX data, the CLI."""

from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from synthetic_dicom import dwi_kwargs, make_series

from CervicalAILib.cli import main
from CervicalAILib.core.atomic import to_json
from CervicalAILib.core.errors import InputError
from CervicalAILib.io.case import write_case
from CervicalAILib.io.dicom.frames import SeriesHeader
from CervicalAILib.io.geometry import resample_to_reference
from CervicalAILib.study.load import load_study
from CervicalAILib.study.recognition import recognise
from conftest import refdata_path

PROSTATEX = ("mri", "ProstateX-0000_dicom")
MONAI = ("mri", "monai_ProstateX-0000_nifti")


# ---------------------------------------------------------------------------------------------
# Real data: ProstateX-0000 (Siemens Skyra), checked against an independent NIfTI conversion
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prostatex():
    return load_study(refdata_path(*PROSTATEX))


def assert_prostatex_roles(study):
    by_key = {s.key: s for s in study.series}
    assert sorted(by_key) == ["3", "4", "5", "6", "7", "8", "9"]
    assert study.series_for("T2W").key == "4"
    assert by_key["4"].description == "t2_tse_tra"
    # sagittal and coronal T2 are recognised as T2 but not chosen
    assert by_key["3"].kind == by_key["5"].kind == "T2W"
    assert by_key["3"].role == by_key["5"].role == "other"
    assert by_key["3"].orientation == "sagittal"
    dwi = study.series_for("DWI")
    assert dwi.key == "6" and not dwi.is_calculated
    assert dwi.b_values == [50.0, 400.0, 800.0]
    assert dwi.n_files == 57 and len(dwi.volumes) == 3
    assert dwi.b_value == 800.0 and dwi.size == (84, 128, 19)
    calculated = by_key["8"]
    assert calculated.kind == "DWI" and calculated.is_calculated and calculated.role == "other"
    assert calculated.b_values == [1000.0]
    assert study.series_for("ADC").key == "7"
    assert study.series_for("CET1") is None
    assert study.roles_present() == ["T2W", "ADC", "DWI"]
    assert any("CE-T1WI" in p and "CET1" in p for p in study.problems)
    assert by_key["9"].role == "other"


def test_prostatex_roles(prostatex):
    assert_prostatex_roles(prostatex)
    assert prostatex.patient_id == "ProstateX-0000"
    assert prostatex.series_for("T2W").orientation == "oblique-axial"
    assert prostatex.series_for("T2W").spacing == pytest.approx((0.5, 0.5, 3.0), abs=1e-5)


def test_prostatex_high_b_image_is_the_b800_volume(prostatex):
    dwi = prostatex.series_for("DWI")
    high = sitk.GetArrayFromImage(prostatex.image("DWI"))
    assert np.array_equal(high, sitk.GetArrayFromImage(dwi.image(b_value=800)))
    low = sitk.GetArrayFromImage(dwi.image(b_value=50))
    assert high.mean() < low.mean()  # diffusion weighting lowers the signal
    with pytest.raises(InputError, match="no b=1000 volume"):
        dwi.image(b_value=1000)


@pytest.mark.parametrize("role, reference", [("T2W", "test_0000_t2_tse_tra_4.nii.gz"), ("ADC", "test_0000_ep2d_diff_tra_7.nii.gz")])
def test_prostatex_volumes_agree_with_independent_nifti(prostatex, role, reference):
    ours = prostatex.image(role)
    theirs = sitk.ReadImage(str(refdata_path(*MONAI, reference)))
    # the two files order their voxels differently; in physical space they must be the same image
    assert not np.allclose(ours.GetDirection(), theirs.GetDirection())
    on_theirs = resample_to_reference(ours, theirs, interpolator=sitk.sitkNearestNeighbor, default_value=-1)
    a = sitk.GetArrayFromImage(on_theirs).astype(np.int64)
    b = sitk.GetArrayFromImage(theirs).astype(np.int64)
    assert (a == -1).sum() == 0
    assert np.array_equal(a, b)
    back = resample_to_reference(theirs, ours, interpolator=sitk.sitkNearestNeighbor, default_value=-1)
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(ours))


def test_prostatex_renamed_and_flattened(tmp_path, prostatex):
    source = refdata_path(*PROSTATEX)
    files = sorted(p for p in source.rglob("*") if p.is_file())
    rng = random.Random(7)
    names = rng.sample(range(10**6), len(files))
    for path, name in zip(files, names):
        shutil.copyfile(path, tmp_path / f"{name:06d}")
    study = load_study(tmp_path)
    assert_prostatex_roles(study)
    for role in ("T2W", "ADC", "DWI"):
        assert np.array_equal(sitk.GetArrayFromImage(study.image(role)), sitk.GetArrayFromImage(prostatex.image(role)))
        assert study.image(role).GetOrigin() == pytest.approx(prostatex.image(role).GetOrigin())


def test_prostatex_inspect_json(capsys):
    assert main(["study", "inspect", str(refdata_path(*PROSTATEX)), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["roles"] == {"T2W": "4", "ADC": "7", "DWI": "6", "CET1": None}
    assert result["missing_roles"] == ["CET1"]
    series = {s["key"]: s for s in result["series"]}
    assert series["6"]["b_values"] == [50.0, 400.0, 800.0] and series["6"]["n_files"] == 57
    assert series["8"]["is_calculated"] is True and series["8"]["role"] == "other"
    assert series["4"]["orientation"] == "oblique-axial" and series["4"]["size"] == [384, 384, 19]


def test_prostatex_override_calculated_dwi(capsys):
    assert main(["study", "inspect", str(refdata_path(*PROSTATEX)), "--json", "--role", "8=DWI"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["roles"]["DWI"] == "8"
    series = {s["key"]: s for s in result["series"]}
    assert series["8"]["role_source"] == "override" and series["6"]["role"] == "other"


# ---------------------------------------------------------------------------------------------
# Recognition on synthetic studies
# ---------------------------------------------------------------------------------------------

SAGITTAL = dict(row_direction=(0, 1, 0), column_direction=(0, 0, -1))
CORONAL = dict(row_direction=(1, 0, 0), column_direction=(0, 0, -1))


def synthetic_study(folder, *series_specs, **load_kwargs):
    study_uid = "1.2.826.0.1.3680043.8.498.1"
    for index, spec in enumerate(series_specs):
        make_series(folder, study_uid=study_uid, seed=index, **spec)
    return load_study(folder, **load_kwargs)


SE_T2 = dict(scanning_sequence="SE", echo_time=100.0, repetition_time=4000.0)
SE_T1 = dict(scanning_sequence="SE", echo_time=12.0, repetition_time=600.0)
GRE_T1 = dict(scanning_sequence="GR", echo_time=2.0, repetition_time=4.5, flip_angle=10.0)
EPI = dict(scanning_sequence="EP", echo_time=63.0, repetition_time=2700.0)
DIFF = ("ORIGINAL", "PRIMARY", "DIFFUSION", "TRACEW")


@pytest.mark.parametrize(
    "fields, b_values, kind, calculated",
    [
        (dict(series_description="t2_tse_tra", **SE_T2), [], "T2W", False),
        (dict(series_description="Ax T2 FRFSE", **SE_T2), [], "T2W", False),
        (dict(series_description="sT2W_TSE_ax", **SE_T2), [], "T2W", False),
        (dict(series_description="AX FRFSE", **SE_T2), [], "T2W", False),  # from TR/TE
        (dict(series_description="t2_tirm_tra", scanning_sequence="IR", inversion_time=150.0, echo_time=60.0,
              repetition_time=5000.0), [], "T2W", False),
        (dict(series_description="t2_tse_tra", contrast_agent="Gadovist", **SE_T2), [], "T2W", False),
        # a trace-weighted series whose protocol name ends in _ADC is still the DWI
        (dict(series_description="ep2d_diff_3scan_trace_p2_TRACEW", protocol_name="ep2d_diff_3scan_trace_p2_ADC",
              image_type=DIFF, **EPI), [0.0, 1000.0], "DWI", False),
        (dict(series_description="ep2d_diff_3scan_trace_p2_ADC", image_type=("DERIVED", "PRIMARY", "DIFFUSION", "ADC"),
              **EPI), [], "ADC", False),
        (dict(series_description="dADC", image_type=("DERIVED", "PRIMARY"), **EPI), [], "ADC", False),
        (dict(series_description="Apparent Diffusion Coefficient (mm2/s)", image_type=("DERIVED", "PRIMARY")), [],
         "ADC", False),
        (dict(series_description="eADC", image_type=("DERIVED", "PRIMARY"), **EPI), [], "other", False),
        (dict(series_description="DWI b0 b1000", image_type=("ORIGINAL", "PRIMARY", "OTHER"), **EPI), [0.0, 1000.0],
         "DWI", False),
        (dict(series_description="AX DIFFUSION", **EPI), [], "DWI", False),  # keyword + echo-planar, no b tags
        (dict(series_description="ep2d_diff_tra_CALC_BVAL", image_type=DIFF, **EPI), [1400.0], "DWI", True),
        (dict(series_description="cDWI b1500", image_type=DIFF, **EPI), [1500.0], "DWI", True),
        (dict(series_description="diff tra", sequence_name="*ep_b50_800", image_type=DIFF, **EPI), [1000.0], "DWI", True),
        (dict(series_description="t1_vibe_fs_tra_post", **GRE_T1), [], "CET1", False),
        (dict(series_description="AX LAVA +C", **GRE_T1), [], "CET1", False),
        (dict(series_description="T1W_TSE_TRA", contrast_agent="Dotarem", **SE_T1), [], "CET1", False),
        (dict(series_description="ax pelvis", contrast_agent="Gadovist", **SE_T1), [], "CET1", False),
        (dict(series_description="sT1W_3D_TFE_GD", **GRE_T1), [], "CET1", False),
        (dict(series_description="t1_vibe_pre", contrast_agent="Gadovist", **GRE_T1), [], "T1W", False),
        (dict(series_description="t1_tse_tra", **SE_T1), [], "T1W", False),
        (dict(series_description="localizer", **GRE_T1), [], "other", False),
        (dict(series_description="AAHScout", **GRE_T1), [], "other", False),
        (dict(series_description="pelvis", image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"), **GRE_T1), [], "other", False),
        (dict(series_description="t2_flair_tra", **SE_T2), [], "other", False),
        (dict(series_description="t2*_fl2d_tra", scanning_sequence="GR", echo_time=20.0, repetition_time=600.0), [],
         "other", False),
        (dict(series_description="pd_tse_tra", scanning_sequence="SE", echo_time=12.0, repetition_time=3000.0), [],
         "other", False),
        (dict(series_description="t1_vibe_sub", **GRE_T1), [], "other", False),
        (dict(series_description="ep2d_bold", **EPI), [], "other", False),
        (dict(series_description="t2 abdomen", modality="CT"), [], "other", False),
    ],
)
def test_recognition_table(fields, b_values, kind, calculated):
    header = SeriesHeader(modality=fields.pop("modality", "MR"), **fields)
    result = recognise(header, b_values)
    assert (result.kind, result.is_calculated) == (kind, calculated), result.reason


def test_axial_t2_preferred_over_sagittal_and_coronal(tmp_path):
    study = synthetic_study(
        tmp_path,
        dict(series_number=2, description="T2 SAG", **SAGITTAL),
        dict(series_number=3, description="T2 COR", **CORONAL),
        dict(series_number=4, description="T2 AX"),
    )
    assert study.series_for("T2W").key == "4"
    assert {s.key: s.kind for s in study.series} == {"2": "T2W", "3": "T2W", "4": "T2W"}


def test_t2_recognised_from_timing_when_description_is_silent(tmp_path):
    study = synthetic_study(tmp_path, dict(series_number=5, description="ax pelvis", echo_time=110, repetition_time=5000))
    assert study.series_for("T2W").key == "5"
    assert "TR" in study.series[0].reason


def test_cet1_from_contrast_agent_and_from_keywords(tmp_path):
    study = synthetic_study(
        tmp_path,
        dict(series_number=2, description="t2_tse_tra"),
        dict(series_number=7, description="t1_vibe_fs_tra", scanning_sequence="GR", echo_time=2.0,
             repetition_time=4.5, flip_angle=10, contrast_agent="Gadovist"),
    )
    assert study.series_for("CET1").key == "7"
    assert "Gadovist" in study.series_for("CET1").reason
    other = synthetic_study(
        tmp_path / "b",
        dict(series_number=2, description="t2_tse_tra"),
        dict(series_number=8, description="AX T1 FS +C", echo_time=12, repetition_time=600),
    )
    assert other.series_for("CET1").key == "8"


def test_pre_contrast_t1_is_not_cet1(tmp_path):
    study = synthetic_study(
        tmp_path,
        dict(series_number=2, description="t2_tse_tra"),
        dict(series_number=6, description="t1_vibe_tra_pre", scanning_sequence="GR", echo_time=2, repetition_time=4.5,
             flip_angle=10),
        dict(series_number=9, description="t1_tse_tra", echo_time=12, repetition_time=600),  # no contrast evidence
        dict(series_number=10, description="t1_vibe_tra_post", scanning_sequence="GR", echo_time=2,
             repetition_time=4.5, flip_angle=10),
    )
    kinds = {s.key: s.kind for s in study.series}
    assert kinds["6"] == "T1W" and kinds["9"] == "T1W" and kinds["10"] == "CET1"
    assert study.series_for("CET1").key == "10"
    assert any("--role 9=CET1" in note for note in study.notes)


def test_acquired_dwi_preferred_over_calculated_and_adc_recognised(tmp_path):
    study = synthetic_study(
        tmp_path,
        dict(series_number=2, description="t2_tse_tra"),
        dwi_kwargs(series_number=6),
        dwi_kwargs(series_number=7, description="ep2d_diff_tra_ADC", b_values=None,
                   image_type=("DERIVED", "PRIMARY", "DIFFUSION", "ADC")),
        dwi_kwargs(series_number=8, description="ep2d_diff_tra_CALC_BVAL", b_values=[1400.0],
                   image_type=("DERIVED", "PRIMARY", "DIFFUSION", "TRACEW")),
    )
    assert study.series_for("DWI").key == "6"
    assert study.series_for("DWI").b_value == 800.0
    assert study.series_for("ADC").key == "7"
    calculated = study.find_series("8")
    assert calculated.is_calculated and calculated.role == "other" and calculated.b_values == [1400.0]
    # when only the calculated series exists it is used (and said so)
    only_calc = synthetic_study(
        tmp_path / "b",
        dict(series_number=2, description="t2_tse_tra"),
        dwi_kwargs(series_number=8, description="diff CALC_BVAL", b_values=[1400.0]),
    )
    assert only_calc.series_for("DWI").key == "8"
    assert any("only a calculated" in note for note in only_calc.notes)


def test_dwi_recognised_from_vendor_b_values_without_keywords(tmp_path):
    study = synthetic_study(
        tmp_path,
        dwi_kwargs(series_number=3, description="ax pelvis 3", image_type=("ORIGINAL", "PRIMARY", "M"), b_tag="ge",
                   b_values=[0.0, 1000.0]),
    )
    assert study.series_for("DWI").b_values == [0.0, 1000.0]
    assert np.array_equal(
        sitk.GetArrayFromImage(study.image("DWI")), sitk.GetArrayFromImage(study.series[0].image(b_value=1000))
    )


def test_b_value_from_description_only_for_diffusion_series(tmp_path):
    study = synthetic_study(
        tmp_path,
        dwi_kwargs(series_number=4, description="AX DWI b1000", b_values=None),
        dict(series_number=5, description="t2 tse b1 corrected"),
    )
    assert study.series_for("DWI").b_values == [1000.0] and study.series_for("DWI").b_value == 1000.0
    assert study.find_series("5").kind == "T2W" and study.find_series("5").b_values == []


def test_dynamic_post_contrast_series_gives_its_last_phase(tmp_path):
    uid, study_uid = "1.2.826.0.1.3680043.8.498.5", "1.2.826.0.1.3680043.8.498.6"
    phases = []
    for phase in (1, 2, 3):
        synthetic = make_series(tmp_path, write=False, series_uid=uid, study_uid=study_uid, series_number=11,
                                description="t1_vibe_dyn_tra", contrast_agent="Gadovist", base_value=5000 * phase,
                                **GRE_T1)
        for index, ds in enumerate(synthetic.datasets):
            ds.TemporalPositionIdentifier = phase
            ds.save_as(tmp_path / f"p{phase}_{index}.dcm", enforce_file_format=True)
        phases.append(synthetic.image)
    make_series(tmp_path, study_uid=study_uid, series_number=2, description="t2_tse_tra")
    study = load_study(tmp_path)
    cet1 = study.series_for("CET1")
    assert cet1.key == "11" and cet1.split_by == ["temporal_position"] and len(cet1.volumes) == 3
    assert np.array_equal(sitk.GetArrayFromImage(study.image("CET1")), sitk.GetArrayFromImage(phases[-1]))
    assert np.array_equal(sitk.GetArrayFromImage(cet1.image(volume=0)), sitk.GetArrayFromImage(phases[0]))


def test_localizer_and_other_contrasts_get_no_role(tmp_path):
    study = synthetic_study(
        tmp_path,
        dict(series_number=1, description="localizer", scanning_sequence="GR", echo_time=4, repetition_time=8),
        dict(series_number=2, description="t2_tse_tra"),
        dict(series_number=3, description="pd_tse_tra", echo_time=12, repetition_time=3000),
        dict(series_number=4, description="t2_flair_tra", scanning_sequence="IR"),
    )
    assert {s.key: s.role for s in study.series} == {"1": "other", "2": "T2W", "3": "other", "4": "other"}


# ---------------------------------------------------------------------------------------------
# Overrides
# ---------------------------------------------------------------------------------------------


def test_role_overrides(tmp_path):
    make_series(tmp_path, series_number=3, description="t2 sag", seed=1, study_uid="1.2.3.4", **SAGITTAL)
    make_series(tmp_path, series_number=4, description="t2 tra", seed=2, study_uid="1.2.3.4")
    assert load_study(tmp_path).series_for("T2W").key == "4"
    study = load_study(tmp_path, role_overrides={"3": "t2w"})
    assert study.series_for("T2W").key == "3" and study.series_for("T2W").role_source == "override"
    assert study.find_series("4").role == "other"
    # naming a series "other" lets the next candidate take the role
    assert load_study(tmp_path, role_overrides={"4": "other"}).series_for("T2W").key == "3"
    with pytest.raises(InputError, match="no series '12'"):
        load_study(tmp_path, role_overrides={"12": "T2W"})
    with pytest.raises(InputError, match="unknown role 'T3'"):
        load_study(tmp_path, role_overrides={"3": "T3"})
    with pytest.raises(InputError, match="given to two series"):
        load_study(tmp_path, role_overrides={"3": "T2W", "4": "T2W"})
    uid = load_study(tmp_path).find_series("3").uid
    assert load_study(tmp_path, role_overrides={uid: "CET1"}).series_for("CET1").key == "3"


# ---------------------------------------------------------------------------------------------
# Case folders and image files
# ---------------------------------------------------------------------------------------------


def _image(value=1.0, spacing=(0.5, 0.5, 3.0)):
    image = sitk.GetImageFromArray(np.full((4, 6, 5), value, dtype=np.float32))
    image.SetSpacing(spacing)
    return image


def test_case_folder_loads_as_a_study(tmp_path):
    mask = sitk.Cast(_image() > 0, sitk.sitkUInt8)
    write_case(tmp_path / "case", {"T2W": _image(1), "ADC": _image(2, (2, 2, 3))}, {"tumor": mask}, {"age": 50})
    study = load_study(tmp_path / "case")
    assert study.source == "case"
    assert study.roles_present() == ["T2W", "ADC"]
    assert sitk.GetArrayFromImage(study.image("ADC")).max() == 2
    assert study.series_for("ADC").spacing == pytest.approx((2, 2, 3))
    assert study.series_for("T2W").orientation == "axial"
    assert list(study.label_paths) == ["tumor"] and study.clinical == {"age": 50}
    with pytest.raises(InputError, match="no DWI series"):
        study.image("DWI")
    assert any("DWI" in p for p in study.problems)
    swapped = load_study(tmp_path / "case", role_overrides={"ADC": "DWI"})
    assert swapped.roles_present() == ["T2W", "DWI"]


def test_single_files_get_roles_only_from_overrides(tmp_path):
    sitk.WriteImage(_image(1), str(tmp_path / "pelvis_t2.nii.gz"))
    sitk.WriteImage(_image(3), str(tmp_path / "adc_map.nrrd"))
    study = load_study([tmp_path / "pelvis_t2.nii.gz", tmp_path / "adc_map.nrrd"])
    assert study.source == "files" and study.roles_present() == []
    assert sorted(s.key for s in study.series) == ["adc_map", "pelvis_t2"]
    study = load_study([tmp_path / "pelvis_t2.nii.gz", tmp_path / "adc_map.nrrd"],
                       role_overrides={"pelvis_t2": "T2W", "adc_map.nrrd": "ADC"})
    assert study.roles_present() == ["T2W", "ADC"]
    assert sitk.GetArrayFromImage(study.image("ADC")).max() == 3
    single = load_study(tmp_path / "adc_map.nrrd", role_overrides={"adc_map": "ADC"})
    assert single.roles_present() == ["ADC"]


def test_to_dict_is_json(tmp_path):
    study = synthetic_study(tmp_path, dict(series_number=2, description="t2_tse_tra"), dwi_kwargs())
    data = json.loads(to_json(study.to_dict()))
    assert data["roles"]["T2W"] == "2" and data["roles"]["DWI"] == "6"
    assert data["series"][1]["volumes"][2]["label"] == "b=800"


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def test_cli_inspect_table(tmp_path, capsys):
    synthetic_study(tmp_path, dict(series_number=2, description="t2_tse_tra"), dwi_kwargs())
    assert main(["study", "inspect", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Roles: T2W = 2   DWI = 6, b=800   ADC = none   CET1 = none" in out
    assert "0/400/800" in out and "axial" in out
    assert "no contrast-enhanced T1-weighted (CE-T1WI) series found" in out


def test_cli_bad_role_argument(tmp_path, capsys):
    synthetic_study(tmp_path, dict(series_number=2, description="t2_tse_tra"))
    assert main(["study", "inspect", str(tmp_path), "--role", "2:T2W"]) == 2
    assert "--role expects SERIES=ROLE" in capsys.readouterr().err


def test_cli_register_writes_a_case_folder(tmp_path, capsys):
    pytest.importorskip("CervicalAILib.registration")
    # T2W and a DWI sampled on the same physical extent
    synthetic_study(
        tmp_path / "dicom",
        dict(series_number=2, description="t2_tse_tra", rows=24, columns=24, pixel_spacing=(1.0, 1.0), n_slices=8),
        dwi_kwargs(rows=12, columns=12, n_slices=8),
    )
    out = tmp_path / "case"
    code = main(["study", "register", str(tmp_path / "dicom"), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert (out / "T2W.nii.gz").is_file() and (out / "DWI.nii.gz").is_file()
    assert "PROGRESS" in captured.err
    assert main(["study", "register", str(tmp_path / "dicom"), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
