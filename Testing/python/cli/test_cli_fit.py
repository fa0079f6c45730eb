"""`cervicalai fit` from the command line: bundle, sidecar carried, summary, determinism, errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from CervicalAILib.cli import main
from CervicalAILib.research.fit.simulate import simulate_feature_table
from CervicalAILib.scoring.risk_model import load_risk_model

SETTINGS_CET1 = "binWidth: 25\nnormalize: true\nimageType:\n  Wavelet: {}\n"


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    sim = simulate_feature_table(360, seed=8, center_weights=(3, 1, 1), n_noise_radiomics=12,
                                 deep_families={"dl-resnet2d": 1.0}, deep_width=8)
    path = folder / "features.parquet"
    sim.frame.to_parquet(path)
    sidecar = {"synthetic": True,
               "radiomics_settings": {"CET1": SETTINGS_CET1, "ADC": {"binWidth": 50, "normalize": False}},
               "encoders": [{"family": "dl-resnet2d", "name": "cervicalai-resnet2d", "version": "0.3.0", "sha256": "ab" * 32}]}
    (folder / "features.json").write_text(json.dumps(sidecar))
    return path


ARGS = ["--lasso-folds", "5", "--family-cv-folds", "3"]


def test_fit_cli_writes_a_bundle_and_a_summary(table, tmp_path, capsys):
    out = tmp_path / "lnm"
    code = main(["fit", str(table), "--endpoint", "lnm", "--train-centers", "A", "--train-fraction", "0.7",
                 "--out", str(out), *ARGS])
    assert code == 0
    printed = capsys.readouterr()
    assert "Rad_score (radiomics)" in printed.out and "external_validation" in printed.out and "DLRC" in printed.out
    assert "PROGRESS" in printed.err
    model = load_risk_model(out)
    manifest = model.manifest
    assert "synthetic data, not for clinical use" in manifest["training_data"]  # from the sidecar's flag
    assert manifest["provenance"]["feature_table"]["file"] == "features.parquet"
    assert len(manifest["provenance"]["feature_table"]["sha256"]) == 64
    # radiomics settings of the roles Rad_score uses, verbatim from the sidecar; the encoder reference
    rad_roles = sorted({f.split("_")[0] for f in model.score_features("rad_score")})
    assert rad_roles == ["ADC", "CET1"]  # the two signal families of the simulated table
    assert sorted(manifest["inputs"]["radiomics_settings"]) == rad_roles
    assert model.bundle.read_text("radiomics/CET1.yaml") == SETTINGS_CET1
    assert model.radiomics_settings("ADC") == {"binWidth": 50, "normalize": False}
    encoder = manifest["inputs"]["scores"]["dl_score"]["encoder"]
    assert encoder == {"family": "dl-resnet2d", "name": "cervicalai-resnet2d", "sha256": "ab" * 32, "version": "0.3.0"}
    split = pd.read_csv(out / "cohort" / "split.csv")
    assert set(split["cohort"]) == {"training", "internal_validation", "external_validation"}
    assert set(split.loc[split["cohort"] == "external_validation", "center"]) == {"B", "C"}
    # refusing to overwrite without --overwrite; identical bytes when refitted with --overwrite
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main(["fit", str(table), "--endpoint", "lnm", "--train-centers", "A", "--train-fraction", "0.7",
                 "--out", str(out), *ARGS]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["fit", str(table), "--endpoint", "lnm", "--train-centers", "A", "--train-fraction", "0.7",
                 "--out", str(out), "--overwrite", *ARGS]) == 0
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before


def test_fit_cli_stage_group_with_a_split_column(table, tmp_path, capsys):
    out = tmp_path / "stage"
    code = main(["fit", str(table), "--endpoint", "stage_group", "--train-split", "split=train", "--out", str(out),
                 "--case-lists-out", str(tmp_path / "lists"), *ARGS])
    assert code == 0
    model = load_risk_model(out)
    assert model.endpoint == "stage_group"
    assert model.model["endpoint_column"] == "stage_group_crt"
    assert "chemoradiotherapy" in model.model["positive"]
    assert "figo_stage" not in [t["name"] for t in model.model["dlrc"]["terms"]]
    assert "cohort/split.csv" not in model.manifest["files"]
    scores = pd.read_csv(tmp_path / "lists" / "scores.csv")
    assert set(scores["cohort"]) == {"training", "internal_validation", "external_validation"}
    assert "Chemoradiotherapy-group probability" in (out / "MODEL_CARD.md").read_text()


def test_fit_cli_errors_are_one_line(table, tmp_path, capsys):
    frame = pd.read_parquet(table).drop(columns=["lnm"])
    bad = tmp_path / "no_endpoint.csv"
    frame.to_csv(bad, index=False)
    assert main(["fit", str(bad), "--endpoint", "lnm", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("cervicalai fit: error:") and "no column for endpoint 'lnm'" in err and "no_endpoint.csv" in err
    assert main(["fit", str(table), "--endpoint", "lnm", "--train-split", "train", "--out", str(tmp_path / "y")]) == 2
    assert "COLUMN=VALUE" in capsys.readouterr().err
    assert main(["fit", str(tmp_path / "missing.csv"), "--endpoint", "lnm", "--out", str(tmp_path / "z")]) == 2
    assert "feature table not found" in capsys.readouterr().err


def test_reproducible_feature_list_restricts_the_candidates(table, tmp_path, capsys):
    # the ICC list keeps the ADC signal but not the CET1 signal; deep features are not on the list,
    # so their family is left whole
    keep = tmp_path / "kept_features.txt"
    keep.write_text("# from cervicalai icc\nADC_original_firstorder_Median\nADC_original_firstorder_Mean\n"
                    "T2W_original_firstorder_Skewness\n")
    out = tmp_path / "icc_lnm"
    assert main(["fit", str(table), "--endpoint", "lnm", "--train-centers", "A", "--train-fraction", "0.7",
                 "--keep-features", str(keep), "--out", str(out), *ARGS]) == 0
    model = load_risk_model(out)
    assert set(model.score_features("rad_score")) <= {"ADC_original_firstorder_Median", "ADC_original_firstorder_Mean",
                                                       "T2W_original_firstorder_Skewness"}
    assert model.score_features("dl_score")  # the deep family was not restricted
    assert model.manifest["provenance"]["fit"]["keep_features"]["count"] == 3
    selection = json.loads((out / "selection.json").read_text())
    reasons = {d["name"]: d["reason"] for d in selection["dropped_features"]["radiomics"]}
    assert "reproducible-feature list" in reasons["CET1_wavelet-HLH_gldm_SmallDependenceEmphasis"]


def test_existing_output_is_refused_before_fitting(table, tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "reader_notes.txt").write_text("mine")
    assert main(["fit", str(table), "--endpoint", "lnm", "--out", str(out), *ARGS]) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "PROGRESS" not in err  # refused at once, not after a long fit
    assert (out / "reader_notes.txt").read_text() == "mine"


def test_no_command_writes_a_bundle_into_the_shipped_model_folder(table, tmp_path, capsys):
    """fit, train-seg and train-encoder refuse an --out in Resources/Models at once, even with --overwrite."""
    from CervicalAILib.bundles.catalog import shipped_models_dirs
    from CervicalAILib.core.hashing import sha256_file

    models = next(d for d in shipped_models_dirs() if (d / "dlrc-lnm" / "bundle.json").is_file())
    before = sha256_file(models / "dlrc-lnm" / "bundle.json")
    commands = [
        ["fit", str(table), "--endpoint", "lnm", "--out", str(models / "dlrc-lnm"), "--overwrite", *ARGS],
        ["train-seg", str(tmp_path), "--out", str(models / "cervix-tumor-seg-mpmri"), "--overwrite"],
        ["train-encoder", str(tmp_path), "--out", str(models / "new-encoder")],
    ]
    for command in commands:
        assert main(command) == 2, command[0]
        err = capsys.readouterr().err
        line = err.strip().splitlines()[-1]
        assert "extension's own model folder" in line and "tools/update_model_catalog.py" in line, command[0]
        assert "PROGRESS" not in err  # refused before any work
    assert sha256_file(models / "dlrc-lnm" / "bundle.json") == before
    assert not (models / "new-encoder").exists()
