"""Learning ComBat on a training cohort with neuroHarmonize; the result is the serving `ComBat`.

See `scoring/combat.py` for what the parameters mean and how they are applied to a patient.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from CervicalAILib.core.errors import InputError
from CervicalAILib.scoring.combat import COMBAT_SCHEMA, MIN_CASES_PER_CENTER, UNKNOWN_CENTER_POLICY, ComBat


def fit_combat(
    values: np.ndarray,
    centers: Sequence[str],
    feature_names: Sequence[str],
    covariates: Mapping[str, Sequence[float]] | None = None,
    empirical_bayes: bool = True,
) -> tuple[ComBat, np.ndarray]:
    """Learn ComBat on a training matrix (cases x features) with neuroHarmonize.

    Returns the parameters and the harmonised training matrix. Raises InputError when fewer than
    two centres or a centre with fewer than MIN_CASES_PER_CENTER cases.
    """
    import pandas as pd  # research extra
    from neuroHarmonize import harmonizationLearn  # research extra

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
    n_per_site = np.array([int(np.sum(centers == s)) for s in site_labels], dtype=float)
    weights = n_per_site / n_per_site.sum()
    combat = ComBat(
        feature_names_=list(feature_names),
        centers_=site_labels,
        covariates_=list(covariates),
        grand_mean_=np.asarray(model["stand_mean"], dtype=float)[:, 0],
        var_pooled_=np.asarray(model["var_pooled"], dtype=float)[:, 0],
        gamma_=gamma,
        delta_=delta,
        pooled_gamma_=weights @ gamma,
        pooled_delta_=weights @ delta,
        beta_=np.asarray(model["B_hat"], dtype=float)[n_batch:n_batch + len(covariates)],
        cases_per_center_={s: int(n) for s, n in zip(site_labels, n_per_site)},
        method_="ComBat, parametric empirical Bayes" if model["eb"] else "ComBat, location/scale without empirical Bayes",
        learned_with_="neuroHarmonize.harmonizationLearn (SITE = centre)",
        unknown_center_policy_=UNKNOWN_CENTER_POLICY,
        schema_=COMBAT_SCHEMA,
    )
    return combat, np.asarray(harmonised, dtype=float)
