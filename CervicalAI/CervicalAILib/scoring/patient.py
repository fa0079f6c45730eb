"""Scores for one patient: ComBat -> Rad_score / DL_score -> DLRC probability -> nomogram points.

`score_patient` composes the risk model's parts: each family's `ComBat` (`combat.py`) and
`FamilyScore` (`family_score.py`), the `DLRCModel` (`dlrc.py`) and the nomogram.

It takes the patient's raw feature values (names as in the feature table, e.g.
`CET1_wavelet-HLH_gldm_SmallDependenceEmphasis`), clinical values and centre, and returns plain
data for the readout JSON. Nothing is imputed: a missing feature makes its score unavailable, a
missing score or clinical value makes the DLRC probability unavailable, and the result says which
and why. Values outside the training range are used but warned about.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from CervicalAILib.contracts.clinical import term_value
from CervicalAILib.contracts.feature_names import role_of
from CervicalAILib.core.errors import InputError
from CervicalAILib.scoring.combat import MODE_CENTER, MODE_POOLED
from CervicalAILib.scoring.nomogram import nomogram_points
from CervicalAILib.scoring.risk_model import RiskModel

SCORE_LABELS = {"rad_score": "Rad_score", "dl_score": "DL_score"}


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, (bool, np.bool_, str)):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _outside(value: float, bounds: Mapping[str, float] | None) -> bool:
    return bounds is not None and not (bounds["min"] <= value <= bounds["max"])


def _range_text(bounds: Mapping[str, float]) -> str:
    return f"[{bounds['min']:.4g}, {bounds['max']:.4g}]"


def score_patient(
    model: RiskModel,
    features: Mapping[str, Any],
    clinical: Mapping[str, Any] | None = None,
    center: str | None = None,
    covariates: Mapping[str, Any] | None = None,
    all_families: bool = False,
    strict_clinical: bool = True,
) -> dict[str, Any]:
    """Apply a risk model to one patient; see the module docstring.

    `covariates`: values of ComBat covariates when the model was harmonised with any.
    `all_families`: also compute the scores of deep families not chosen for DL_score.
    `strict_clinical`: raise InputError for an invalid clinical value (else: unavailable + reason).
    """
    clinical = dict(clinical or {})
    doc = model.model
    ranges = doc["training_ranges"]
    warnings: list[str] = []
    unavailable: list[str] = []
    center = None if center is None or (isinstance(center, float) and math.isnan(center)) else str(center)

    # ---- harmonisation mode
    harmoniser = model.harmonisation
    combat_families = harmoniser.families_ if harmoniser.applied_ else {}
    training_centers = harmoniser.training_centers_
    if combat_families:
        mode = MODE_CENTER if center in training_centers else MODE_POOLED
        if center is None:
            warnings.append("centre not given: features harmonised with the pooled reference of the training centres")
        elif mode == MODE_POOLED:
            warnings.append(f"centre {center} was not in the training data ({', '.join(training_centers)}): features "
                            "harmonised with the pooled reference of the training centres")
    else:
        mode = "not applied"
        if center is not None and training_centers and center not in training_centers:
            warnings.append(f"centre {center} was not in the training data ({', '.join(training_centers)}) and the model "
                            "has no harmonisation: scanner differences may shift the scores")
    harmonisation = {"method": "ComBat" if combat_families else None, "mode": mode, "center": center,
                     "note": harmoniser.note_}

    # ---- family scores
    wanted = list(dict.fromkeys(doc["scores"].values()))
    if all_families:
        wanted += [f for f in model.families if f not in wanted]
    feature_out: dict[str, dict[str, Any]] = {}
    family_scores: dict[str, float | None] = {}
    family_reason: dict[str, str] = {}
    for family in wanted:
        family_score = model.families[family]
        names = family_score.features_
        raw = [_number(features.get(n)) for n in names]
        missing = [n for n, v in zip(names, raw) if v is None]
        if missing:
            sequences = sorted({role_of(n) for n in missing})
            family_scores[family] = None
            family_reason[family] = (f"{len(missing)} feature(s) missing ({', '.join(missing[:3])}"
                                     f"{' ...' if len(missing) > 3 else ''}; sequence(s) {', '.join(sequences)})")
            continue
        values = np.asarray(raw, dtype=float).reshape(1, -1)
        if family in combat_families:
            combat = combat_families[family]
            if combat.feature_names_ != names:
                combat = combat.subset(names)
            try:
                values, _ = combat.transform(values, [center], covariates)
            except InputError as exc:
                family_scores[family] = None
                family_reason[family] = f"cannot harmonise: {exc}"
                continue
        family_scores[family] = float(family_score.decision_function(values[0]))
        for name, value, harmonised in zip(names, raw, values[0]):
            bounds = ranges["features"].get(name)
            inside = not _outside(float(harmonised), bounds)
            feature_out[name] = {"family": family, "sequence": role_of(name), "value": value,
                                 "harmonised": float(harmonised),
                                 "training_range": [bounds["min"], bounds["max"]] if bounds else None,
                                 "in_training_range": inside}
            if not inside and family in doc["scores"].values():
                warnings.append(f"feature {name} = {harmonised:.4g} is outside the training range {_range_text(bounds)}")

    scores: dict[str, dict[str, Any]] = {}
    for score, family in doc["scores"].items():
        value = family_scores.get(family)
        scores[score] = {"label": SCORE_LABELS[score], "family": family, "value": value, "available": value is not None,
                         "sequences": sorted({role_of(n) for n in model.families[family].features_}),
                         "reason": None if value is not None else f"{SCORE_LABELS[score]} unavailable: {family_reason[family]}"}
        if value is None:
            unavailable.append(scores[score]["reason"])
        elif _outside(value, ranges["scores"].get(score)):
            warnings.append(f"{SCORE_LABELS[score]} = {value:.3f} is outside the training range "
                            f"{_range_text(ranges['scores'][score])}")

    # ---- DLRC
    dlrc = model.dlrc
    term_values: dict[str, Any] = {}
    clinical_used: dict[str, Any] = {}
    missing_terms: list[str] = []
    for term in dlrc.terms_:
        name = term["name"]
        if term["kind"] == "score":
            value = scores[name]["value"]
            if value is None:
                missing_terms.append(f"{SCORE_LABELS[name]} unavailable")
            term_values[name] = value
            continue
        try:
            value, reason = term_value(term, clinical.get(name))
        except InputError:
            if strict_clinical:
                raise
            value, reason = None, f"clinical value {name!r} = {clinical.get(name)!r} is invalid"
        clinical_used[name] = value
        term_values[name] = value
        if reason:
            missing_terms.append(reason)
        elif term["kind"] == "continuous" and _outside(float(value), ranges["clinical"].get(name)):
            warnings.append(f"clinical value {name} = {value:g} is outside the training range "
                            f"{_range_text(ranges['clinical'][name])}")
    probability = lp = None
    nomogram = None
    if missing_terms:
        unavailable.append(f"{doc['outcome_label']} unavailable: " + "; ".join(missing_terms))
    else:
        lp = dlrc.decision_function(term_values)
        probability = dlrc.predict_proba(term_values)
        reading = nomogram_points(model.nomogram, term_values)
        nomogram = {"points": reading["points"], "total_points": reading["total_points"],
                    "probability": reading["probability"], "values": dict(term_values)}
        if _outside(lp, ranges.get("dlrc_linear_predictor")):
            warnings.append("the combined DLRC score is outside the range seen in training: an extrapolation")
    cutoff = doc["cutoffs"]["dlrc_probability"]["cutoff"]
    return {
        "model": model.label,
        "endpoint": doc["endpoint"],
        "outcome_label": doc["outcome_label"],
        "positive": doc["positive"],
        "probability": probability,
        f"{doc['endpoint']}_probability": probability,
        "linear_predictor": lp,
        "cutoff": cutoff,
        "above_cutoff": None if probability is None else bool(probability >= cutoff),
        "rad_score": scores.get("rad_score", {}).get("value"),
        "dl_score": scores.get("dl_score", {}).get("value"),
        "scores": scores,
        "family_scores": family_scores,
        "features": feature_out,
        "clinical": clinical_used,
        "harmonisation": harmonisation,
        "nomogram": nomogram,
        "unavailable": unavailable,
        "warnings": warnings,
    }
