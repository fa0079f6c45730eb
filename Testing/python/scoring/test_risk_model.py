"""The risk model's parts (FamilyScore, DLRCModel, ComBat/Harmonisation) read and write the bundle
JSON exactly: a shipped bundle's files are hashed in its manifest, so one changed byte breaks it."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from CervicalAILib.bundles.catalog import catalog_path, load_catalog
from CervicalAILib.bundles.format import write_bundle
from CervicalAILib.core.atomic import to_json
from CervicalAILib.core.errors import BundleError
from CervicalAILib.scoring.combat import Harmonisation
from CervicalAILib.scoring.dlrc import DLRCModel, sigmoid
from CervicalAILib.scoring.family_score import FamilyScore
from CervicalAILib.scoring.risk_model import COMBAT_FILE, MODEL_FILE, NOMOGRAM_FILE, load_risk_model

SHIPPED = [entry for entry in load_catalog() if entry.task == "risk-model"]


def test_the_catalogue_ships_risk_models():
    assert {"dlrc-lnm", "dlrc-stage-group"} <= {entry.folder for entry in SHIPPED}


@pytest.mark.parametrize("entry", SHIPPED, ids=lambda entry: entry.folder)
def test_shipped_bundle_documents_round_trip_byte_for_byte(entry):
    folder = catalog_path().parent / entry.folder
    # the shipped bundle is the one the catalogue pins, unchanged
    assert hashlib.sha256((folder / "bundle.json").read_bytes()).hexdigest() == entry.bundle_json_sha256
    model = load_risk_model(folder)  # verifies every file's hash
    documents = model.to_documents()
    assert set(documents) == {MODEL_FILE, COMBAT_FILE, NOMOGRAM_FILE}
    for name, document in documents.items():
        assert to_json(document).encode("utf-8") == (folder / name).read_bytes(), name
    # each part: from_dict(to_dict(x)) is x, and to_dict gives the file's entry
    model_doc = json.loads((folder / MODEL_FILE).read_text())
    for family, doc in model_doc["families"].items():
        score = model.families[family]
        assert score.to_dict() == doc
        again = FamilyScore.from_dict(score.to_dict())
        assert again.to_dict() == doc and again.features_ == score.features_
        np.testing.assert_array_equal(again.coef_, score.coef_)
    assert model.dlrc.to_dict() == model_doc["dlrc"] == DLRCModel.from_dict(model.dlrc.to_dict()).to_dict()
    combat_doc = json.loads((folder / COMBAT_FILE).read_text())
    assert Harmonisation.from_dict(model.harmonisation.to_dict()).to_dict() == combat_doc


@pytest.mark.parametrize("entry", SHIPPED, ids=lambda entry: entry.folder)
def test_shipped_models_score_as_their_coefficients_say(entry):
    """The parts compute what the bundle's numbers say, by hand, at the training means."""
    model = load_risk_model(catalog_path().parent / entry.folder)
    model_doc = model.model
    term_values = {}
    for term in model.dlrc.terms_:
        if term["kind"] == "score":
            family = model_doc["families"][term["family"]]
            at_mean = np.asarray(family["standardisation"]["mean"], dtype=float)
            assert model.families[term["family"]].decision_function(at_mean) == family["intercept"]
            assert model.families[term["family"]].predict_proba(at_mean) == pytest.approx(
                1 / (1 + np.exp(-family["intercept"])), rel=1e-12)
            term_values[term["name"]] = 0.25
        elif term["kind"] == "categorical":
            term_values[term["name"]] = term["reference"]
        else:
            term_values[term["name"]] = 1.0
    by_hand = model_doc["dlrc"]["intercept"] + sum(
        model_doc["dlrc"]["coefficients"][t["columns"][0]] * float(term_values[t["name"]])
        for t in model.dlrc.terms_ if t["kind"] != "categorical")
    assert model.dlrc.decision_function(term_values) == pytest.approx(by_hand, rel=1e-12)
    assert model.dlrc.predict_proba(term_values) == pytest.approx(1 / (1 + np.exp(-by_hand)), rel=1e-12)


@pytest.mark.parametrize("damage", ["coefficients", "standardisation", "dlrc", "combat"])
def test_a_malformed_document_is_one_bundle_error(tmp_path, damage):
    source = catalog_path().parent / SHIPPED[0].folder
    manifest = json.loads((source / "bundle.json").read_text())
    manifest = {k: v for k, v in manifest.items() if k not in ("schema", "files")}
    files = {name: source / name for name in json.loads((source / "bundle.json").read_text())["files"]}
    model_doc = json.loads((source / MODEL_FILE).read_text())
    combat_doc = json.loads((source / COMBAT_FILE).read_text())
    family = next(iter(model_doc["families"].values()))
    if damage == "coefficients":
        family["coefficients"] = family["coefficients"] + [1.0]  # one more than features
    elif damage == "standardisation":
        del family["standardisation"]["sd"]
    elif damage == "dlrc":
        del model_doc["dlrc"]["intercept"]
    else:
        combat_doc = {"applied": True, "families": {"radiomics": {"centers": ["A"], "features": {"x": {}}}}}
    files |= {MODEL_FILE: to_json(model_doc), COMBAT_FILE: to_json(combat_doc)}
    write_bundle(tmp_path / "broken", manifest, files)
    with pytest.raises(BundleError, match="malformed") as raised:
        load_risk_model(tmp_path / "broken")
    assert "\n" not in str(raised.value)


def test_sigmoid_is_stable_and_symmetric():
    assert sigmoid(0.0) == 0.5
    assert sigmoid(800.0) == 1.0 and sigmoid(-800.0) == 0.0  # no overflow warning, no NaN
    lp = np.array([-30.0, -2.5, 0.3, 12.0])
    np.testing.assert_allclose(sigmoid(lp) + sigmoid(-lp), 1.0, rtol=1e-15)
    np.testing.assert_allclose(sigmoid(lp), 1 / (1 + np.exp(-lp)), rtol=1e-14)
