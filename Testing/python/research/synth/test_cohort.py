"""`generate_cohort` and `cervicalai synth`: layout, determinism across --jobs, refusals."""

from __future__ import annotations

import csv
import hashlib
import json

import numpy as np
import pytest

from CervicalAILib.cli import main
from CervicalAILib.core.errors import InputError, OutputExistsError
from CervicalAILib.research.synth import SynthParams, generate_cohort, sample_cohort_table

SMALL = SynthParams(matrix_scale=0.3)
REQUIRED_COLUMNS = (
    "case_id", "center", "age", "figo_stage", "histology", "ln_short_axis_mm", "ln_long_axis_mm", "ln_necrosis",
    "c_lnm", "sra", "scc_ag", "lnm", "stage_group", "stage_group_crt", "tumor_volume_ml", "tumor_max_diameter_mm",
    "oracle_lnm_probability", "oracle_stage_probability",
)


def digest(folder) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "cohort"
    result = generate_cohort(out, 3, seed=4, centers=2, jobs=1, params=SMALL)
    return result


def test_cohort_layout_and_tables(cohort):
    out = cohort.path
    case_dirs = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert len(case_dirs) == 3 and all(name.startswith("SYN4-") for name in case_dirs)
    with open(out / "cohort.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["case_id"] for r in rows] == [f"SYN4-{r['center']}-{i + 1:04d}" for i, r in enumerate(rows)]
    assert set(REQUIRED_COLUMNS) <= set(rows[0])
    assert all(key == key.lower() for key in rows[0])
    for row in rows:
        clinical = json.loads((out / row["case_id"] / "clinical.json").read_text())
        assert clinical["figo_stage"] == row["figo_stage"] and str(clinical["lnm"]) == row["lnm"]
        assert 0 < float(row["oracle_lnm_probability"]) < 1
        assert float(row["tumor_volume_ml"]) > 0
        truth = json.loads((out / row["case_id"] / "generator_truth.json").read_text())
        assert set(truth["series"]) == {"T2W", "T2W_SAG", "DWI", "ADC", "CET1"}
    manifest = json.loads((out / "generator.json").read_text())
    assert manifest["seed"] == 4 and manifest["n_cases"] == 3 and manifest["version"]
    assert manifest["parameters"]["matrix_scale"] == 0.3
    assert manifest["label_legend"]["labels/organs.nii.gz"]["1"]["name"] == "tumor"
    assert manifest["version"] == "2.0.0" and "T2W_SAG" in manifest["case_folder"]["nifti"]
    assert manifest["outcome_model"]["lnm"]["coefficients"]["size"] == SMALL.outcome.size
    assert "1e-6 mm2/s" in manifest["units"]["ADC"]
    assert len(manifest["centers"]) == 2
    # regenerating from the manifest's parameters gives the same table
    assert SynthParams.from_dict(manifest["parameters"]) == SMALL


def test_cohort_csv_matches_the_image_free_table(cohort):
    table = sample_cohort_table(3, seed=4, centers=2, params=SMALL, measure_tumours=True)
    with open(cohort.path / "cohort.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for i, row in enumerate(rows):
        for key in REQUIRED_COLUMNS:
            expected = table[key][i]
            if isinstance(expected, (float, np.floating)):
                assert float(row[key]) == pytest.approx(float(expected), abs=1e-9), key
            else:
                assert row[key] == str(expected), key


def test_same_seed_same_bytes_whatever_the_number_of_jobs(cohort, tmp_path):
    parallel = generate_cohort(tmp_path / "parallel", 3, seed=4, centers=2, jobs=2, params=SMALL)
    assert digest(parallel.path) == digest(cohort.path)


def test_existing_output_is_not_overwritten_without_permission(tmp_path):
    out = tmp_path / "cohort"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        generate_cohort(out, 1, seed=1, params=SMALL)
    assert (out / "mine.txt").read_text() == "keep me"
    generate_cohort(out, 1, seed=1, params=SMALL, overwrite=True)
    assert not (out / "mine.txt").exists() and (out / "cohort.csv").is_file()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_cases": 0}, "number of cases"),
        ({"n_cases": 1, "fmt": "png"}, "unknown output format"),
        ({"n_cases": 1, "jobs": 0}, "--jobs"),
        ({"n_cases": 1, "centers": -2}, "centres"),
        ({"n_cases": 1, "seed": -5}, "seed"),
    ],
)
def test_bad_cohort_arguments_are_refused(tmp_path, kwargs, message):
    kwargs = {"seed": 1, **kwargs}
    with pytest.raises(InputError, match=message):
        generate_cohort(tmp_path / "out", params=SMALL, **kwargs)
    assert not (tmp_path / "out").exists()


def test_cli_generates_and_reports_progress(tmp_path, capsys):
    out = tmp_path / "cli"
    status = main(["synth", "--cases", "1", "--seed", "2", "--out", str(out), "--matrix-scale", "0.3"])
    assert status == 0
    captured = capsys.readouterr()
    assert "PROGRESS 1.000" in captured.err
    assert (out / "SYN2-A-0001" / "T2W.nii.gz").is_file()


def test_cli_t2_orientation_replans_the_same_patient(tmp_path):
    """--t2-orientation axial: centre A's T2WI (oblique axial by its protocol) is planned axial instead,
    for the same patient: same tumour, same clinical values, and the choice is recorded."""
    def t2(out, *extra):
        assert main(["synth", "--cases", "1", "--seed", "2", "--out", str(out), "--matrix-scale", "0.3", *extra]) == 0
        case = out / "SYN2-A-0001"
        truth = json.loads((case / "generator_truth.json").read_text())
        direction = np.array(truth["series"]["T2W"]["direction"]).reshape(3, 3)
        tilt = float(np.degrees(np.arccos(abs(direction[2, 2]))))
        generator = json.loads((out / "generator.json").read_text())
        return tilt, (case / "clinical.json").read_text(), generator["parameters"]["t2_orientation"]

    site_tilt, site_clinical, site_choice = t2(tmp_path / "site")
    axial_tilt, axial_clinical, axial_choice = t2(tmp_path / "axial", "--t2-orientation", "axial")
    assert site_tilt > 2.0 and site_choice == "site"  # centre A plans its T2WI perpendicular to the canal
    assert axial_tilt == pytest.approx(0.0, abs=1e-6) and axial_choice == "axial"
    assert axial_clinical == site_clinical


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--cases", "2", "--t2-orientation", "axial", "--generator-version", "1.1.0"], "needs generator 2.0.0"),
        (["--cases", "0"], "number of cases"),
        (["--cases", "2", "--jobs", "0"], "--jobs"),
        (["--cases", "2", "--centers", "0"], "centres"),
        (["--cases", "2", "--matrix-scale", "-1"], "matrix scale"),
        (["--cases", "2", "--generator-version", "9.9"], "generator version"),
        ([], "--cases"),
    ],
)
def test_cli_bad_parameters_give_one_clear_line(tmp_path, capsys, argv, message):
    status = main(["synth", "--out", str(tmp_path / "o"), *argv])
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("cervicalai synth: error:")


def test_cli_refuses_unknown_format_and_existing_output(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["synth", "--cases", "1", "--out", str(tmp_path / "o"), "--format", "png"])
    assert exc.value.code == 2
    assert "invalid choice: 'png'" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert main(["synth", "--cases", "1", "--out", str(tmp_path / "full")]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_figure_of_a_case(cohort, tmp_path, capsys):
    from CervicalAILib.research.synth.figure import case_figure

    case_dir = next(p for p in sorted(cohort.path.iterdir()) if p.is_dir())
    png = case_figure(case_dir, tmp_path / "case.png")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    with pytest.raises(OutputExistsError):
        case_figure(case_dir, png)
    with pytest.raises(InputError, match="case folder"):
        case_figure(tmp_path / "nowhere", tmp_path / "x.png")
    assert main(["synth", "--figure", str(case_dir), "--out", str(png), "--overwrite"]) == 0
    assert main(["synth", "--figure", str(case_dir), "--out", str(tmp_path / "x.jpg")]) == 2
    assert ".png" in capsys.readouterr().err
