"""`cervicalai study-report` at tiny scale: cohort -> extraction -> fits -> statistics -> report and bundles.

The numbers of a 44-case run mean nothing clinically; what is checked is that every number in the
report is the one the statistics give on the run's own per-case scores and cohort.csv (oracle AUC,
SRA sensitivity, DeLong), that the split is paper 004's, and that the bundles load with their hashes.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from deep_testdata import write_encoder_bundle

from CervicalAILib.cli import main
from CervicalAILib.core.errors import OutputExistsError

# First-order features without Energy/TotalEnergy (which grow with the tumour volume): at 44 cases
# volume-like features separate the stage groups perfectly in training and the fit has no maximum.
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
  firstorder: [10Percentile, 90Percentile, Entropy, InterquartileRange, Kurtosis, Maximum, MeanAbsoluteDeviation,
               Mean, Median, Minimum, Range, RobustMeanAbsoluteDeviation, RootMeanSquared, Skewness,
               StandardDeviation, Uniformity, Variance]
"""
CROPS = {
    "t2d": {"mode": "2d", "size": [16, 16], "channels": 3, "channel_mode": "neighbours", "margin_mm": 5,
            "spacing_mm": [2.0, 2.0], "fit": True, "masking": "tumor"},
    "t3d": {"mode": "3d", "size": [6, 12, 12], "channels": 1, "margin_mm": 5, "spacing_mm": [3.0, 3.0, 4.0],
            "fit": True, "masking": "tumor"},
}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    settings = root / "settings"
    settings.mkdir()
    for role in ("T2W", "DWI", "CET1"):
        (settings / f"{role}.yaml").write_text(SETTINGS, encoding="utf-8")
    encoders = []
    for name, crop in CROPS.items():
        write_encoder_bundle(root / name, crop, {"scale": "zscore"}, dim=8, name=name)
        encoders.append(str(root / name))
    argv = ["study-report", "--out", str(root / "report"), "--scale", "0.04", "--matrix-scale", "0.25",
            "--settings", str(settings), "--encoders", *encoders, "--min-events", "3", "--mwu-p", "0.05",
            "--jobs", "1", "--bundle-version", "2.0.1"]
    assert main(argv) == 0
    return {"root": root, "argv": argv, "report": root / "report", "work": root / "report.work"}


def _split(study) -> pd.DataFrame:
    scores = pd.read_csv(study["report"] / "tables" / "scores_lnm.csv", dtype={"case_id": str, "center": str})
    cohort = pd.read_csv(study["work"] / "cohort" / "cohort.csv", dtype={"case_id": str, "center": str})
    return scores.merge(cohort[["case_id", "lnm", "sra", "oracle_lnm_probability"]], on="case_id",
                        suffixes=("", "_truth"))


def test_seed004_design_and_files(study):
    report = study["report"]
    metrics = json.loads((report / "metrics.json").read_text(encoding="utf-8"))
    cohort = pd.read_csv(study["work"] / "cohort" / "cohort.csv", dtype={"case_id": str, "center": str})
    assert len(cohort) == 44 and sorted(cohort["center"].unique()) == ["A", "B", "C", "D", "E"]
    merged = _split(study)
    # every case the extraction kept is scored; centre A is split 7:3, other centres are external
    failed = {f["case_id"] for f in metrics["extraction"]["failed_cases"]}
    assert set(merged["case_id"]) == set(cohort["case_id"]) - failed
    assert set(merged.loc[merged["cohort"] == "external_validation", "center"]) <= {"B", "C", "D", "E"}
    centre_a = merged[merged["center"] == "A"]
    assert set(centre_a["cohort"]) == {"training", "internal_validation"}
    assert (centre_a["cohort"] == "training").mean() == pytest.approx(0.7, abs=0.1)
    assert (merged["lnm"] == merged["lnm_truth"]).all()
    # both endpoints read the same patients in each cohort (one split, stratified by LNM)
    stage = pd.read_csv(report / "tables" / "scores_stage_group.csv", dtype={"case_id": str})
    both = merged[["case_id", "cohort"]].merge(stage[["case_id", "cohort"]], on="case_id", suffixes=("_lnm", "_stage"))
    assert len(both) == len(merged) and (both["cohort_lnm"] == both["cohort_stage"]).all()
    for name in ("study_report.md", "tables/table1_clinical.csv", "tables/table2_lnm.md", "tables/table4_lnm.csv",
                 "tables/oracle_lnm.csv", "tables/table2_stage_group.csv", "tables/decision_curve_lnm.csv",
                 "figures/roc_lnm_external_validation.png", "figures/calibration_lnm_training.png",
                 "figures/decision_curve_stage_group_training.png", "figures/nomogram_lnm.png"):
        path = report / name
        assert path.is_file() and path.stat().st_size > 100, name
    assert (report / "figures" / "roc_lnm_training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert metrics["command"].startswith("cervicalai study-report --out ")
    assert "--scale 0.04" in metrics["command"] and "--min-events 3" in metrics["command"]
    assert "--bundle-version 2.0.1" in metrics["command"]


def test_oracle_and_sra_figures_are_recomputed_from_the_case_scores(study):
    from sklearn.metrics import roc_auc_score

    from CervicalAILib.research.stats import delong_paired_test

    metrics = json.loads((study["report"] / "metrics.json").read_text(encoding="utf-8"))["endpoints"]["lnm"]
    merged = _split(study)
    for cohort, oracle in metrics["oracle"].items():
        part = merged[merged["cohort"] == cohort]
        y = part["lnm"].to_numpy()
        assert oracle["scores"]["Oracle"]["auc"] == pytest.approx(roc_auc_score(y, part["oracle_lnm_probability"]), abs=1e-12)
        assert oracle["scores"]["DLRC"]["auc"] == pytest.approx(roc_auc_score(y, part["dlrc_probability"]), abs=1e-12)
        test = delong_paired_test(y, part["dlrc_probability"].to_numpy(), part["oracle_lnm_probability"].to_numpy())
        assert oracle["comparisons"][0]["p"] == pytest.approx(test.p, abs=1e-12)
        # the SRA row: the rule's own calls against the pathology
        sra = metrics["cohorts"][cohort]["rules"]["SRA"]
        calls = part["sra"].to_numpy()
        if y.sum():
            assert sra["sensitivity"] == pytest.approx(calls[y == 1].mean(), abs=1e-12)
        assert sra["specificity"] == pytest.approx(1 - calls[y == 0].mean(), abs=1e-12)
        # the Radiomics and DL rows are the logistic models' probabilities: AUC of the scores themselves
        for name, column in metrics["models"].items():
            assert metrics["cohorts"][cohort]["scores"][name]["auc"] == pytest.approx(
                roc_auc_score(y, part[column]), abs=1e-12)
    # validation cohorts use the training cohort's Youden cut-off
    train_cut = metrics["cohorts"]["training"]["scores"]["DLRC"]["cutoff"]
    for cohort in ("internal_validation", "external_validation"):
        if cohort in metrics["cohorts"]:
            entry = metrics["cohorts"][cohort]["scores"]["DLRC"]
            assert entry["cutoff"] == train_cut and entry["cutoff_from"].startswith("training cohort")
    # Table 2 holds these numbers, with the SRA row
    table2 = pd.read_csv(study["report"] / "tables" / "table2_lnm.csv")
    assert set(table2["Model"]) == set(metrics["models"]) | {"SRA"}
    ext = metrics["oracle"].get("external_validation")
    markdown = (study["report"] / "study_report.md").read_text(encoding="utf-8")
    if ext:
        assert f"AUC {ext['scores']['DLRC']['auc']:.3f}" in markdown and f"AUC {ext['scores']['Oracle']['auc']:.3f}" in markdown
    assert "not for clinical use" in markdown


def test_bundles_load_with_provenance_and_reproduce_the_scores(study):
    from CervicalAILib.scoring.risk_model import load_risk_model

    bundles = study["report"] / "bundles"
    for endpoint, name in (("lnm", "dlrc-lnm"), ("stage_group", "dlrc-stage-group")):
        model = load_risk_model(bundles / name)  # verifies every hash
        manifest = model.manifest
        assert manifest["name"] == name and model.endpoint == endpoint and manifest["version"] == "2.0.1"
        assert manifest["synthetic_training_data"] is True
        assert "synthetic data from the CervicalAI generator, not for clinical use" in manifest["training_data"]
        assert manifest["provenance"]["fit"]["split"] == {"mode": "centres", "train_centers": ["A"],
                                                          "train_fraction": 0.7, "seed": 42, "stratified_by": "lnm"}
        assert manifest["provenance"]["extraction"]["cohort"]["generator"]["seed"] == 4
        card = (bundles / name / "MODEL_CARD.md").read_text(encoding="utf-8")
        assert "not for clinical use" in card
        in_bundle = pd.read_csv(bundles / name / "cohort" / "scores.csv", dtype={"case_id": str})
        in_report = pd.read_csv(study["report"] / "tables" / f"scores_{endpoint}.csv", dtype={"case_id": str})
        merged = in_bundle.merge(in_report, on="case_id", suffixes=("_b", "_r"))
        assert len(merged) == len(in_report)
        np.testing.assert_allclose(merged["dlrc_probability_b"], merged["dlrc_probability_r"], rtol=1e-9)


def test_rerun_refuses_then_reuses_cohort_and_features(study, capsys):
    from CervicalAILib.cli import build_parser
    from CervicalAILib.cli.study_report import config_from_args
    from CervicalAILib.research.study_report.run import _cohort, _features

    assert main(study["argv"]) == 2
    assert "report folder exists" in capsys.readouterr().err
    # the resumable steps: the same options find the cohort and the feature table made before
    config = config_from_args(build_parser().parse_args(study["argv"] + ["--overwrite"]))
    table = study["work"] / "features.parquet"
    before = table.stat().st_mtime_ns
    messages = []
    cohort = _cohort(config, lambda f, m: messages.append(m))
    assert cohort == study["work"] / "cohort" and "reusing the cohort" in messages[-1]
    path, sidecar = _features(config, cohort, lambda f, m: messages.append(m))
    assert path == table and table.stat().st_mtime_ns == before and "reusing the feature table" in messages[-1]
    assert sidecar["cases"]["in_cohort"] == 44
    # another seed is another cohort: refused without --overwrite, naming the difference
    other = config_from_args(build_parser().parse_args(study["argv"] + ["--seed", "5"]))
    with pytest.raises(OutputExistsError, match="a different cohort is there \\(seed 4 \\(wanted 5\\)"):
        _cohort(other, lambda f, m: None)


def test_bad_options_are_refused(tmp_path):
    assert main(["study-report", "--out", str(tmp_path / "r"), "--scale", "0"]) == 2
    assert main(["study-report", "--out", str(tmp_path / "r"), "--min-events", "1"]) == 2
    assert main(["study-report", "--out", str(tmp_path / "r"), "--bundle-version", "2"]) == 2
    assert main(["study-report", "--out", str(tmp_path / "r"), "--cohort", str(tmp_path / "none"), "--no-deep"]) == 2


def test_refit_is_not_written_into_the_extensions_model_folder(tmp_path, capsys):
    from CervicalAILib.bundles.catalog import shipped_models_dirs

    shipped = next(d for d in shipped_models_dirs() if d.is_dir())
    assert main(["study-report", "--out", str(tmp_path / "r"), "--bundles", str(shipped)]) == 2
    assert "is the extension's own model folder" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_model_without_contrast_sees_no_ce_t1wi_and_is_compared_with_the_full_model(study):
    from sklearn.metrics import roc_auc_score

    from CervicalAILib.scoring.risk_model import load_risk_model

    report = study["report"]
    model = load_risk_model(report / "bundles" / "dlrc-lnm-no-contrast")
    assert model.endpoint == "lnm" and model.manifest["name"] == "dlrc-lnm-no-contrast"
    assert set(model.required_sequences) <= {"T2W", "ADC", "DWI"} and model.required_sequences
    assert model.manifest["provenance"]["fit"]["roles"] == ["T2W", "ADC", "DWI"]
    assert not any(f.startswith("CET1_") for f in model.manifest["inputs"]["features"])
    assert "CET1" not in model.manifest["inputs"]["sequences"]
    assert "no CE-T1WI feature" in model.manifest["training_data"]
    card = (report / "bundles" / "dlrc-lnm-no-contrast" / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "not for clinical use" in card and "no CE-T1WI feature" in card and "without contrast" in card
    # the full model of the same run still uses every sequence, and its provenance has no roles key
    full = load_risk_model(report / "bundles" / "dlrc-lnm")
    assert "roles" not in full.manifest["provenance"]["fit"]
    # the comparison: paired on the cases both scored, AUCs those of the per-case scores
    metrics = json.loads((report / "metrics.json").read_text(encoding="utf-8"))["variants"]["lnm_no_contrast"]
    assert metrics["reference"] == "dlrc-lnm" and metrics["candidate_sequences"] == ["T2W", "ADC", "DWI"]
    variant = pd.read_csv(report / "tables" / "scores_lnm_no_contrast.csv", dtype={"case_id": str})
    both = variant.merge(pd.read_csv(report / "tables" / "scores_lnm.csv", dtype={"case_id": str}),
                         on="case_id", suffixes=("", "_full"))
    assert metrics["comparison"]
    for cohort, entry in metrics["comparison"].items():
        part = both[both["cohort"] == cohort]
        y = part["lnm"].to_numpy()
        assert entry["n"] == len(part)
        assert entry["scores"]["DLRC without contrast"]["auc"] == pytest.approx(roc_auc_score(y, part["dlrc_probability"]), abs=1e-12)
        assert entry["scores"]["DLRC (full model)"]["auc"] == pytest.approx(roc_auc_score(y, part["dlrc_probability_full"]), abs=1e-12)
        assert entry["scores"]["Oracle"]["auc"] == pytest.approx(roc_auc_score(y, part["oracle_lnm_probability"]), abs=1e-12)
    markdown = (report / "study_report.md").read_text(encoding="utf-8")
    assert "## LNM without contrast (T2WI + DWI/ADC): `dlrc-lnm-no-contrast`" in markdown
    # the headline's line: the AUCs of the paired comparison on the external cohort
    entry = metrics["comparison"]["external_validation"]
    own, full = (f"{entry['scores'][k]['auc']:.3f}" for k in ("DLRC without contrast", "DLRC (full model)"))
    assert (f"- LNM without contrast (T2WI + DWI/ADC) (`dlrc-lnm-no-contrast@2.0.1`), external validation: AUC {own} "
            f"(") in markdown and f"against the full model's {full} (" in markdown
    assert (report / "figures" / "roc_lnm_no_contrast_vs_full_training.png").is_file()


def test_variants_only_refits_the_same_model_against_a_given_full_model(study, tmp_path):
    report = study["report"]
    out = tmp_path / "variants"
    argv = study["argv"] + ["--work", str(study["work"]), "--variants-only", "--reference",
                            str(report / "bundles" / "dlrc-lnm"), "--no-figures"]
    argv[argv.index("--out") + 1] = str(out)
    assert main(argv) == 0
    assert sorted(p.name for p in (out / "bundles").iterdir()) == ["dlrc-lnm-no-contrast"]
    full_run = json.loads((report / "metrics.json").read_text(encoding="utf-8"))["variants"]["lnm_no_contrast"]
    alone = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert "endpoints" not in alone and "--variants-only" in alone["command"]
    # the full model's scores come from its bundle's scores.csv (10 significant digits): same AUCs
    for cohort, entry in full_run["comparison"].items():
        for name, value in entry["scores"].items():
            assert alone["variants"]["lnm_no_contrast"]["comparison"][cohort]["scores"][name]["auc"] == pytest.approx(
                value["auc"], abs=1e-9)
    assert alone["variants"]["lnm_no_contrast"]["dlrc"] == full_run["dlrc"]
    same = (out / "bundles" / "dlrc-lnm-no-contrast" / "model.json").read_bytes()
    assert same == (report / "bundles" / "dlrc-lnm-no-contrast" / "model.json").read_bytes()
    # a full model of another split is refused (here: the shipped one, fitted on the full-size cohort)
    argv[argv.index("--out") + 1] = str(tmp_path / "other")
    argv[argv.index("--reference") + 1] = str(tmp_path / "none")
    assert main(argv) == 2
