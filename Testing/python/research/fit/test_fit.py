"""`fit`: the whole chain on a synthetic multi-centre table, the bundle it writes, determinism, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from CervicalAILib.core.atomic import to_json
from CervicalAILib.core.errors import InputError
from CervicalAILib.research.fit.bundle import write_risk_bundle
from CervicalAILib.research.fit.fit import FitConfig, fit_risk_model
from CervicalAILib.research.fit.selection import SelectionConfig
from CervicalAILib.research.fit.simulate import simulate_feature_table
from CervicalAILib.research.fit.table import SplitSpec, feature_table_from_frame
from CervicalAILib.scoring.patient import score_patient
from CervicalAILib.scoring.risk_model import SYNTHETIC_STATEMENT

FAST = SelectionConfig(lasso_folds=5, lasso_n_c=12)


def _config(**kw):
    base = dict(split=SplitSpec(train_centers=["A", "B"], train_fraction=0.7, seed=1), selection=FAST, family_cv_folds=3)
    base.update(kw)
    return FitConfig(**base)


def _table_with_defects():
    sim = simulate_feature_table(420, seed=21, center_weights=(2, 1, 1), n_noise_radiomics=24, deep_width=10)
    frame = sim.frame.drop(columns=["split"])
    frame["T2W_original_firstorder_Constant"] = 5.0
    frame["DWI_original_firstorder_AllNaN"] = np.nan
    mostly = np.random.default_rng(0).normal(size=len(frame))
    mostly[: len(frame) // 2] = np.nan
    frame["ADC_original_glcm_MostlyNaN"] = mostly
    frame["CET1_original_glszm_FlatInCentreB"] = np.where(frame["center"] == "B", 1.0,
                                                          np.random.default_rng(1).normal(size=len(frame)))
    frame["extraction_error"] = ""
    frame.loc[3, "extraction_error"] = "pyradiomics: mask has only 1 voxel"
    # a failed extraction of one CET1 feature and its near-duplicate: whichever the chain keeps is missing
    frame.loc[7, "CET1_wavelet-HLH_gldm_SmallDependenceEmphasis"] = np.nan
    frame.loc[7, "CET1_wavelet-HLH_glrlm_ShortRunEmphasis"] = np.nan
    return sim, frame


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    sim, frame = _table_with_defects()
    table = feature_table_from_frame(frame)
    result = fit_risk_model(table, _config())
    out = tmp_path_factory.mktemp("fit") / "bundle"
    model = write_risk_bundle(result, out, name="test-lnm", synthetic=True)
    return sim, frame, result, model


def test_bundle_contents(fitted):
    _, frame, result, model = fitted
    manifest = model.manifest
    assert manifest["task"] == "risk-model" and manifest["endpoint"] == "lnm"
    assert SYNTHETIC_STATEMENT in manifest["training_data"]
    assert manifest["synthetic_training_data"] is True
    assert (model.bundle.path / "MODEL_CARD.md").read_text().count(SYNTHETIC_STATEMENT) >= 1
    for name in ("model.json", "combat.json", "nomogram.json", "selection.json", "cohort/split.csv", "cohort/scores.csv"):
        assert name in manifest["files"]
    # the scores' inputs are declared with their sequences
    for score, info in manifest["inputs"]["scores"].items():
        assert info["features"] == model.score_features(score)
        assert set(info["sequences"]) <= set(manifest["inputs"]["sequences"])
    # ComBat learned on the two training centres; parameters exactly for the features in use
    combat = model.harmonisation
    assert combat.applied_ and combat.training_centers_ == ["A", "B"] and set(combat.families_) == set(model.families)
    for family, params in combat.families_.items():
        assert params.feature_names_ == model.model["families"][family]["features"] == model.families[family].features_
        assert set(params.centers_) == {"A", "B"}
    # the documents are the fitted parts' to_dict, and read back they are the same bytes
    assert json.loads((model.bundle.path / "combat.json").read_text()) == result.harmonisation.to_dict()
    assert json.loads((model.bundle.path / "model.json").read_text())["dlrc"] == result.dlrc.to_dict()
    for name, document in model.to_documents().items():
        assert to_json(document).encode("utf-8") == (model.bundle.path / name).read_bytes(), name
    # provenance holds every choice and the software versions
    prov = manifest["provenance"]
    assert prov["fit"]["selection"]["mwu_p"] == 0.01 and prov["fit"]["selection"]["spearman_rho"] == 0.8
    assert prov["fit"]["split"] == {"mode": "centres", "train_centers": ["A", "B"], "train_fraction": 0.7, "seed": 1,
                                    "stratified_by": "endpoint"}
    assert "figo_stage" in prov["fit"]["excluded_clinical"]
    assert "scikit-learn" in prov["software"] and "neuroHarmonize" in prov["software"]
    # ranges and cut-off
    doc = model.model
    for feature in model.required_features:
        rng = doc["training_ranges"]["features"][feature]
        assert rng["min"] <= rng["p01"] <= rng["p99"] <= rng["max"]
    assert 0 < doc["cutoffs"]["dlrc_probability"]["cutoff"] < 1


def test_defects_are_reported_not_hidden(fitted):
    _, frame, result, model = fitted
    dropped = {d["name"]: d["reason"] for items in result.dropped_features.values() for d in items}
    assert "constant" in dropped["T2W_original_firstorder_Constant"]
    assert "all values missing" in dropped["DWI_original_firstorder_AllNaN"]
    assert "missing in" in dropped["ADC_original_glcm_MostlyNaN"]
    assert "constant within training centre B" in dropped["CET1_original_glszm_FlatInCentreB"]
    cases = result.cases.set_index("case_id")
    failed, nan_case = frame.loc[3, "case_id"], frame.loc[7, "case_id"]
    assert cases.loc[failed, "cohort"] == "excluded" and "1 voxel" in cases.loc[failed, "reason"]
    # a validation case with a missing feature stays in its cohort (missingness is judged on training
    # cases only); the score that needs the feature is unavailable for it, never imputed
    assert cases.loc[nan_case, "cohort"] == "internal_validation"
    assert {"CET1_wavelet-HLH_gldm_SmallDependenceEmphasis", "CET1_wavelet-HLH_glrlm_ShortRunEmphasis"} & set(model.required_features)
    scores = result.scores.set_index("case_id")
    assert np.isnan(float(scores.loc[nan_case, "rad_score"])) and np.isnan(float(scores.loc[nan_case, "dlrc_probability"]))
    split = pd.read_csv(model.bundle.path / "cohort" / "split.csv")
    assert set(split.loc[split["cohort"] == "excluded", "case_id"]) == {failed}
    # every other case is in exactly one cohort; C was never in training
    kept = split[split["cohort"] != "excluded"]
    assert len(kept) == len(frame) - 1
    assert set(kept.loc[kept["center"] == "C", "cohort"]) == {"external_validation"}
    assert any("centre C" in w and "pooled reference" in w for w in result.warnings)
    assert model.manifest["provenance"]["excluded_cases"] == 1
    selection = json.loads((model.bundle.path / "selection.json").read_text())
    assert {e["case_id"] for e in selection["excluded_cases"]} == {failed}


def test_stratified_split_follows_the_fraction(fitted):
    _, frame, result, _ = fitted
    cases = result.cases[result.cases["cohort"] != "excluded"]
    home = cases[cases["center"].isin(["A", "B"])]
    share = (home["cohort"] == "training").mean()
    assert share == pytest.approx(0.7, abs=0.01)
    prevalence = home.groupby("cohort")["lnm"].mean()
    assert abs(prevalence["training"] - prevalence["internal_validation"]) < 0.03


def test_cohort_scores_equal_the_patient_readout_and_statsmodels(fitted):
    import statsmodels.api as sm

    _, frame, result, model = fitted
    scores = pd.read_csv(model.bundle.path / "cohort" / "scores.csv").set_index("case_id")
    rows = frame.set_index("case_id")
    for case_id in list(scores.index[:3]) + list(scores.index[scores["center"] == "C"][:2]):
        row = rows.loc[case_id]
        features = {f: float(row[f]) for f in model.required_features}
        clinical = {t["name"]: row[t["name"]] for t in model.clinical_inputs}
        readout = score_patient(model, features, clinical, center=row["center"])
        if readout["probability"] is None:  # a case whose feature is missing: unavailable in both
            assert np.isnan(scores.loc[case_id, "dlrc_probability"]) and readout["unavailable"]
            continue
        assert readout["probability"] == pytest.approx(scores.loc[case_id, "dlrc_probability"], rel=1e-12)
        for score in ("rad_score", "dl_score"):
            if readout[score] is not None:
                assert readout[score] == pytest.approx(scores.loc[case_id, score], rel=1e-12)
        assert readout["harmonisation"]["mode"] == ("pooled" if row["center"] == "C" else "centre")
    # the DLRC coefficients are the maximum-likelihood fit of its terms on the training cohort
    train = scores[scores["cohort"] == "training"]
    dlrc = result.dlrc
    design = np.column_stack([train[c] if c in train else rows.loc[train.index, c] for c in dlrc.coef_])
    direct = sm.Logit(train["lnm"].to_numpy(), sm.add_constant(design.astype(float))).fit(disp=0)
    np.testing.assert_allclose([dlrc.intercept_, *dlrc.coef_.values()], direct.params, rtol=1e-7)
    np.testing.assert_allclose(train["dlrc_probability"], direct.predict(), rtol=1e-9)
    # the chosen deep family is the one with the best cross-validated training AUC
    assert result.deep_family == max(result.family_cv_auc, key=result.family_cv_auc.get)
    assert result.metrics["auc"]["external_validation"]["dlrc_probability"] > 0.65


def test_refit_is_byte_identical_and_row_order_free(fitted, tmp_path):
    _, frame, result, model = fitted
    shuffled = frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    again = fit_risk_model(feature_table_from_frame(shuffled), _config())
    copy = write_risk_bundle(again, tmp_path / "again", name="test-lnm", synthetic=True)
    names = sorted(model.manifest["files"]) + ["bundle.json"]
    assert sorted(copy.manifest["files"]) + ["bundle.json"] == names
    for name in names:
        assert (copy.bundle.path / name).read_bytes() == (model.bundle.path / name).read_bytes(), name


def _small(n=160, seed=4, **kw):
    return simulate_feature_table(n, seed=seed, centers=("A",), n_noise_radiomics=8, deep_families={}, **kw).frame


def test_endpoint_problems_are_refused():
    frame = _small()
    with pytest.raises(InputError, match="no column for endpoint 'lnm'"):
        fit_risk_model(feature_table_from_frame(frame.drop(columns=["lnm"])), FitConfig())
    one_class = frame.assign(lnm=0)
    with pytest.raises(InputError, match="only one class"):
        fit_risk_model(feature_table_from_frame(one_class), FitConfig())
    few = frame.copy()
    positives = few.index[few["lnm"] == 1]
    few.loc[positives[9:], "lnm"] = 0  # 9 events left
    with pytest.raises(InputError, match=r"only 9 case\(s\) with pathological pelvic lymph-node metastasis.*at least 10"):
        fit_risk_model(feature_table_from_frame(few), FitConfig())
    bad = frame.astype({"lnm": object})
    bad.loc[0, "lnm"] = "maybe"
    with pytest.raises(InputError, match="'maybe'"):
        fit_risk_model(feature_table_from_frame(bad), FitConfig())


def test_table_problems_are_refused():
    frame = _small()
    duplicated = pd.concat([frame, frame.iloc[[5, 6]]])
    with pytest.raises(InputError, match=r"duplicate case IDs \(2\)"):
        feature_table_from_frame(duplicated)
    text = frame.astype({"T2W_original_firstorder_Skewness": object})
    text.loc[2, "T2W_original_firstorder_Skewness"] = "n/a?"
    with pytest.raises(InputError, match="not numeric"):
        feature_table_from_frame(text)
    with pytest.raises(InputError, match="no feature columns"):
        feature_table_from_frame(frame[["case_id", "center", "lnm"]])
    with pytest.raises(InputError, match="no 'case_id' column"):
        feature_table_from_frame(frame.drop(columns=["case_id"]))
    # a column named like a deep feature but malformed is refused, never taken for a clinical column
    with pytest.raises(InputError, match="column 'CET1_dl-resnet2d_F12a' is not a deep feature name"):
        feature_table_from_frame(frame.assign(**{"CET1_dl-resnet2d_F12a": 1.0}))
    with pytest.raises(InputError, match="no 'center' column: ComBat needs"):
        fit_risk_model(feature_table_from_frame(frame.drop(columns=["center"])), FitConfig())
    table = feature_table_from_frame(frame)
    with pytest.raises(InputError, match="training centre\\(s\\) Z not found"):
        fit_risk_model(table, FitConfig(split=SplitSpec(train_centers=["Z"])))
    with pytest.raises(InputError, match="figo_stage.*define the 'stage_group' endpoint"):
        fit_risk_model(table, FitConfig(endpoint="stage_group", clinical=["figo_stage", "age"]))


def test_bundle_cutoff_is_the_best_youden_index_by_brute_force():
    from CervicalAILib.research.fit.fit import youden_cutoff

    rng = np.random.default_rng(12)
    for trial in range(5):
        y = (rng.uniform(size=150) < 0.3).astype(int)
        score = np.round(rng.normal(size=150) + y * 0.8, 1 if trial % 2 else 6)  # with and without ties
        ours = youden_cutoff(y, score)
        # every observed score value as a cut-off: none beats the chosen one
        best = max((score >= c)[y == 1].mean() + (score < c)[y == 0].mean() - 1 for c in np.unique(score))
        assert ours["youden_index"] == pytest.approx(best, abs=1e-12)
        calls = score >= ours["cutoff"]
        assert ours["sensitivity"] == pytest.approx(calls[y == 1].mean()) and ours["specificity"] == pytest.approx(
            (~calls[y == 0]).mean())


def test_missing_values_are_judged_on_training_cases_only():
    from CervicalAILib.research.fit.fit import FitConfig, _drop_missing

    frame = pd.DataFrame({"f_ok": [1.0, 2.0, 3.0, 4.0, np.nan, np.nan], "f_gappy": [1.0, np.nan, np.nan, 2.0, 5.0, 6.0],
                          "f_one_gap": [1.0, 2.0, np.nan, 4.0, 5.0, 6.0]},
                         index=["t1", "t2", "t3", "t4", "v1", "v2"])
    kept, dropped, reasons = {"radiomics": ["f_ok", "f_gappy", "f_one_gap"]}, {"radiomics": []}, {}
    train = pd.Index(["t1", "t2", "t3", "t4"])
    remaining = _drop_missing(frame, train, kept, dropped, FitConfig(max_nan_fraction=0.3), reasons)
    # f_ok is complete on training (its gaps are in validation cases, which never decide); f_gappy is
    # missing in 2 of 4 training cases (> 30 %): dropped; t3 lacks f_one_gap: excluded from training
    assert kept["radiomics"] == ["f_ok", "f_one_gap"]
    assert [d["name"] for d in dropped["radiomics"]] == ["f_gappy"]
    assert list(remaining) == ["t1", "t2", "t4"] and "f_one_gap" in reasons["t3"] and set(reasons) == {"t3"}


def test_one_split_for_several_endpoints_when_stratified_by_a_column():
    from CervicalAILib.research.fit.table import assign_cohorts

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"center": rng.choice(["A", "B"], 200, p=[0.7, 0.3]), "lnm": rng.integers(0, 2, 200),
                          "stage_group_crt": rng.integers(0, 2, 200)})
    spec = SplitSpec(train_centers=["A"], train_fraction=0.7, seed=5, stratify_by="lnm")
    by_lnm = assign_cohorts(frame, frame["lnm"], spec)
    by_stage = assign_cohorts(frame, frame["stage_group_crt"], spec)
    assert (by_lnm == by_stage).all()  # the endpoint no longer decides the split
    own = assign_cohorts(frame, frame["stage_group_crt"], SplitSpec(train_centers=["A"], train_fraction=0.7, seed=5))
    assert not (own == by_lnm).all()  # stratifying by the endpoint itself gives another split
    a = frame["center"] == "A"
    share = frame.loc[a & (by_lnm == "training"), "lnm"].mean()
    assert share == pytest.approx(frame.loc[a, "lnm"].mean(), abs=0.02)  # stratified by LNM
    assert set(by_lnm[~a]) == {"external_validation"}
    frame.loc[frame.index[a][0], "lnm"] = np.nan
    with pytest.raises(InputError, match="stratification column 'lnm' must be 0/1"):
        assign_cohorts(frame, frame["stage_group_crt"], spec)
    assert SplitSpec(train_centers=["A"], stratify_by="lnm").as_dict()["stratified_by"] == "lnm"


def test_a_sites_own_endpoint_column_goes_through_the_same_chain():
    sim = simulate_feature_table(300, seed=5, center_weights=(2, 1, 1), n_noise_radiomics=12, deep_width=6)
    frame = sim.frame.drop(columns=["split"])
    frame["recurrence"] = np.where(frame["lnm"] == 1, "yes", "no")  # the same outcome under a site's own name
    table = feature_table_from_frame(frame)
    named = fit_risk_model(table, _config(endpoint="lnm"))
    own = fit_risk_model(table, _config(endpoint="recurrence"))
    assert own.model["endpoint_column"] == "recurrence" and own.model["positive"] == "recurrence = 1"
    assert own.model["dlrc"]["coefficients"] == pytest.approx(named.model["dlrc"]["coefficients"], rel=1e-9)
    np.testing.assert_allclose(own.scores["dlrc_probability"], named.scores["dlrc_probability"], rtol=1e-9)
    with pytest.raises(InputError, match="no column for endpoint 'relapse'"):
        fit_risk_model(table, _config(endpoint="relapse"))
    with pytest.raises(InputError, match="use lnm, stage_group or the name of a 0/1 column"):
        fit_risk_model(table, _config(endpoint="age > 50"))


def test_sequences_restrict_the_candidates_of_every_family():
    """A fit restricted to T2W/ADC/DWI (the model without contrast) never sees a CE-T1WI column, in any family,
    and records the restriction; an unknown sequence, or one the table lacks, is refused."""
    from CervicalAILib.research.fit.fit import _clean

    sim, frame = _table_with_defects()
    table = feature_table_from_frame(frame)
    y = frame.set_index("case_id")["lnm"] if "case_id" in frame else frame["lnm"]
    assert any(c.startswith("CET1_") for c in table.feature_columns)
    _, kept, dropped = _clean(table, y, _config(roles=["T2W", "ADC", "DWI"]))
    candidates = [c for cols in kept.values() for c in cols] + [d["name"] for items in dropped.values() for d in items]
    assert candidates and not any(c.startswith("CET1_") for c in candidates)
    assert {c.split("_", 1)[0] for c in candidates} <= {"T2W", "ADC", "DWI"}
    assert _config(roles=["T2W", "ADC", "DWI"]).as_dict()["roles"] == ["T2W", "ADC", "DWI"]
    assert "roles" not in _config().as_dict()  # a fit over every sequence records what it always did
    with pytest.raises(InputError, match="unknown sequence.*CE-T1"):
        _clean(table, y, _config(roles=["T2W", "CE-T1"]))
    only_cet1 = feature_table_from_frame(frame[[c for c in frame.columns if not c.startswith(("T2W_", "ADC_", "DWI_"))]])
    with pytest.raises(InputError, match="no feature column of the sequence"):
        _clean(only_cet1, y, _config(roles=["T2W", "DWI"]))
