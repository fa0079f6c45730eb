"""ComBat harmonisation of features across centres (scanners, protocols).

Learning uses neuroHarmonize's `harmonizationLearn` (SITE = centre, parametric empirical Bayes),
on the training cohort only. What it learned is kept as plain JSON (never a pickle), per feature:

    grand_mean            pooled mean the centres are harmonised to (neuroHarmonize `stand_mean`)
    var_pooled            pooled residual variance
    gamma / delta         per-centre location / scale adjustments (`gamma_star`, `delta_star`)
    covariates            regression coefficients of numeric covariates kept in the data (`B_hat`)

Application is our own numpy code (`apply_combat`), equal to neuroHarmonize's
`harmonizationApply` to machine precision for a known centre:

    s        = (x - grand_mean - sum_k c_k * beta_k) / sqrt(var_pooled)
    x_harmon = (s - gamma[centre]) / sqrt(delta[centre]) * sqrt(var_pooled) + grand_mean + sum_k c_k * beta_k

(covariate values are cast to float32 first, as neuroCombat's design matrix does). For a centre that
was not in training, neuroHarmonize returns NaN; we use the *pooled reference* instead - the
sample-size-weighted average of the training centres' adjustments, i.e. the patient is treated as
coming from an average training centre - and say so in a warning.

With a single training centre there is no centre effect to estimate (neuroHarmonize would still
rescale the features through its empirical-Bayes variance prior), so `fit_combat` refuses and the
fitting code records "not applied".
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from CervicalAILib.core.errors import InputError

COMBAT_SCHEMA = "cervicalai.combat/1"
MIN_CASES_PER_CENTER = 3

MODE_CENTER = "centre"
MODE_POOLED = "pooled"


def fit_combat(
    values: np.ndarray,
    centers: Sequence[str],
    feature_names: Sequence[str],
    covariates: Mapping[str, Sequence[float]] | None = None,
    empirical_bayes: bool = True,
) -> dict[str, Any]:
    """Learn ComBat on a training matrix (cases x features) with neuroHarmonize.

    Returns the JSON-ready parameter dict (see module docstring) and the harmonised training
    matrix under the key "_harmonised" (a numpy array; removed before writing JSON). Raises
    InputError when fewer than two centres or a centre with fewer than MIN_CASES_PER_CENTER cases.
    """
    import pandas as pd
    from neuroHarmonize import harmonizationLearn

    values = np.asarray(values, dtype=float)
    centers = np.asarray([str(c) for c in centers], dtype=object)
    if values.ndim != 2 or values.shape[0] != len(centers) or values.shape[1] != len(feature_names):
        raise ValueError("values must be cases x features, matching centers and feature_names")
    if not np.all(np.isfinite(values)):
        raise InputError("ComBat needs finite feature values (exclude failed cases first)")
    labels, counts = np.unique(centers, return_counts=True)
    if len(labels) < 2:
        raise InputError(f"ComBat needs at least two training centres (found only {', '.join(labels)})")
    small = [f"{label} ({count})" for label, count in zip(labels, counts) if count < MIN_CASES_PER_CENTER]
    if small:
        raise InputError(
            f"ComBat needs at least {MIN_CASES_PER_CENTER} training cases per centre; too few in: {', '.join(small)} "
            "(merge small centres or fit without ComBat)"
        )
    covariates = dict(covariates or {})
    covars = pd.DataFrame({"SITE": centers})
    for name, column in covariates.items():
        column = np.asarray(column, dtype=float)
        if column.shape != (len(centers),) or not np.all(np.isfinite(column)):
            raise InputError(f"ComBat covariate {name!r} needs one finite value per training case")
        covars[name] = column
    # neuroHarmonize prints progress to stdout; the engine reports through its own channels
    with contextlib.redirect_stdout(io.StringIO()), np.errstate(divide="ignore", invalid="ignore"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)  # neuroHarmonize uses np.matrix
        model, harmonised = harmonizationLearn(values, covars, eb=empirical_bayes)
    site_labels = [str(s) for s in model["SITE_labels"]]
    n_batch = len(site_labels)
    gamma = np.asarray(model["gamma_star"], dtype=float)
    delta = np.asarray(model["delta_star"], dtype=float)
    grand_mean = np.asarray(model["stand_mean"], dtype=float)[:, 0]
    var_pooled = np.asarray(model["var_pooled"], dtype=float)[:, 0]
    b_hat = np.asarray(model["B_hat"], dtype=float)
    n_per_site = np.array([int(np.sum(centers == s)) for s in site_labels], dtype=float)
    weights = n_per_site / n_per_site.sum()
    pooled_gamma = weights @ gamma
    pooled_delta = weights @ delta

    features: dict[str, Any] = {}
    for j, name in enumerate(feature_names):
        features[name] = {
            "grand_mean": float(grand_mean[j]),
            "var_pooled": float(var_pooled[j]),
            "gamma": {s: float(gamma[i, j]) for i, s in enumerate(site_labels)},
            "delta": {s: float(delta[i, j]) for i, s in enumerate(site_labels)},
            "pooled_gamma": float(pooled_gamma[j]),
            "pooled_delta": float(pooled_delta[j]),
            "covariates": {c: float(b_hat[n_batch + k, j]) for k, c in enumerate(covariates)},
        }
    return {
        "schema": COMBAT_SCHEMA,
        "method": "ComBat, parametric empirical Bayes" if model["eb"] else "ComBat, location/scale without empirical Bayes",
        "learned_with": "neuroHarmonize.harmonizationLearn (SITE = centre)",
        "centers": site_labels,
        "cases_per_center": {s: int(n) for s, n in zip(site_labels, n_per_site)},
        "covariates": list(covariates),
        "unknown_center_policy": (
            "pooled reference: sample-size-weighted average of the training centres' gamma and delta"
        ),
        "features": features,
        "_harmonised": np.asarray(harmonised, dtype=float),
    }


def subset_combat(params: Mapping[str, Any], feature_names: Sequence[str]) -> dict[str, Any]:
    """The same parameters restricted to `feature_names` (what a bundle needs to score a patient)."""
    out = {k: v for k, v in params.items() if k not in ("features", "_harmonised")}
    missing = [f for f in feature_names if f not in params["features"]]
    if missing:
        raise KeyError(f"ComBat parameters lack features: {', '.join(missing[:5])}")
    out["features"] = {f: params["features"][f] for f in feature_names}
    return out


def apply_combat(
    params: Mapping[str, Any],
    values: np.ndarray,
    feature_names: Sequence[str],
    centers: Sequence[str | None],
    covariates: Mapping[str, Sequence[float]] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Harmonise a matrix (cases x features) with learned parameters.

    Returns (harmonised matrix, per-case mode): MODE_CENTER when the case's centre was in
    training, MODE_POOLED otherwise (centre unseen or None). NaN inputs stay NaN.
    """
    values = np.atleast_2d(np.asarray(values, dtype=float))
    n_cases = values.shape[0]
    if values.shape[1] != len(feature_names) or len(centers) != n_cases:
        raise ValueError("values must be cases x features, matching centers and feature_names")
    table = params["features"]
    missing = [f for f in feature_names if f not in table]
    if missing:
        raise KeyError(f"ComBat parameters lack features: {', '.join(missing[:5])}")
    known = list(params["centers"])
    cov_names = list(params.get("covariates", []))
    cov = np.zeros((n_cases, len(cov_names)))
    for k, name in enumerate(cov_names):
        if covariates is None or name not in covariates:
            raise InputError(f"ComBat was learned with covariate {name!r}; its value is needed to harmonise")
        # neuroCombat builds its design matrix in float32: do the same to agree to the last digit
        cov[:, k] = np.asarray(covariates[name], dtype=np.float32).astype(float)

    grand_mean = np.array([table[f]["grand_mean"] for f in feature_names])
    sd_pooled = np.sqrt(np.array([table[f]["var_pooled"] for f in feature_names]))
    beta = np.array([[table[f]["covariates"][c] for f in feature_names] for c in cov_names]).reshape(
        len(cov_names), len(feature_names)
    )
    mod_mean = cov @ beta
    modes: list[str] = []
    gamma = np.empty_like(values)
    delta = np.empty_like(values)
    for i, center in enumerate(centers):
        key = None if center is None else str(center)
        if key in known:
            modes.append(MODE_CENTER)
            gamma[i] = [table[f]["gamma"][key] for f in feature_names]
            delta[i] = [table[f]["delta"][key] for f in feature_names]
        else:
            modes.append(MODE_POOLED)
            gamma[i] = [table[f]["pooled_gamma"] for f in feature_names]
            delta[i] = [table[f]["pooled_delta"] for f in feature_names]
    standardised = (values - grand_mean - mod_mean) / sd_pooled
    harmonised = (standardised - gamma) / np.sqrt(delta) * sd_pooled + grand_mean + mod_mean
    return harmonised, modes

