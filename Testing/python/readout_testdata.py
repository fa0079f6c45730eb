"""Test data for readout tests: a hand-built LNM risk model whose coefficients are chosen here, and the
readout's values computed independently of the readout code (the engine's and the Predict module's tests)."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import SimpleITK as sitk
import yaml

from CervicalAILib.bundles.format import write_bundle
from CervicalAILib.features.deep import extract_deep_features, load_encoder
from CervicalAILib.features.radiomic import extract_features
from CervicalAILib.registration.masks import mask_on_grid
from CervicalAILib.scoring.nomogram import build_nomogram

RAD = ["ADC_original_firstorder_Median", "T2W_original_shape_Maximum3DDiameter", "CET1_original_firstorder_Skewness"]
DL = ["DWI_dl-tiny_F0001", "DWI_dl-tiny_F0003"]
SETTINGS = {
    "setting": {"label": 1, "binWidth": 25, "normalize": False, "preCrop": True, "padDistance": 2},
    "imageType": {"Original": {}},
    "featureClass": {"shape": [], "firstorder": []},
}
CROP = {"mode": "2d", "size": [24, 24], "channels": 3, "margin_mm": 4.0, "spacing_mm": [2.0, 2.0], "fit": True,
        "masking": "tumor", "antialias": True}
ZSCORE = {"clip_percentiles": [0.5, 99.5], "scale": "zscore", "stats_region": "crop", "background": 0.0}
RAD_MODEL = {"mean": [900.0, 40.0, 0.0], "sd": [200.0, 15.0, 1.0], "coefficients": [-0.8, 0.6, 0.2], "intercept": -0.7}
DL_MODEL = {"mean": [0.5, 0.5], "sd": [1.0, 1.0], "coefficients": [0.3, -0.2], "intercept": -0.1}
DLRC = {"intercept": -0.4, "coefficients": {"rad_score": 0.9, "dl_score": 0.5, "c_lnm": 1.8}}
# the model without contrast: the same, less the CE-T1WI feature of Rad_score
NO_CONTRAST = 2  # RAD[:2]


def training_range(low, high):
    """A training range of a value: the checked limits and the 1st and 99th percentiles."""
    return {"min": low, "max": high, "p01": low, "p99": high}


def risk_bundle(path, encoder_bundle, roles=("T2W", "ADC", "CET1", "DWI"), name="test-lnm", without_contrast=False):
    """The hand-built LNM model; `without_contrast`: its Rad_score lacks the CE-T1WI feature (the model a
    study without CE-T1WI gets)."""
    rad = RAD[:NO_CONTRAST] if without_contrast else RAD
    rad_model = {k: v[:len(rad)] if isinstance(v, list) else v for k, v in RAD_MODEL.items()}
    if without_contrast:
        roles = tuple(r for r in roles if r != "CET1")
    terms = [
        {"name": "rad_score", "label": "Rad_score", "kind": "score", "family": "radiomics", "columns": ["rad_score"]},
        {"name": "dl_score", "label": "DL_score", "kind": "score", "family": "dl-tiny", "columns": ["dl_score"]},
        {"name": "c_lnm", "label": "c_LNM", "type": "binary", "kind": "binary", "columns": ["c_lnm"]},
    ]
    dlrc = {"terms": terms, **DLRC}
    model = {
        "schema": "cervicalai.risk-model/1", "endpoint": "lnm", "endpoint_column": "lnm",
        "positive": "lymph-node metastasis", "negative": "no lymph-node metastasis", "outcome_label": "LNM risk",
        "scores": {"rad_score": "radiomics", "dl_score": "dl-tiny"},
        "families": {
            "radiomics": {"family": "radiomics", "features": rad, "standardisation": {"mean": rad_model["mean"], "sd": rad_model["sd"]},
                          "coefficients": rad_model["coefficients"], "intercept": rad_model["intercept"]},
            "dl-tiny": {"family": "dl-tiny", "features": DL, "standardisation": {"mean": DL_MODEL["mean"], "sd": DL_MODEL["sd"]},
                        "coefficients": DL_MODEL["coefficients"], "intercept": DL_MODEL["intercept"]},
        },
        "dlrc": dlrc,
        "cutoffs": {"dlrc_probability": {"cutoff": 0.35}},
        "training_ranges": {
            "features": {RAD[0]: training_range(500, 2500), RAD[1]: training_range(5, 80), RAD[2]: training_range(-3, 3), DL[0]: training_range(-50, 50), DL[1]: training_range(-50, 50)},
            "scores": {"rad_score": training_range(-6, 6), "dl_score": training_range(-6, 6)},
            "clinical": {},
            "dlrc_linear_predictor": training_range(-8, 8),
        },
    }
    nomogram = build_nomogram(dlrc, {"rad_score": np.array([-3.0, 3.0]), "dl_score": np.array([-2.0, 2.0]), "c_lnm": np.array([0, 1])})
    encoder_json = encoder_bundle.path / "bundle.json"
    manifest = {
        "name": name, "version": "0.1.0", "task": "risk-model", "endpoint": "lnm",
        "intended_use": "tests only", "training_data": "hand-made coefficients; not for clinical use",
        "inputs": {
            "sequences": list(roles),
            "radiomics_settings": {role: f"radiomics/{role}.yaml" for role in ("T2W", "ADC", "CET1")},
            "encoders": [{"family": "dl-tiny", "name": encoder_bundle.name, "version": encoder_bundle.version,
                          "sha256": hashlib.sha256(encoder_json.read_bytes()).hexdigest()}],
        },
        "outputs": [{"name": "probability"}], "provenance": {"test": True},
        "artefacts": {"model": "model.json", "combat": "combat.json", "nomogram": "nomogram.json"},
    }
    files = {"model.json": json.dumps(model), "combat.json": json.dumps({"applied": False}),
             "nomogram.json": json.dumps(nomogram), "MODEL_CARD.md": "# test model\n"}
    for role in ("T2W", "ADC", "CET1"):
        files[f"radiomics/{role}.yaml"] = yaml.safe_dump(SETTINGS)
    return write_bundle(path, manifest, files)


def expected_readout(world, c_lnm, without_contrast=False):
    """Features, scores and probability computed here, independently of the readout code."""
    mask = sitk.ReadImage(str(world["mask"]))
    on_grid = {r: mask if r == "T2W" else mask_on_grid(mask, world["images"][r], world["transforms"][r]) for r in world["images"]}
    names = RAD[:NO_CONTRAST] if without_contrast else RAD
    rad = {}
    for name in names:
        role = name.split("_", 1)[0]
        rad.update(extract_features({role: world["images"][role]}, on_grid[role], settings={role: SETTINGS}, features=[name]))
    deep = extract_deep_features({"DWI": world["images"]["DWI"]}, {"DWI": on_grid["DWI"]}, load_encoder(world["encoder"]), roles=["DWI"])
    k = len(names)
    z = (np.array([rad[n] for n in names]) - RAD_MODEL["mean"][:k]) / RAD_MODEL["sd"][:k]
    rad_score = RAD_MODEL["intercept"] + z @ RAD_MODEL["coefficients"][:k]
    zd = (np.array([deep[n] for n in DL]) - DL_MODEL["mean"]) / DL_MODEL["sd"]
    dl_score = DL_MODEL["intercept"] + zd @ DL_MODEL["coefficients"]
    c = DLRC["coefficients"]
    lp = DLRC["intercept"] + c["rad_score"] * rad_score + c["dl_score"] * dl_score + c["c_lnm"] * c_lnm
    return rad, deep, rad_score, dl_score, 1 / (1 + math.exp(-lp))
