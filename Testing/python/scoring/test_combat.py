"""ComBat: parameters learned with neuroHarmonize, stored as JSON, applied by our own numpy code.

(Learning's refusals are tested in research/fit/test_harmonise.py.)"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from CervicalAILib.core.atomic import to_json
from CervicalAILib.core.errors import InputError
from CervicalAILib.research.fit.harmonise import fit_combat
from CervicalAILib.scoring.combat import MODE_CENTER, MODE_POOLED, ComBat, Harmonisation


def _multicentre(n=240, p=12, seed=1, covariate=True):
    rng = np.random.default_rng(seed)
    site = rng.choice(np.array(["A", "B", "C"], dtype=object), size=n, p=[0.5, 0.3, 0.2])
    age = rng.uniform(30, 75, size=n).round(1)
    base = rng.normal(size=(n, p)) * rng.uniform(1, 50, size=p) + rng.uniform(-5, 100, size=p)
    if covariate:
        base = base + 0.3 * age[:, None] * rng.uniform(0.5, 2, size=p)
    scale = {"A": 1.0, "B": 1.4, "C": 0.8}
    shift = {"A": 0.0, "B": -10.0, "C": 25.0}
    x = np.array([row * scale[s] + shift[s] for row, s in zip(base, site)])
    names = [f"T2W_original_firstorder_F{i}" for i in range(p)]
    return x, site, age, names


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
@pytest.mark.parametrize("with_covariate", [False, True])
def test_application_matches_neuroharmonize(with_covariate):
    from neuroHarmonize import harmonizationApply, harmonizationLearn

    x, site, age, names = _multicentre(covariate=with_covariate)
    covars = pd.DataFrame({"SITE": site} | ({"age": age} if with_covariate else {}))
    model, harmonised_ref = harmonizationLearn(x, covars)
    learned, harmonised_fit = fit_combat(x, site, names, {"age": age} if with_covariate else None)
    np.testing.assert_array_equal(harmonised_fit, harmonised_ref)
    # the JSON round trip is part of the contract: apply what a bundle would hold
    doc = json.loads(to_json(learned.to_dict()))
    params = ComBat.from_dict(doc)
    assert to_json(params.to_dict()) == to_json(learned.to_dict())

    # new cases from known centres (different values, including a fractional covariate)
    rng = np.random.default_rng(7)
    new = x[:50] * rng.uniform(0.9, 1.1, size=(50, x.shape[1])) + rng.normal(size=(50, x.shape[1]))
    new_site = site[:50]
    new_age = age[:50] + 0.123
    new_covars = pd.DataFrame({"SITE": new_site} | ({"age": new_age} if with_covariate else {}))
    reference = harmonizationApply(new, new_covars, model)
    ours, modes = params.transform(new, list(new_site), {"age": new_age} if with_covariate else None)
    assert modes == [MODE_CENTER] * 50
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-6 * np.abs(reference).max())
    assert np.max(np.abs(ours - reference)) < 1e-6
    # applied to the training cases it reproduces harmonizationLearn's own output
    train_ours, _ = params.transform(x, list(site), {"age": age} if with_covariate else None)
    assert np.max(np.abs(train_ours - harmonised_ref)) < 1e-6
    # and it really harmonises: centre means of a feature come together
    raw_spread = np.ptp([x[site == s, 0].mean() for s in "ABC"])
    harmonised_spread = np.ptp([train_ours[site == s, 0].mean() for s in "ABC"])
    assert harmonised_spread < 0.2 * raw_spread


def test_single_patient_equals_batch_and_subset():
    x, site, _, names = _multicentre(covariate=False)
    params, _ = fit_combat(x, site, names)
    batch, _ = params.transform(x[:5], list(site[:5]))
    sub = params.subset(names[3:6])
    assert sub.to_dict()["features"] == {name: params.to_dict()["features"][name] for name in names[3:6]}
    for i in range(5):
        one, modes = sub.transform(x[i, 3:6], [site[i]])
        assert modes == [MODE_CENTER]
        np.testing.assert_allclose(one[0], batch[i, 3:6], rtol=1e-15, atol=0)


def test_unknown_centre_uses_pooled_reference():
    x, site, _, names = _multicentre(covariate=False)
    params, _ = fit_combat(x, site, names)
    feature = params.to_dict()["features"][names[0]]
    n = {s: int(np.sum(site == s)) for s in "ABC"}
    pooled_gamma = sum(n[s] * feature["gamma"][s] for s in "ABC") / sum(n.values())
    pooled_delta = sum(n[s] * feature["delta"][s] for s in "ABC") / sum(n.values())
    assert feature["pooled_gamma"] == pytest.approx(pooled_gamma, rel=1e-12)
    assert feature["pooled_delta"] == pytest.approx(pooled_delta, rel=1e-12)
    value = 123.4
    first = params.subset(names[:1])
    out, modes = first.transform(np.array([[value]]), ["Z"])
    assert modes == [MODE_POOLED]
    sd = np.sqrt(feature["var_pooled"])
    expected = ((value - feature["grand_mean"]) / sd - pooled_gamma) / np.sqrt(pooled_delta) * sd + feature["grand_mean"]
    assert out[0, 0] == pytest.approx(expected, rel=1e-12)
    none_out, none_modes = first.transform(np.array([[value]]), [None])
    assert none_modes == [MODE_POOLED] and none_out[0, 0] == out[0, 0]


def test_missing_covariate_is_an_error():
    x, site, age, names = _multicentre(covariate=True)
    params, _ = fit_combat(x, site, names, {"age": age})
    with pytest.raises(InputError, match="covariate 'age'"):
        params.transform(x[:1], ["A"])
    with pytest.raises(KeyError, match="lack features"):
        params.subset(["T2W_original_firstorder_Unknown"])


def test_harmonisation_document_round_trip_and_families():
    x, site, age, names = _multicentre(covariate=True)
    params, _ = fit_combat(x, site, names, {"age": age})
    doc = {"applied": True, "note": "ComBat learned on the training cohort, centres A, B, C",
           "training_centers": ["A", "B", "C"], "families": {"radiomics": params.subset(names[:2]).to_dict()}}
    text = to_json(doc)
    harmonisation = Harmonisation.from_dict(json.loads(text))
    assert to_json(harmonisation.to_dict()) == text
    assert harmonisation.for_family("radiomics").feature_names_ == names[:2]
    assert harmonisation.for_family("dl-resnet2d") is None
    assert Harmonisation.from_dict(json.loads(text) | {"applied": False}).for_family("radiomics") is None
    # a model without ComBat (what the shipped models hold)
    empty = {"applied": False, "note": "not applied (disabled)", "training_centers": ["A"], "families": {}}
    assert Harmonisation.from_dict(empty).to_dict() == empty
