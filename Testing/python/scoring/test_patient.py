"""Per-patient scores from a risk model with known coefficients: values, missing inputs, warnings."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

from CervicalAILib.bundles.format import write_bundle
from CervicalAILib.core.errors import BundleError, InputError
from CervicalAILib.scoring.nomogram import build_nomogram
from CervicalAILib.scoring.risk_model import RiskModel, load_risk_model

RAD = ["CET1_wavelet-HLH_gldm_SmallDependenceEmphasis", "ADC_original_firstorder_Median"]
DL = ["T2W_dl-resnet2d_F0001"]


def _combat_entry(mean, var, gamma, delta):
    n = {"A": 60, "B": 40}
    return {"grand_mean": mean, "var_pooled": var, "gamma": gamma, "delta": delta,
            "pooled_gamma": sum(n[s] * gamma[s] for s in n) / 100, "pooled_delta": sum(n[s] * delta[s] for s in n) / 100,
            "covariates": {}}


def _feature_range(low, high):
    return {"min": low, "max": high, "p01": low, "p99": high}


@pytest.fixture
def model():
    dlrc = {
        "terms": [
            {"name": "rad_score", "label": "Rad_score", "kind": "score", "family": "radiomics", "columns": ["rad_score"]},
            {"name": "dl_score", "label": "DL_score", "kind": "score", "family": "dl-resnet2d", "columns": ["dl_score"]},
            {"name": "c_lnm", "label": "c_LNM", "type": "binary", "kind": "binary", "columns": ["c_lnm"]},
        ],
        "intercept": -0.5,
        "coefficients": {"rad_score": 1.0, "dl_score": 0.7, "c_lnm": 2.0},
    }
    doc = {
        "schema": "cervicalai.risk-model/1", "endpoint": "lnm", "endpoint_column": "lnm",
        "positive": "pathological pelvic lymph-node metastasis", "negative": "no lymph-node metastasis",
        "outcome_label": "LNM risk",
        "scores": {"rad_score": "radiomics", "dl_score": "dl-resnet2d"},
        "families": {
            "radiomics": {"family": "radiomics", "features": RAD, "standardisation": {"mean": [10.0, 100.0], "sd": [2.0, 20.0]},
                          "coefficients": [0.5, -1.0], "intercept": -1.0},
            "dl-resnet2d": {"family": "dl-resnet2d", "features": DL, "standardisation": {"mean": [0.0], "sd": [1.0]},
                            "coefficients": [0.8], "intercept": -0.9},
        },
        "dlrc": dlrc,
        "cutoffs": {"dlrc_probability": {"cutoff": 0.3}},
        "training_ranges": {
            "features": {RAD[0]: _feature_range(4.0, 16.0), RAD[1]: _feature_range(40.0, 160.0), DL[0]: _feature_range(-3, 3)},
            "scores": {"rad_score": _feature_range(-4, 2), "dl_score": _feature_range(-3.5, 1.5)},
            "clinical": {},
            "dlrc_linear_predictor": _feature_range(-6, 5),
        },
    }
    combat = {
        "applied": True, "training_centers": ["A", "B"], "note": "test",
        "families": {
            "radiomics": {"centers": ["A", "B"], "covariates": [], "features": {
                RAD[0]: _combat_entry(10.0, 4.0, {"A": 0.1, "B": -0.15}, {"A": 0.9, "B": 1.2}),
                RAD[1]: _combat_entry(100.0, 400.0, {"A": -0.2, "B": 0.3}, {"A": 1.1, "B": 0.8})}},
            "dl-resnet2d": {"centers": ["A", "B"], "covariates": [], "features": {
                DL[0]: _combat_entry(0.0, 1.0, {"A": 0.05, "B": -0.05}, {"A": 1.0, "B": 1.0})}},
        },
    }
    term_data = {"rad_score": np.array([[-4.0], [2.0]]), "dl_score": np.array([[-3.5], [1.5]]), "c_lnm": np.array([[0.0], [1.0]])}
    nomogram = build_nomogram(dlrc, term_data)
    return RiskModel.from_documents({"name": "hand", "version": "1"}, doc, combat, nomogram)


def _harmonise(x, entry, center):
    sd = math.sqrt(entry["var_pooled"])
    gamma = entry["gamma"].get(center, entry["pooled_gamma"])
    delta = entry["delta"].get(center, entry["pooled_delta"])
    return ((x - entry["grand_mean"]) / sd - gamma) / math.sqrt(delta) * sd + entry["grand_mean"]


PATIENT = {RAD[0]: 12.0, RAD[1]: 90.0, DL[0]: 0.4}


@pytest.mark.parametrize("center", ["A", "B"])
def test_scores_by_hand(model, center):
    from CervicalAILib.scoring.patient import score_patient

    out = score_patient(model, PATIENT, {"c_lnm": "yes"}, center=center)
    combat = model.harmonisation.to_dict()["families"]
    entries = {**combat["radiomics"]["features"], **combat["dl-resnet2d"]["features"]}
    h = {name: _harmonise(value, entries[name], center) for name, value in PATIENT.items()}
    rad = -1.0 + 0.5 * (h[RAD[0]] - 10) / 2 - 1.0 * (h[RAD[1]] - 100) / 20
    dl = -0.9 + 0.8 * h[DL[0]]
    lp = -0.5 + rad + 0.7 * dl + 2.0
    assert out["rad_score"] == pytest.approx(rad, rel=1e-12)
    assert out["dl_score"] == pytest.approx(dl, rel=1e-12)
    assert out["linear_predictor"] == pytest.approx(lp, rel=1e-12)
    assert out["probability"] == pytest.approx(1 / (1 + math.exp(-lp)), rel=1e-12)
    assert out["lnm_probability"] == out["probability"]
    assert out["above_cutoff"] == (out["probability"] >= 0.3)
    assert out["nomogram"]["probability"] == pytest.approx(out["probability"], abs=1e-12)
    assert set(out["nomogram"]["points"]) == {"rad_score", "dl_score", "c_lnm"}
    assert out["features"][RAD[1]]["harmonised"] == pytest.approx(h[RAD[1]], rel=1e-12)
    assert out["harmonisation"]["mode"] == "centre" and out["warnings"] == [] and out["unavailable"] == []
    json.dumps(out)  # plain data, embeddable in the readout JSON


def test_unknown_centre_uses_pooled_reference_and_warns(model):
    from CervicalAILib.scoring.patient import score_patient

    out = score_patient(model, PATIENT, {"c_lnm": 0}, center="Z")
    assert out["harmonisation"]["mode"] == "pooled"
    assert any("centre Z was not in the training data" in w for w in out["warnings"])
    entry = model.harmonisation.to_dict()["families"]["radiomics"]["features"][RAD[0]]
    assert out["features"][RAD[0]]["harmonised"] == pytest.approx(_harmonise(12.0, entry, "Z"), rel=1e-12)
    out = score_patient(model, PATIENT, {"c_lnm": 0}, center=None)
    assert any("centre not given" in w for w in out["warnings"])


def test_missing_inputs_make_scores_unavailable_never_imputed(model):
    from CervicalAILib.scoring.patient import score_patient

    out = score_patient(model, {RAD[0]: 12.0, RAD[1]: 90.0}, {"c_lnm": 1}, center="A")  # no T2W deep feature
    assert out["dl_score"] is None and out["probability"] is None and out["nomogram"] is None
    assert out["rad_score"] is not None
    assert any(u.startswith("DL_score unavailable") and "T2W" in u for u in out["unavailable"])
    assert any(u.startswith("LNM risk unavailable") for u in out["unavailable"])
    out = score_patient(model, PATIENT | {RAD[1]: float("nan")}, {"c_lnm": 1}, center="A")
    assert out["rad_score"] is None and "ADC" in out["scores"]["rad_score"]["reason"]
    out = score_patient(model, PATIENT, {}, center="A")
    assert out["probability"] is None
    assert any("clinical value 'c_lnm' is missing" in u for u in out["unavailable"])


def test_invalid_clinical_value(model):
    from CervicalAILib.scoring.patient import score_patient

    with pytest.raises(InputError, match="c_lnm=3 must be yes/no"):
        score_patient(model, PATIENT, {"c_lnm": 3}, center="A")
    out = score_patient(model, PATIENT, {"c_lnm": 3}, center="A", strict_clinical=False)
    assert out["probability"] is None and any("invalid" in u for u in out["unavailable"])


def test_out_of_range_values_warn(model):
    from CervicalAILib.scoring.patient import score_patient

    out = score_patient(model, PATIENT | {RAD[0]: 40.0}, {"c_lnm": 0}, center="A")
    assert out["probability"] is not None
    assert not out["features"][RAD[0]]["in_training_range"]
    assert any(RAD[0] in w and "outside the training range" in w for w in out["warnings"])
    assert any(w.startswith("Rad_score =") for w in out["warnings"])
    assert out["nomogram"]["points"]["rad_score"] > 100  # beyond the drawn scale, honestly


def test_load_refuses_a_model_file_of_another_kind(tmp_path):
    manifest = {"name": "x", "version": "1", "task": "risk-model", "intended_use": "tests", "training_data": "none",
                "inputs": {}, "outputs": [], "provenance": {}}
    files = {"MODEL_CARD.md": "# x\n", "model.json": json.dumps({"schema": "something/9"}), "combat.json": "{}",
             "nomogram.json": "{}"}
    write_bundle(tmp_path / "b", manifest, files)
    with pytest.raises(BundleError, match="not a cervicalai.risk-model/1 document"):
        load_risk_model(tmp_path / "b")
    write_bundle(tmp_path / "c", manifest | {"task": "encoder"}, files)
    with pytest.raises(BundleError, match="expected 'risk-model'"):
        load_risk_model(tmp_path / "c")


def test_categorical_clinical_term(model):
    from CervicalAILib.scoring.patient import score_patient

    term = {"name": "histology", "label": "Histology", "type": "categorical", "kind": "categorical",
            "levels": ["AC", "ASC", "SCC"], "reference": "SCC", "columns": ["histology=AC", "histology=ASC"]}
    doc = copy.deepcopy(model.model)
    doc["dlrc"]["terms"].append(term)
    doc["dlrc"]["coefficients"].update({"histology=AC": 0.6, "histology=ASC": -0.4})
    term_data = {"rad_score": np.array([[-4.0], [2.0]]), "dl_score": np.array([[-3.5], [1.5]]),
                 "c_lnm": np.array([[0.0], [1.0]]), "histology": np.array([[1.0, 0.0], [0.0, 1.0]])}
    model = RiskModel.from_documents(model.manifest, doc, model.harmonisation.to_dict(), build_nomogram(doc["dlrc"], term_data))
    base = score_patient(model, PATIENT, {"c_lnm": 0, "histology": "SCC"}, center="A")
    ac = score_patient(model, PATIENT, {"c_lnm": 0, "histology": "AC"}, center="A")
    asc = score_patient(model, PATIENT, {"c_lnm": 0, "histology": "ASC"}, center="A")
    assert ac["linear_predictor"] - base["linear_predictor"] == pytest.approx(0.6, rel=1e-12)
    assert asc["linear_predictor"] - base["linear_predictor"] == pytest.approx(-0.4, rel=1e-12)
    for out in (base, ac, asc):
        assert out["nomogram"]["probability"] == pytest.approx(out["probability"], abs=1e-12)
    assert asc["nomogram"]["points"]["histology"] == 0.0  # the lowest contribution is the zero of the scale
    other = score_patient(model, PATIENT, {"c_lnm": 0, "histology": "neuroendocrine"}, center="A")
    assert other["probability"] is None and any("not seen in training" in u for u in other["unavailable"])
