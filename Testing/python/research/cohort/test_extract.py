"""Cohort feature extraction (`cervicalai extract`): table, sidecar, masks, resume, failures, Dask, bad input."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from deep_testdata import write_encoder_bundle

from CervicalAILib.cli import main
from CervicalAILib.core.errors import InputError, OutputExistsError
from CervicalAILib.research.cohort import (
    ExtractionConfig,
    extract_case,
    extract_cohort,
    parts_dir_for,
    read_cohort_table,
    sidecar_path_for,
)

ROLES = ("T2W", "DWI", "CET1")
# Small pyradiomics settings (original image, shape + first order) keep the tests fast; the
# extraction code path is the same as with the engine's full settings.
SETTINGS = """\
setting:
  label: 1
  normalize: true
  normalizeScale: 100
  resampledPixelSpacing: [1.0, 1.0, 4.0]
  interpolator: sitkBSpline
  padDistance: 5
  preCrop: true
  minimumROIDimensions: 2
  binWidth: 10
  voxelArrayShift: 300
imageType:
  Original: {}
featureClass:
  shape: [VoxelVolume, Maximum3DDiameter, Sphericity]
  firstorder: [Mean, Median, Skewness, Entropy]
"""
ENCODER_2D = {"mode": "2d", "size": [16, 16], "channels": 3, "channel_mode": "neighbours", "margin_mm": 5,
              "spacing_mm": [2.0, 2.0], "fit": True, "masking": "tumor"}


def _generate(folder: Path, n_cases: int, seed: int) -> Path:
    from CervicalAILib.research.synth import SynthParams, generate_cohort

    generate_cohort(folder, n_cases, seed, centers=2, params=SynthParams(matrix_scale=0.3))
    return folder


@pytest.fixture(scope="module")
def material(tmp_path_factory):
    """A five-case cohort (small matrices), settings for every role and a tiny 2D encoder bundle."""
    root = tmp_path_factory.mktemp("cohort_extract")
    cohort = _generate(root / "cohort", 5, seed=3)
    settings = root / "settings"
    settings.mkdir()
    for role in ("T2W", "ADC", "DWI", "CET1"):
        (settings / f"{role}.yaml").write_text(SETTINGS, encoding="utf-8")
    write_encoder_bundle(root / "encoder2d", ENCODER_2D, {"scale": "zscore"}, dim=6, name="tiny2d")
    return {"root": root, "cohort": cohort, "settings": settings, "encoder": root / "encoder2d"}


def _config(material, roles=ROLES, deep=True, register=True) -> ExtractionConfig:
    return ExtractionConfig.build(roles=roles, settings_dir=material["settings"],
                                  encoders=[material["encoder"]] if deep else [], register=register)


def _copy_cohort(material, dest: Path, cases: list[str] | None = None) -> Path:
    """A copy of the fixture cohort (optionally only `cases`, with cohort.csv filtered to match)."""
    source = material["cohort"]
    frame = pd.read_csv(source / "cohort.csv", dtype={"case_id": str, "center": str})
    if cases is not None:
        frame = frame[frame["case_id"].isin(cases)]
    dest.mkdir(parents=True)
    for case_id in frame["case_id"]:
        shutil.copytree(source / case_id, dest / case_id)
    frame.to_csv(dest / "cohort.csv", index=False)
    shutil.copy(source / "generator.json", dest / "generator.json")
    return dest


def _case_ids(material) -> list[str]:
    return read_cohort_table(material["cohort"]).case_ids


# ----------------------------------------------------------------------------------------------


def test_table_sidecar_and_values_match_direct_extraction(material, tmp_path):
    """Two workers; every value equals a direct extraction with the sequence's own mask."""
    from CervicalAILib.features.deep import extract_deep_features, load_encoder
    from CervicalAILib.features.radiomic import extract_features, load_settings
    from CervicalAILib.research.fit.table import read_feature_table

    out = tmp_path / "features.parquet"
    result = extract_cohort(material["cohort"], out, _config(material), jobs=2)
    assert result.failed == [] and result.reused == 0
    frame = pd.read_parquet(out)
    cohort_csv = pd.read_csv(material["cohort"] / "cohort.csv", dtype={"case_id": str, "center": str})
    # one row per case in cohort.csv order; cohort.csv columns first (case_id, center), extraction_error, features
    assert list(frame["case_id"]) == list(cohort_csv["case_id"])
    assert list(frame.columns[: len(cohort_csv.columns)]) == list(cohort_csv.columns)
    pd.testing.assert_frame_equal(frame[cohort_csv.columns], cohort_csv, check_dtype=False)
    assert frame.columns[len(cohort_csv.columns)] == "extraction_error" and (frame["extraction_error"] == "").all()
    features = list(frame.columns[len(cohort_csv.columns) + 1:])
    assert "CET1_original_firstorder_Mean" in features and "DWI_original_shape_Sphericity" in features
    assert [f for f in features if "_dl-" in f][:2] == ["T2W_dl-tiny2d_F0000", "T2W_dl-tiny2d_F0001"]
    assert len(features) == 3 * (3 + 4) + 3 * 6  # 3 roles x (3 shape + 4 first order) + 3 roles x 6 deep

    # the values: each sequence with its own delineation (T2W: labels/tumor), computed directly
    from CervicalAILib.io.case import load_case

    params = {role: load_settings(role, material["settings"] / f"{role}.yaml") for role in ROLES}
    encoder = load_encoder(material["encoder"])
    for case_id in list(frame["case_id"])[:2]:
        case = load_case(material["cohort"] / case_id)
        row = frame.set_index("case_id").loc[case_id]
        for role in ROLES:
            mask = case.label("tumor" if role == "T2W" else f"tumor_{role}")
            direct = extract_features({role: case.image(role)}, mask, settings={role: params[role]})
            for name, value in direct.items():
                assert row[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name
            deep = extract_deep_features({role: case.image(role)}, {role: mask}, encoder, roles=[role])
            for name, value in deep.items():
                assert row[name] == pytest.approx(value, rel=1e-6, abs=1e-9), name

    # the sidecar is what the models package reads
    sidecar = json.loads(sidecar_path_for(out).read_text(encoding="utf-8"))
    assert sidecar["cases"] == {"in_cohort": 5, "extracted": 5, "failed": 0}
    assert sidecar["synthetic"] is True and sidecar["roles"] == list(ROLES)
    assert sidecar["radiomics_settings"]["DWI"] == SETTINGS
    assert sidecar["encoders"] == [encoder.reference()]
    assert sidecar["masks"]["sources"] == {"T2W": {"same grid": 5}, "DWI": {"sequence label": 5},
                                           "CET1": {"sequence label": 5}}
    assert sidecar["timing"]["backend"] == "process pool (2 workers)"
    table = read_feature_table(out)
    assert set(table.families) == {"radiomics", "dl-tiny2d"}
    assert table.sidecar["encoders"][0]["sha256"] == encoder.reference()["sha256"]
    assert len(list((parts_dir_for(out) / "cases").glob("*.json.gz"))) == 5


def test_resume_skips_finished_cases_and_redoes_changed_ones(material, tmp_path):
    cohort = _copy_cohort(material, tmp_path / "cohort")
    out = tmp_path / "features.csv"
    config = _config(material, roles=("T2W", "DWI"), deep=False)
    first = extract_cohort(cohort, out, config)
    reference = pd.read_csv(out)
    ids = first.extracted
    # an interrupted run: no table yet, one part missing, one case whose image changed since
    out.unlink()
    sidecar_path_for(out).unlink()
    (parts_dir_for(out) / "cases" / f"{ids[1]}.json.gz").unlink()
    changed = cohort / ids[3] / "DWI.nii.gz"
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    second = extract_cohort(cohort, out, config)
    assert second.reused == 3
    assert second.sidecar_data["timing"]["cases_extracted_now"] == 2
    pd.testing.assert_frame_equal(pd.read_csv(out), reference)
    # a finished table is not replaced without --overwrite; with it, every case is reused
    with pytest.raises(OutputExistsError, match="--overwrite"):
        extract_cohort(cohort, out, config)
    third = extract_cohort(cohort, out, config, overwrite=True)
    assert third.reused == 5


def test_partial_run_with_another_configuration_is_refused_naming_the_difference(material, tmp_path):
    cohort = _copy_cohort(material, tmp_path / "cohort", cases=_case_ids(material)[:2])
    out = tmp_path / "features.parquet"
    extract_cohort(cohort, out, _config(material, roles=("T2W", "DWI"), deep=False))
    out.unlink()
    sidecar_path_for(out).unlink()
    with pytest.raises(OutputExistsError) as info:
        extract_cohort(cohort, out, _config(material, roles=("T2W",), deep=False))
    message = str(info.value)
    assert "roles: T2W,DWI before, T2W now" in message and "--overwrite" in message
    with pytest.raises(OutputExistsError, match=r"encoders: none before, \[test-encoder-tiny2d@0.0.1 \(\w+\)\] now\)"):
        extract_cohort(cohort, out, _config(material, roles=("T2W", "DWI"), deep=True))
    # --overwrite replaces the run but reuses what is still valid: the T2W radiomics did not change
    result = extract_cohort(cohort, out, _config(material, roles=("T2W",), deep=False), overwrite=True)
    assert result.reused == 2 and result.sidecar_data["timing"]["cases_extracted_now"] == 0
    assert list(pd.read_parquet(out).columns[-1:]) == ["T2W_original_firstorder_Entropy"]
    # adding an encoder computes only the deep features; other radiomics settings recompute the radiomics
    result = extract_cohort(cohort, out, _config(material, roles=("T2W",), deep=True), overwrite=True)
    timing = result.sidecar_data["timing"]
    assert set(timing["stage_cpu_seconds_per_case"]) == {"load", "masks", "deep dl-tiny2d"}
    # no throughput from a run that only added components: it would overstate the cases per minute
    assert timing["cases_completed_now"] == 2 and timing["cases_extracted_now"] == 0 and "cases_per_minute" not in timing
    other = tmp_path / "other_settings"
    other.mkdir()
    (other / "T2W.yaml").write_text(SETTINGS.replace("binWidth: 10", "binWidth: 20"), encoding="utf-8")
    config = ExtractionConfig.build(roles=("T2W",), settings_dir=other, encoders=[material["encoder"]])
    out.unlink()
    sidecar_path_for(out).unlink()
    with pytest.raises(OutputExistsError, match="radiomics_settings_sha256.T2W: "):
        extract_cohort(cohort, out, config)
    result = extract_cohort(cohort, out, config, overwrite=True)
    assert set(result.sidecar_data["timing"]["stage_cpu_seconds_per_case"]) == {"load", "masks", "radiomics T2W"}


def test_failed_case_is_logged_listed_and_excluded_while_the_rest_continue(material, tmp_path, capsys):
    from CervicalAILib.research.fit.table import read_feature_table

    ids = _case_ids(material)[:3]
    cohort = _copy_cohort(material, tmp_path / "cohort", cases=ids)
    (cohort / ids[1] / "CET1.nii.gz").write_bytes(b"not an image")  # corrupt one sequence of one case
    out = tmp_path / "features.parquet"
    code = main(["extract", str(cohort), "--out", str(out), "--no-deep", "--settings", str(material["settings"])])
    assert code == 3  # the table is written, some cases failed
    captured = capsys.readouterr()
    assert f"FAILED {ids[1]}" in captured.err and "CET1.nii.gz" in captured.err
    table = pd.read_parquet(out)
    assert list(table["case_id"]) == ids  # the failed case keeps its row, marked and without values
    assert list(table["extraction_error"] == "") == [True, False, True]
    assert "CET1.nii.gz" in table["extraction_error"][1]
    features = [c for c in table.columns if c.startswith("T2W_")]
    assert table.loc[1, features].isna().all() and table.loc[0, features].notna().all()
    sidecar = json.loads(sidecar_path_for(out).read_text(encoding="utf-8"))
    assert sidecar["cases"] == {"in_cohort": 3, "extracted": 2, "failed": 1}
    [failure] = sidecar["failed_cases"]
    assert failure["case_id"] == ids[1] and "CET1.nii.gz" in failure["error"]
    log_text = (out.parent / failure["log"]).read_text(encoding="utf-8")
    assert f"case: {ids[1]}" in log_text and "Traceback" in log_text
    assert read_feature_table(out).sidecar["failed_cases"][0]["case_id"] == ids[1]  # carried into fit provenance
    # the failed case is retried on the next run (its log is removed once it succeeds)
    shutil.copy(material["cohort"] / ids[1] / "CET1.nii.gz", cohort / ids[1] / "CET1.nii.gz")
    result = extract_cohort(cohort, out, _config(material, deep=False), overwrite=True)
    assert result.reused == 2 and result.failed == [] and len(result.extracted) == 3
    assert not (parts_dir_for(out) / "errors" / f"{ids[1]}.log").exists()


def test_dask_local_cluster_gives_the_same_table(material, tmp_path):
    from distributed import LocalCluster

    cohort = _copy_cohort(material, tmp_path / "cohort", cases=_case_ids(material)[:2])
    config = _config(material, roles=("T2W", "DWI"))
    local = extract_cohort(cohort, tmp_path / "local.parquet", config)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        result = extract_cohort(cohort, tmp_path / "dask.parquet", config, scheduler=cluster.scheduler_address)
    assert result.sidecar_data["timing"]["backend"] == "dask"
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "dask.parquet"), pd.read_parquet(tmp_path / "local.parquet"))
    assert local.failed == result.failed == []
    with pytest.raises(InputError, match="cannot connect to the Dask scheduler"):
        extract_cohort(cohort, tmp_path / "none.parquet", config, scheduler="tcp://127.0.0.1:9")


def test_mask_policy_transform_scanner_geometry_and_registration(material, tmp_path):
    """Without its own delineation a sequence gets the T2WI mask through transforms/, the scanner
    geometry (warning) or a registration run on the fly; the true motion gives the own delineation."""
    case_id = _case_ids(material)[0]
    case = tmp_path / case_id
    shutil.copytree(material["cohort"] / case_id, case)
    (case / "labels" / "tumor_DWI.nii.gz").unlink()
    truth = json.loads((case / "generator_truth.json").read_text(encoding="utf-8"))["series"]["DWI"]["motion_from_t2"]
    own = sitk.ReadImage(str(material["cohort"] / case_id / "labels" / "tumor_DWI.nii.gz"))

    def dice(mask_a, mask_b) -> float:
        a, b = sitk.GetArrayFromImage(mask_a) > 0, sitk.GetArrayFromImage(mask_b) > 0
        return 2.0 * np.sum(a & b) / (a.sum() + b.sum())

    from CervicalAILib.research.cohort.case import CaseInputs, case_masks

    inputs = CaseInputs(case)
    images = {"T2W": inputs.image("T2W"), "DWI": inputs.image("DWI")}
    warnings: list[str] = []
    geometry = case_masks(inputs, images, register=False, warnings=warnings)
    assert geometry["DWI"].source == "scanner geometry" and any("scanner geometry" in w for w in warnings)

    transform = sitk.Euler3DTransform()
    transform.SetCenter(truth["center_mm"])
    transform.SetMatrix(truth["matrix"])
    transform.SetTranslation(truth["translation_mm"])
    (case / "transforms").mkdir()
    sitk.WriteTransform(transform, str(case / "transforms" / "DWI.tfm"))
    carried = case_masks(CaseInputs(case), images, register=True, warnings=[])
    assert carried["DWI"].source == "registration transform"
    # the T2WI mask carried by the true motion agrees with the generator's own DWI delineation
    assert dice(carried["DWI"].mask, own) > 0.75
    assert dice(carried["DWI"].mask, own) >= dice(geometry["DWI"].mask, own) - 0.02

    shutil.rmtree(case / "transforms")
    registered = extract_case(case, _config(material, roles=("T2W", "DWI"), deep=False))
    assert registered.masks == {"T2W": "same grid", "DWI": "registered on the fly"}
    assert registered.features["DWI_original_shape_VoxelVolume"] > 0


def test_bad_cohorts_are_refused_with_clear_messages(material, tmp_path):
    ids = _case_ids(material)[:2]
    config = _config(material, roles=("T2W",), deep=False)
    cohort = _copy_cohort(material, tmp_path / "cohort", cases=ids)
    out = tmp_path / "features.parquet"

    (cohort / "cohort.csv").rename(cohort / "cases.csv")
    with pytest.raises(InputError, match="no cohort.csv: a cohort folder needs cohort.csv"):
        extract_cohort(cohort, out, config)
    frame = pd.read_csv(cohort / "cases.csv", dtype=str)
    frame.iloc[:1].to_csv(cohort / "cohort.csv", index=False)  # the second case folder is not listed
    with pytest.raises(InputError, match=rf"1 case folder\(s\) are missing from cohort.csv: {ids[1]}"):
        extract_cohort(cohort, out, config)
    pd.concat([frame, frame.iloc[:1].assign(case_id="SYN-NOFOLDER")]).to_csv(cohort / "cohort.csv", index=False)
    with pytest.raises(InputError, match="listed in cohort.csv have no case folder: SYN-NOFOLDER"):
        extract_cohort(cohort, out, config)
    pd.concat([frame, frame.iloc[:1]]).to_csv(cohort / "cohort.csv", index=False)
    with pytest.raises(InputError, match=f"duplicate case IDs \\(1\\): {ids[0]}"):
        extract_cohort(cohort, out, config)
    frame.drop(columns=["case_id"]).to_csv(cohort / "cohort.csv", index=False)
    with pytest.raises(InputError, match="no 'case_id' column"):
        extract_cohort(cohort, out, config)
    frame.to_csv(cohort / "cohort.csv", index=False)
    with pytest.raises(InputError, match="must end in .parquet or .csv"):
        extract_cohort(cohort, tmp_path / "features.xlsx", config)
    with pytest.raises(InputError, match="unknown sequence role"):
        ExtractionConfig.build(roles=("T2W", "PD"))
    with pytest.raises(InputError, match="encoder bundle folder not found"):
        ExtractionConfig.build(roles=("T2W",), encoders=[tmp_path / "nowhere"])
    # a case that lacks a requested sequence fails on its own (listed), not the cohort
    (cohort / ids[0] / "CET1.nii.gz").unlink()
    result = extract_cohort(cohort, out, _config(material, roles=("T2W", "CET1"), deep=False))
    assert [f["case_id"] for f in result.failed] == [ids[0]]
    assert "lacks the CET1 sequence" in result.failed[0]["error"]
    # the command line prints a CervicalAIError as one line, exit status 2
    assert main(["extract", str(tmp_path / "absent"), "--out", str(tmp_path / "x.csv"), "--no-deep"]) == 2


def test_part_files_are_gzip_json_with_the_input_stamp(material, tmp_path):
    cohort = _copy_cohort(material, tmp_path / "cohort", cases=_case_ids(material)[:1])
    out = tmp_path / "features.parquet"
    result = extract_cohort(cohort, out, _config(material, roles=("T2W",), deep=False))
    part = json.loads(gzip.decompress((parts_dir_for(out) / "cases" / f"{result.extracted[0]}.json.gz").read_bytes()))
    assert set(part) >= {"case_id", "components", "masks", "warnings", "timings", "inputs", "cpu_seconds"}
    assert "T2W.nii.gz" in part["inputs"] and "labels/tumor.nii.gz" in part["inputs"]
    radiomics = part["components"]["radiomics:T2W"]
    assert radiomics["key"] == _config(material, roles=("T2W",), deep=False).components()["radiomics:T2W"]
    assert radiomics["features"]["T2W_original_firstorder_Mean"] == pd.read_parquet(out)["T2W_original_firstorder_Mean"][0]


def test_dicom_case_folders_give_the_nifti_values(material, tmp_path):
    """A cohort of DICOM studies (case/dicom/<series>/, labels beside) is extracted like NIfTI cases."""
    from CervicalAILib.research.synth import SynthParams, generate_cohort

    # An axial T2WI: NIfTI stores an oblique grid's directions in float32, and pyradiomics' resampling
    # (resampledPixelSpacing) can turn that 1e-8 difference into one more resampled slice.
    params = SynthParams(matrix_scale=0.3, t2_orientation="axial")
    cohort = tmp_path / "dicom_cohort"
    generate_cohort(cohort, 1, 3, centers=2, fmt="dicom", params=params)
    nifti_cohort = generate_cohort(tmp_path / "nifti_cohort", 1, 3, centers=2, params=params).path
    config = _config(material, roles=("T2W", "DWI"), deep=False)
    result = extract_cohort(cohort, tmp_path / "dicom.csv", config)
    case_id = result.extracted[0]
    assert (cohort / case_id / "dicom").is_dir() and not (cohort / case_id / "T2W.nii.gz").exists()
    assert result.sidecar_data["masks"]["sources"] == {"T2W": {"same grid": 1}, "DWI": {"sequence label": 1}}
    dicom = pd.read_csv(tmp_path / "dicom.csv").iloc[0]
    nifti = extract_case(nifti_cohort / case_id, config).features
    for name, value in nifti.items():  # rel 1e-5: NIfTI keeps the origin in float32 (DICOM: decimal strings)
        assert dicom[name] == pytest.approx(value, rel=1e-5, abs=1e-5), name


def test_second_segmentation_by_mask_label_feeds_the_icc_filter(material, tmp_path):
    """--mask-label: a second reader's T2WI contour for every sequence, then ICC between the two tables."""
    from CervicalAILib.features.radiomic import extract_features, load_settings
    from CervicalAILib.io.case import load_case

    ids = _case_ids(material)
    cohort = _copy_cohort(material, tmp_path / "cohort")
    for case_id in ids[:-1]:  # the last case has no second contour
        truth = sitk.ReadImage(str(cohort / case_id / "labels" / "tumor.nii.gz"))
        second = sitk.BinaryErode(sitk.Cast(truth > 0, sitk.sitkUInt8), (1, 1, 0))  # a tighter reader
        sitk.WriteImage(second, str(cohort / case_id / "labels" / "tumor_reader2.nii.gz"))
    first_out, second_out = tmp_path / "reader1.csv", tmp_path / "reader2.csv"
    base = ["extract", str(cohort), "--roles", "T2W,DWI", "--no-deep", "--settings", str(material["settings"])]
    assert main([*base, "--out", str(first_out)]) == 0
    assert main([*base, "--out", str(second_out), "--mask-label", "tumor_reader2"]) == 3  # one case lacks it
    second = pd.read_csv(second_out, dtype={"case_id": str})
    assert "no labels/tumor_reader2 mask" in second.set_index("case_id").loc[ids[-1], "extraction_error"]
    sidecar = json.loads(sidecar_path_for(second_out).read_text(encoding="utf-8"))
    assert sidecar["masks"]["policy"].startswith("labels/tumor_reader2 (T2WI grid) for every sequence")
    assert "sequence label" not in sidecar["masks"]["sources"]["DWI"]  # the DWI's own label is not used
    # T2W: exactly pyradiomics on the second contour
    case = load_case(cohort / ids[0])
    direct = extract_features({"T2W": case.image("T2W")}, case.label("tumor_reader2"),
                              settings={"T2W": load_settings("T2W", material["settings"] / "T2W.yaml")})
    row = second.set_index("case_id").loc[ids[0]]
    for name, value in direct.items():
        assert row[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name
    first = pd.read_csv(first_out, dtype={"case_id": str}).set_index("case_id")
    assert row["T2W_original_shape_VoxelVolume"] < first.loc[ids[0], "T2W_original_shape_VoxelVolume"]
    # the two tables go into the ICC filter (cases both have)
    assert main(["icc", str(first_out), str(second_out), "--out", str(tmp_path / "icc")]) == 0
    icc = pd.read_csv(tmp_path / "icc" / "icc.csv")
    assert {"T2W_original_shape_VoxelVolume", "DWI_original_firstorder_Mean"} <= set(icc["feature"])
    with pytest.raises(InputError, match="mask label"):
        ExtractionConfig.build(roles=("T2W",), settings_dir=material["settings"], encoders=[], mask_label="../x")
