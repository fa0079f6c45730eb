"""Seed 004's feature-selection chain for one feature family, on the training cohort only.

1. Mann-Whitney U test per feature (two-sided, scipy's default method: asymptotic with
   continuity correction at these sample sizes); keep p < 0.01.
2. Spearman redundancy removal: features are visited in order of increasing MWU p (ties by
   name); a feature is kept unless |rho| > 0.8 with a feature already kept. So of a correlated
   pair the one with the smaller MWU p survives; the result does not depend on column order.
3. LASSO logistic regression (scikit-learn liblinear, L1) on features standardised with the
   training mean and standard deviation (ddof=0). The penalty C is chosen by stratified k-fold
   cross-validation (fixed seed) over a log-spaced grid starting at the smallest C that admits a
   non-zero coefficient: rule "min" takes the C with the lowest mean held-out deviance
   (glmnet's lambda.min), "1se" the sparsest C within one standard error of it (lambda.1se).
   glmnet's lambda corresponds to 1 / (C * n_train). The intercept is left practically
   unpenalised (intercept_scaling = 100). Features with non-zero coefficients are kept.
4. Backward stepwise logistic regression by AIC (statsmodels, see `logistic.py`) on the
   standardised LASSO survivors. The family's score (Rad_score, DL_score) is the final model's
   linear predictor: intercept + sum(beta_i * (x_i - mean_i) / sd_i). When the LASSO survivors
   separate the training classes perfectly, the unpenalised model has no estimate (its likelihood
   has no maximum) and the LASSO model itself, penalised and finite, is the family's model.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import mannwhitneyu, rankdata

from CervicalAILib.research.fit.logistic import backward_stepwise_aic, fit_logit
from CervicalAILib.scoring.dlrc import finite_or_none
from CervicalAILib.scoring.family_score import FamilyScore


@dataclass
class SelectionConfig:
    """Every knob of the chain; all of it is written into the bundle's provenance."""

    mwu_p: float = 0.01
    spearman_rho: float = 0.8
    lasso_folds: int = 10
    lasso_n_c: int = 30
    lasso_c_ratio: float = 1000.0
    lasso_rule: str = "min"
    lasso_tol: float = 1e-6
    intercept_scaling: float = 100.0
    seed: int = 2026

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class FamilySelection:
    """What the chain chose for one family: its score (None when it kept no feature) and the log."""

    family: str
    model: FamilyScore | None
    log: dict[str, Any] = field(default_factory=dict)

    @property
    def available(self) -> bool:
        return self.model is not None

    @property
    def features(self) -> list[str]:
        return list(self.model.features_) if self.model is not None else []


def _family_score(family: str, features: list[str], mean, sd, coefficients, intercept: float) -> FamilyScore:
    return FamilyScore(family_=family, features_=features, mean_=np.array([float(v) for v in mean]),
                       sd_=np.array([float(v) for v in sd]), coef_=np.array([float(v) for v in coefficients]),
                       intercept_=float(intercept))


def mann_whitney_p(values: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Two-sided Mann-Whitney U p-value of every column between y == 1 and y == 0."""
    values = np.asarray(values, dtype=float)
    y = np.asarray(y).astype(bool)
    if values.shape[1] == 0:
        return np.zeros(0)
    return np.asarray(mannwhitneyu(values[y], values[~y], alternative="two-sided", axis=0).pvalue, dtype=float)


def spearman_matrix(values: np.ndarray) -> np.ndarray:
    """Spearman rank correlation between columns (average ranks for ties)."""
    ranks = rankdata(np.asarray(values, dtype=float), axis=0)
    if ranks.shape[1] == 1:
        return np.ones((1, 1))
    return np.corrcoef(ranks, rowvar=False)


def remove_redundant(values: np.ndarray, names: Sequence[str], p_values: Sequence[float], threshold: float) -> tuple[list[int], list[dict]]:
    """Greedy Spearman redundancy removal; returns kept column indices and who removed whom."""
    order = sorted(range(len(names)), key=lambda i: (p_values[i], names[i]))
    if not order:
        return [], []
    rho = spearman_matrix(values)
    removed = np.zeros(len(names), dtype=bool)
    kept: list[int] = []
    log: list[dict] = []
    for i in order:
        if removed[i]:
            continue
        kept.append(i)
        partners = np.flatnonzero((np.abs(rho[i]) > threshold) & ~removed)
        for j in partners:
            if j != i and j not in kept:
                removed[j] = True
                log.append({"removed": names[j], "kept": names[i], "rho": float(rho[i, j])})
    return kept, log


def standardise(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z, mean, sd) with ddof = 0; callers drop constant columns before."""
    values = np.asarray(values, dtype=float)
    mean = values.mean(axis=0)
    sd = values.std(axis=0)
    return (values - mean) / sd, mean, sd


def _lasso(C: float, config: SelectionConfig):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(
        l1_ratio=1.0,
        C=C,
        solver="liblinear",
        intercept_scaling=config.intercept_scaling,
        tol=config.lasso_tol,
        max_iter=10000,
        random_state=config.seed,
    )


def lasso_cv(z: np.ndarray, y: np.ndarray, config: SelectionConfig) -> dict[str, Any]:
    """Choose the L1 penalty by stratified k-fold CV; return the chosen C, path and coefficients."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(y, dtype=int)
    # smallest C with a non-zero coefficient when the intercept sits at the training log-odds:
    # liblinear minimises C * sum(log loss) + |w|_1, so w = 0 is optimal while C * |z_j'(y - ybar)| <= 1
    c_min = float(1.0 / np.max(np.abs(z.T @ (y - y.mean()))))
    grid = c_min * np.logspace(0.0, np.log10(config.lasso_c_ratio), config.lasso_n_c)
    n_folds = max(2, min(config.lasso_folds, int(min(np.sum(y == 1), np.sum(y == 0)))))
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=config.seed)
    deviance = np.zeros((n_folds, len(grid)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for f, (train, test) in enumerate(folds.split(z, y)):
            for k, C in enumerate(grid):
                model = _lasso(C, config).fit(z[train], y[train])
                p = np.clip(model.predict_proba(z[test])[:, 1], 1e-15, 1 - 1e-15)
                deviance[f, k] = -2.0 * np.mean(y[test] * np.log(p) + (1 - y[test]) * np.log(1 - p))
        mean = deviance.mean(axis=0)
        se = deviance.std(axis=0, ddof=1) / np.sqrt(n_folds)
        best = int(np.argmin(mean))  # argmin takes the first: the smallest C (sparsest) on ties
        if config.lasso_rule == "1se":
            best = int(np.flatnonzero(mean <= mean[best] + se[best])[0])
        elif config.lasso_rule != "min":
            raise ValueError(f"unknown LASSO rule {config.lasso_rule!r} (min or 1se)")
        final = _lasso(float(grid[best]), config).fit(z, y)
    return {
        "C": float(grid[best]),
        "glmnet_lambda": float(1.0 / (grid[best] * len(y))),
        "folds": n_folds,
        "grid": [float(c) for c in grid],
        "mean_deviance": [float(v) for v in mean],
        "se_deviance": [float(v) for v in se],
        "coefficients": [float(v) for v in final.coef_[0]],
        "intercept": float(final.intercept_[0]),
    }


def select_family(family: str, values: np.ndarray, names: Sequence[str], y: np.ndarray,
                  config: SelectionConfig) -> FamilySelection:
    """Run the whole chain on one family's training matrix (harmonised raw values)."""
    names = list(names)
    values = np.asarray(values, dtype=float)
    y = np.asarray(y, dtype=int)
    log: dict[str, Any] = {"n_candidates": len(names)}

    p = mann_whitney_p(values, y)
    mwu_keep = [i for i in range(len(names)) if p[i] < config.mwu_p]
    log["mann_whitney"] = {
        "threshold": config.mwu_p,
        "kept": len(mwu_keep),
        "p": {names[i]: float(p[i]) for i in sorted(mwu_keep, key=lambda i: (p[i], names[i]))},
    }
    empty = FamilySelection(family, None, log)
    if not mwu_keep:
        log["stopped"] = f"no feature with Mann-Whitney p < {config.mwu_p}"
        return empty

    sub = values[:, mwu_keep]
    sub_names = [names[i] for i in mwu_keep]
    kept, removed = remove_redundant(sub, sub_names, [p[i] for i in mwu_keep], config.spearman_rho)
    kept = sorted(kept, key=lambda i: sub_names[i])
    spearman_names = [sub_names[i] for i in kept]
    log["spearman"] = {"threshold": config.spearman_rho, "kept": spearman_names, "removed": removed}

    z, _, _ = standardise(sub[:, kept])
    lasso = lasso_cv(z, y, config)
    lasso_names = [n for n, c in zip(spearman_names, lasso["coefficients"]) if c != 0.0]
    log["lasso"] = {
        k: lasso[k] for k in ("C", "glmnet_lambda", "folds", "grid", "mean_deviance", "se_deviance")
    } | {"rule": config.lasso_rule, "kept": {n: c for n, c in zip(spearman_names, lasso["coefficients"]) if c != 0.0}}
    if not lasso_names:
        log["stopped"] = "LASSO kept no feature at the cross-validated penalty"
        return empty

    lasso_idx = [names.index(n) for n in lasso_names]
    z, mean, sd = standardise(values[:, lasso_idx])
    if not fit_logit(z, y, lasso_names).converged:
        # Separation: the LASSO's features split the training classes perfectly (e.g. an endpoint that a
        # size feature defines), so the unpenalised logistic model has no maximum-likelihood estimate and
        # stepwise AIC has nothing to compare. The LASSO model, penalised and finite, is the family's model.
        log["stepwise"] = {"criterion": "AIC", "skipped": "the unpenalised model of the LASSO features does not "
                           "converge (separation): the score is the LASSO model's linear predictor"}
        coefficients = [c for c in lasso["coefficients"] if c != 0.0]
        return FamilySelection(family, _family_score(family, list(lasso_names), mean, sd, coefficients, lasso["intercept"]),
                               log)
    step = backward_stepwise_aic(z, y, lasso_names)
    log["stepwise"] = {"criterion": "AIC", "direction": "backward", "steps": step.steps, "kept": step.terms,
                       "aic": finite_or_none(step.fit.aic)}
    if not step.terms:
        log["stopped"] = "backward stepwise AIC kept no feature"
        return empty
    pos = [lasso_names.index(t) for t in step.terms]
    log["final"] = {
        "standard_errors": step.fit.standard_errors,
        "p_values": step.fit.p_values,
    }
    return FamilySelection(family, _family_score(family, list(step.terms), mean[pos], sd[pos], step.fit.coefficients,
                                                 step.fit.intercept), log)


def cross_validated_auc(
    family: str, values: np.ndarray, names: Sequence[str], y: np.ndarray, config: SelectionConfig, folds: int
) -> float:
    """Mean held-out-fold AUC when the whole chain is refitted in each of `folds` folds.

    Used to choose among deep families without looking at validation cohorts: the chain's own
    in-sample AUC is optimistic, more so for families with many features.
    """
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(y, dtype=int)
    values = np.asarray(values, dtype=float)
    aucs = []
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=config.seed + 1)
    for train, test in splitter.split(values, y):
        fold_values = values[train]
        usable = np.ptp(fold_values, axis=0) > 0
        fold_names = [n for n, u in zip(names, usable) if u]
        chosen = select_family(family, fold_values[:, usable], fold_names, y[train], config).model
        if chosen is not None:
            cols = [list(names).index(f) for f in chosen.features_]
            aucs.append(float(roc_auc_score(y[test], chosen.decision_function(values[test][:, cols]))))
        else:
            aucs.append(0.5)  # the chain found nothing in this fold: no discrimination
    return float(np.mean(aucs))
