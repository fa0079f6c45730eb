"""`evaluate_scores`, `cervicalai evaluate` (the command-line contract), Tables 2 and 4, figures."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from CervicalAILib.cli import main
from CervicalAILib.core.errors import InputError
from CervicalAILib.research.stats import (
    cutoffs_from,
    evaluate_scores,
    table2,
    table2_rows,
    table4,
    table4_rows,
)
from CervicalAILib.research.stats.tables import format_auc, format_p, format_percent
from conftest import refdata_path

TOL = 1e-6


@pytest.fixture(scope="module")
def asah_path():
    return refdata_path("statistics", "aSAH.csv")


def _run(args):
    return main(["evaluate", *map(str, args)])


def test_cli_contract_on_asah_equals_proc(asah_path, tmp_path):
    out = tmp_path / "ev"
    assert _run([asah_path, "--label", "outcome", "--positive", "Poor", "--score", "wfns", "--score", "s100b",
                 "--out", out]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    wfns, s100b = metrics["scores"]["wfns"], metrics["scores"]["s100b"]
    assert wfns["auc"] == pytest.approx(0.823678861788618, abs=TOL)
    assert s100b["auc"] == pytest.approx(0.73136856368563685, abs=TOL)
    for entry in (wfns, s100b):
        for key in ("auc", "cutoff", "accuracy", "sensitivity", "specificity", "ppv", "npv"):
            assert isinstance(entry[key], float)
        assert len(entry["auc_ci"]) == 2 and entry["auc_ci"][0] < entry["auc"] < entry["auc_ci"][1]
        assert "hosmer_lemeshow" not in entry  # wfns (1-5) and s100b (up to 2.07) are not probabilities
    assert s100b["cutoff"] == pytest.approx(0.205, abs=1e-12)  # pROC's Youden-best threshold
    assert (s100b["sensitivity"], s100b["specificity"]) == pytest.approx((26 / 41, 58 / 72))
    [comparison] = metrics["comparisons"]
    assert (comparison["a"], comparison["b"]) == ("wfns", "s100b")
    assert comparison["z"] == pytest.approx(2.20898359144091, abs=TOL)
    assert comparison["p"] == pytest.approx(0.0271757822291882, abs=TOL)
    assert comparison["diff_ci"] == pytest.approx([0.0104061769564846, 0.174214419249478], abs=TOL)
    dca = pd.read_csv(out / "decision_curve.csv")
    assert list(dca.columns) == ["threshold", "model", "net_benefit"]
    assert set(dca["model"]) == {"all", "none"}  # no probability score
    assert dca["threshold"].nunique() == 100
    for name in ("table2.csv", "table2.md", "table4.csv", "table4.md", "roc.png", "decision_curve.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_unpaired_equals_proc(asah_path, tmp_path):
    out = tmp_path / "ev"
    assert _run([asah_path, "--label", "outcome", "--positive", "Poor", "--score", "wfns", "--score", "s100b",
                 "--unpaired", "--no-figures", "--out", out]) == 0
    [comparison] = json.loads((out / "metrics.json").read_text())["comparisons"]
    assert comparison["z"] == pytest.approx(1.43490640926908, abs=TOL)
    assert comparison["p"] == pytest.approx(0.152825378808796, abs=TOL)
    assert comparison["df"] > 100 and "unpaired" in comparison["method"]


def test_cli_probability_scores_get_hosmer_lemeshow_and_decision_curves(tmp_path):
    df = pd.read_csv(refdata_path("statistics", "df_binary.csv"))
    table = tmp_path / "t.csv"
    df.to_csv(table, index=False)
    out = tmp_path / "ev"
    assert _run([table, "--label", "cancer", "--score", "cancerpredmarker", "--score", "marker",
                 "--thresholds", "0:0.5:0.05", "--out", out]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    model = metrics["scores"]["cancerpredmarker"]
    assert model["is_probability"] and set(model["hosmer_lemeshow"]) >= {"statistic", "df", "p"}
    assert model["hosmer_lemeshow"]["df"] == 8
    assert "hosmer_lemeshow" not in metrics["scores"]["marker"]  # marker goes above 1: not a probability
    dca = pd.read_csv(out / "decision_curve.csv")
    assert set(dca["model"]) == {"cancerpredmarker", "all", "none"}
    row = dca[(dca["model"] == "cancerpredmarker") & np.isclose(dca["threshold"], 0.25)]
    assert row["net_benefit"].item() == pytest.approx(0.064, abs=1e-9)
    assert (out / "calibration.png").exists()


def _cohort_table(seed=0):
    rng = np.random.default_rng(seed)
    parts = []
    for cohort, n, shift in (("training", 240, 0.0), ("external", 160, 0.3)):
        x = rng.normal(size=n)
        lnm = rng.random(n) < 1 / (1 + np.exp(-(-1 + 1.5 * x)))
        dlrc = 1 / (1 + np.exp(-(-1 + 1.4 * x + shift + rng.normal(scale=0.5, size=n))))
        rad = 1 / (1 + np.exp(-(-1 + 0.8 * x + rng.normal(scale=1.0, size=n))))
        sra = (rng.random(n) < np.where(lnm, 0.35, 0.04)).astype(int)
        parts.append(pd.DataFrame({"cohort": cohort, "lnm": lnm.astype(int), "DLRC": dlrc, "Radiomics": rad,
                                   "SRA": sra}))
    return pd.concat(parts, ignore_index=True)


def test_train_group_cutoffs_are_carried_to_validation(tmp_path):
    data = _cohort_table()
    path = tmp_path / "scores.csv"
    data.to_csv(path, index=False)
    out = tmp_path / "ev"
    assert _run([path, "--label", "lnm", "--score", "DLRC", "--score", "Radiomics", "--rule", "SRA",
                 "--group", "cohort", "--train-group", "training", "--no-figures", "--out", out]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    train = data[data["cohort"] == "training"]
    external = data[data["cohort"] == "external"]
    alone = evaluate_scores(train["lnm"], {"DLRC": train["DLRC"], "Radiomics": train["Radiomics"]})
    cut = alone["scores"]["DLRC"]["cutoff"]
    assert metrics["groups"]["training"]["scores"]["DLRC"]["cutoff"] == cut
    assert metrics["groups"]["external"]["scores"]["DLRC"]["cutoff"] == cut
    assert "training" in metrics["groups"]["external"]["scores"]["DLRC"]["cutoff_from"]
    ext = metrics["groups"]["external"]["scores"]["DLRC"]
    calls = external["DLRC"] >= cut
    truth = external["lnm"] == 1
    assert ext["tp"] == int((calls & truth).sum()) and ext["fp"] == int((calls & ~truth).sum())
    sra = metrics["groups"]["external"]["rules"]["SRA"]
    assert sra["tp"] == int(((external["SRA"] == 1) & truth).sum())
    t2 = pd.read_csv(out / "table2.csv")
    assert t2.columns.tolist() == ["Cohort", "Model", "AUC (95% CI)", "ACC", "SEN", "SPE", "PPV", "NPV"]
    assert t2["Cohort"].tolist() == ["training"] * 3 + ["external"] * 3
    assert t2.loc[t2["Model"] == "SRA", "AUC (95% CI)"].tolist() == ["/", "/"]
    t4 = pd.read_csv(out / "table4.csv")
    assert t4.columns.tolist() == ["Model comparison", "training", "external"]
    assert (out / "decision_curve_training.csv").exists() and (out / "decision_curve_external.csv").exists()

    # the same cut-offs carried with --cutoff-from on the external cohort alone
    train_out, ext_out = tmp_path / "train", tmp_path / "ext"
    train.to_csv(tmp_path / "train.csv", index=False)
    external.to_csv(tmp_path / "external.csv", index=False)
    assert _run([tmp_path / "train.csv", "--label", "lnm", "--score", "DLRC", "--no-figures", "--out", train_out]) == 0
    assert _run([tmp_path / "external.csv", "--label", "lnm", "--score", "DLRC", "--no-figures",
                 "--cutoff-from", train_out / "metrics.json", "--out", ext_out]) == 0
    carried = json.loads((ext_out / "metrics.json").read_text())["scores"]["DLRC"]
    assert carried["cutoff"] == cut and carried["tp"] == ext["tp"] and carried["tn"] == ext["tn"]


def test_missing_scores_are_dropped_with_a_warning(caplog):
    rng = np.random.default_rng(2)
    y = rng.random(100) < 0.4
    a = rng.normal(size=100) + y
    b = rng.normal(size=100) + y
    a[:3] = np.nan
    b[10:15] = np.nan
    with caplog.at_level(logging.WARNING):
        paired = evaluate_scores(y, {"a": a, "b": b})
    assert "8 of 100 patient(s) lack at least one score" in caplog.text
    assert paired["scores"]["a"]["n"] == paired["scores"]["b"]["n"] == 92
    assert paired["scores"]["a"]["n_missing"] == 3 and paired["scores"]["b"]["n_missing"] == 5
    unpaired = evaluate_scores(y, {"a": a, "b": b}, paired=False)
    assert unpaired["scores"]["a"]["n"] == 97 and unpaired["scores"]["b"]["n"] == 95
    assert unpaired["comparisons"][0]["method"].startswith("DeLong unpaired")


def test_tables_layout():
    assert format_percent(0.6944) == "69.4%" and format_percent(None) == "0/0"
    assert format_auc(0.8071, [0.7661, 0.8494]) == "0.807 (0.766–0.849)" and format_auc(None) == "/"
    assert format_p(0.0004) == "< 0.001" and format_p(0.3124) == "0.312"
    metrics = {"scores": {"DLRC": {"auc": 0.807, "auc_ci": [0.766, 0.849], "accuracy": 0.78, "sensitivity": 0.604,
                                   "specificity": 0.858, "ppv": 0.657, "npv": 0.828}},
               "rules": {"SRA": {"accuracy": 0.773, "sensitivity": 0.336, "specificity": 0.97, "ppv": 0.833,
                                 "npv": None}},
               "comparisons": [{"a": "DLRC", "b": "Radiomics", "p": 0.0001}]}
    frame = table2(table2_rows("Training", metrics))
    assert frame.iloc[0].tolist() == ["Training", "DLRC", "0.807 (0.766–0.849)", "78.0%", "60.4%", "85.8%",
                                      "65.7%", "82.8%"]
    assert frame.iloc[1].tolist() == ["Training", "SRA", "/", "77.3%", "33.6%", "97.0%", "83.3%", "0/0"]
    t4 = table4(table4_rows("Training", metrics) + [{"cohort": "Inter-valid", "a": "DLRC", "b": "Radiomics",
                                                       "p": 0.312}])
    assert t4.iloc[0].tolist() == ["DLRC vs Radiomics", "< 0.001", "0.312"]


def test_tables_are_written_as_csv_and_markdown(tmp_path):
    rows = [{"cohort": "Training", "model": "DLRC", "auc": 0.8, "auc_ci": [0.7, 0.9], "accuracy": 0.5,
             "sensitivity": 0.5, "specificity": 0.5, "ppv": 0.5, "npv": 0.5},
            {"cohort": "Training", "model": "SRA", "auc": None, "auc_ci": None, "accuracy": 0.5,
             "sensitivity": 0.5, "specificity": 0.5, "ppv": 0.5, "npv": 0.5}]
    table2(rows, out=tmp_path / "table2")
    markdown = (tmp_path / "table2.md").read_text()
    assert "| Cohort | Model | AUC (95% CI) | ACC | SEN | SPE | PPV | NPV |" in markdown
    assert "|  | SRA | / |" in markdown  # repeated cohort left blank in Markdown
    assert pd.read_csv(tmp_path / "table2.csv")["Cohort"].tolist() == ["Training", "Training"]


@pytest.mark.parametrize(("args", "message"), [
    (["--label", "nothere", "--score", "wfns"], "label column 'nothere' not found"),
    (["--label", "outcome", "--positive", "Poor", "--score", "nothere"], "score column 'nothere' not found"),
    (["--label", "outcome", "--score", "wfns"], "must be 0/1 or True/False"),
    (["--label", "outcome", "--positive", "Bad", "--score", "wfns"], "no row of label column 'outcome' equals"),
    (["--label", "outcome", "--positive", "Poor", "--score", "gender"], "score 'gender' is not numeric"),
    (["--label", "outcome", "--positive", "Poor", "--score", "wfns", "--thresholds", "0:1:0.1"], "threshold range"),
    (["--label", "outcome", "--positive", "Poor", "--score", "wfns", "--train-group", "x"], "--train-group needs"),
])
def test_cli_bad_input_names_the_problem(asah_path, tmp_path, capsys, args, message):
    assert _run([asah_path, *args, "--no-figures", "--out", tmp_path / "o"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_label_with_one_class_and_nan_scores(tmp_path, capsys, caplog):
    table = tmp_path / "t.csv"
    pd.DataFrame({"y": [1, 1, 1, 1], "s": [0.1, 0.2, 0.3, 0.4]}).to_csv(table, index=False)
    assert _run([table, "--label", "y", "--score", "s", "--out", tmp_path / "o"]) == 2
    assert "only one class" in capsys.readouterr().err
    pd.DataFrame({"y": [1, 0, 1, 0, 1, 0], "s": [0.9, 0.1, np.nan, 0.2, 0.8, np.nan]}).to_csv(table, index=False)
    with caplog.at_level(logging.WARNING):
        assert _run([table, "--label", "y", "--score", "s", "--no-figures", "--out", tmp_path / "o"]) == 0
    assert "2 of 6" in caplog.text
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["scores"]["s"]["n"] == 4 and metrics["scores"]["s"]["auc"] == 1.0
    # nothing is overwritten without --overwrite; with it the folder is replaced
    assert _run([table, "--label", "y", "--score", "s", "--out", tmp_path / "o"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert _run([table, "--label", "y", "--score", "s", "--no-figures", "--overwrite", "--out", tmp_path / "o"]) == 0


def test_cutoff_file_without_the_score_is_refused(asah_path, tmp_path, capsys):
    (tmp_path / "m.json").write_text(json.dumps({"scores": {"other": {"cutoff": 1.0}}}))
    assert _run([asah_path, "--label", "outcome", "--positive", "Poor", "--score", "wfns", "--cutoff-from",
                 tmp_path / "m.json", "--out", tmp_path / "o"]) == 2
    assert "no cut-off for score 'wfns'" in capsys.readouterr().err


def test_evaluate_scores_refuses_one_class_after_dropping_missing():
    with pytest.raises(InputError, match="both cases and controls"):
        evaluate_scores([1, 0, 1], {"s": [0.5, np.nan, 0.7]})


def test_cutoffs_and_directions_carry_through_the_api():
    rng = np.random.default_rng(5)
    y_train, y_ext = rng.random(200) < 0.3, rng.random(150) < 0.3
    # a score where LOWER values mean a case (e.g. ADC): 'auto' finds it on training
    s_train, s_ext = -(rng.normal(size=200) + y_train), -(rng.normal(size=150) + y_ext)
    train = evaluate_scores(y_train, {"adc": s_train}, directions="auto")
    assert train["scores"]["adc"]["direction"] == "lower" and train["scores"]["adc"]["auc"] > 0.6
    cutoffs, directions = cutoffs_from(train)
    external = evaluate_scores(y_ext, {"adc": s_ext}, cutoffs, directions=directions, cutoff_from="training")
    entry = external["scores"]["adc"]
    assert entry["cutoff"] == train["scores"]["adc"]["cutoff"] and entry["cutoff_from"] == "training"
    calls = s_ext <= entry["cutoff"]  # 'lower': positive when score <= cut-off
    assert entry["tp"] == int((calls & y_ext).sum()) and entry["fp"] == int((calls & ~y_ext).sum())
    with pytest.raises(InputError, match="no cut-off for score 'other'"):
        cutoffs_from(train, ["other"])
