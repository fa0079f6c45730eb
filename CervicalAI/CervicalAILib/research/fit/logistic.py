"""Unpenalised logistic regression (statsmodels) and backward stepwise selection by AIC.

Stepwise works on *terms*: a term is one or more design columns that enter or leave together
(a continuous feature is one column; a categorical clinical variable with k levels is k-1 dummy
columns), as R's `step()` treats factors. Backward elimination: start from all terms; at each
step drop the term whose removal gives the lowest AIC, as long as that AIC is lower than the
current model's; stop otherwise. Ties are broken by term name so the result is deterministic.
A fit that does not converge (e.g. perfect separation) is never accepted: its AIC counts as
infinite, so elimination continues towards a model that converges.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from CervicalAILib.scoring.dlrc import finite_or_none

MAX_EFFECT_PER_SD = 30.0


@dataclass
class LogitFit:
    """A fitted logistic model: intercept + coefficients per design column."""

    columns: list[str]
    intercept: float
    coefficients: list[float]
    aic: float
    log_likelihood: float
    converged: bool
    standard_errors: list[float] = field(default_factory=list)
    p_values: list[float] = field(default_factory=list)

    def linear_predictor(self, design: np.ndarray) -> np.ndarray:
        design = np.asarray(design, dtype=float).reshape(-1, len(self.columns))
        return self.intercept + design @ np.asarray(self.coefficients, dtype=float)


def fit_logit(design: np.ndarray, y: np.ndarray, columns: Sequence[str], start: np.ndarray | None = None) -> LogitFit:
    """Maximum-likelihood logistic regression with an intercept (statsmodels Logit, Newton).

    `start`: optional starting values (intercept first); Newton converges to the same maximum,
    in fewer steps when started near it (stepwise passes the larger model's estimates).
    """
    import statsmodels.api as sm

    design = np.asarray(design, dtype=float).reshape(len(y), len(columns))
    y = np.asarray(y, dtype=float)
    exog = np.column_stack([np.ones(len(y)), design])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # separation/convergence warnings: judged by `converged` below
        try:
            result = sm.Logit(y, exog).fit(disp=0, method="newton", maxiter=100, start_params=start)
        except (np.linalg.LinAlgError, ValueError):  # singular Hessian (collinear design)
            return LogitFit(list(columns), float("nan"), [float("nan")] * len(columns), math.inf, -math.inf, False)
        params = np.asarray(result.params, dtype=float)
        converged = bool(result.mle_retvals.get("converged", False)) and bool(np.all(np.isfinite(params)))
        # a log-odds change of more than MAX_EFFECT_PER_SD per standard deviation of a predictor
        # means the likelihood has no maximum (separation), whatever the optimiser reports
        if converged and design.shape[1] and np.max(np.abs(params[1:]) * design.std(axis=0)) > MAX_EFFECT_PER_SD:
            converged = False
        try:
            bse = [float(v) for v in np.asarray(result.bse, dtype=float)[1:]]
            pvalues = [float(v) for v in np.asarray(result.pvalues, dtype=float)[1:]]
        except Exception:  # noqa: BLE001 - singular covariance: keep the fit, report no SEs
            bse, pvalues = [], []
    return LogitFit(
        columns=list(columns),
        intercept=float(params[0]),
        coefficients=[float(v) for v in params[1:]],
        aic=float(result.aic) if converged else math.inf,
        log_likelihood=float(result.llf),
        converged=converged,
        standard_errors=bse,
        p_values=pvalues,
    )


@dataclass
class StepwiseResult:
    terms: list[str]
    fit: LogitFit
    steps: list[dict]


def backward_stepwise_aic(
    design: np.ndarray,
    y: np.ndarray,
    columns: Sequence[str],
    terms: Mapping[str, Sequence[str]] | None = None,
) -> StepwiseResult:
    """Backward elimination by AIC over `terms` (term name -> its design column names).

    Without `terms`, every column is its own term. Returns the final terms (in input order),
    the final fit and a log of the steps (AIC before, term dropped, AIC after).
    """
    columns = list(columns)
    design = np.asarray(design, dtype=float).reshape(len(y), len(columns))
    if terms is None:
        terms = {c: [c] for c in columns}
    terms = {name: list(cols) for name, cols in terms.items()}
    index = {c: i for i, c in enumerate(columns)}

    def fit_terms(term_names: list[str], start_from: LogitFit | None = None) -> LogitFit:
        cols = [c for t in term_names for c in terms[t]]
        start = None
        if start_from is not None and start_from.converged:
            coef = dict(zip(start_from.columns, start_from.coefficients))
            start = np.array([start_from.intercept] + [coef[c] for c in cols])
        return fit_logit(design[:, [index[c] for c in cols]], y, cols, start)

    current = list(terms)
    current_fit = fit_terms(current)
    steps: list[dict] = []
    while current:
        candidates = []
        for term in sorted(current):
            reduced = [t for t in current if t != term]
            candidates.append((fit_terms(reduced, current_fit).aic, term, reduced))
        best_aic, best_term, best_reduced = min(candidates, key=lambda c: (c[0], c[1]))
        if not best_aic < current_fit.aic:
            break
        steps.append({"drop": best_term, "aic_before": finite_or_none(current_fit.aic), "aic_after": finite_or_none(best_aic)})
        current = best_reduced
        current_fit = fit_terms(current)
    return StepwiseResult(terms=current, fit=current_fit, steps=steps)
