"""Fitting the DLRC model: backward stepwise logistic regression by AIC over the scores and the
retained clinical variables, on the training cohort; the result is the serving `DLRCModel`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from CervicalAILib.core.errors import InputError
from CervicalAILib.research.fit.logistic import backward_stepwise_aic
from CervicalAILib.scoring.dlrc import DLRCModel, finite_or_none


@dataclass
class DLRCFit:
    """The fitted model, its log (selection.json "dlrc") and what the cut-offs, ranges and nomogram need."""

    model: DLRCModel
    log: dict[str, Any]
    complete: np.ndarray  # training cases with every candidate term (the ones it was fitted on)
    linear_predictor: np.ndarray  # of those cases
    term_data: dict[str, np.ndarray]  # kept term -> its design columns over those cases
    warnings: list[str] = field(default_factory=list)


def fit_dlrc(design: np.ndarray, y: np.ndarray, term_columns: Mapping[str, Sequence[str]],
             term_specs: Mapping[str, dict[str, Any]], case_ids: Sequence[str], endpoint: str,
             source: Path | None = None) -> DLRCFit:
    """Fit on the training design (cases x the columns of `term_columns`, in that order).

    Cases lacking a value (a retained clinical variable) are left out and named in the log. Raises
    InputError when the stepwise selection keeps no term (`source`: the feature table, for the message).
    """
    columns = [c for cols in term_columns.values() for c in cols]
    complete = np.all(np.isfinite(design), axis=1)
    log: dict[str, Any] = {"candidates": list(term_columns)}
    warnings: list[str] = []
    if not complete.all():
        missing_ids = list(np.asarray(case_ids)[~complete])
        log["excluded_missing_clinical"] = missing_ids
        warnings.append(f"DLRC fitted on {int(complete.sum())} of {len(complete)} training cases: "
                        f"{len(missing_ids)} lack a retained clinical value")
    step = backward_stepwise_aic(design[complete], y[complete], columns, term_columns)
    log["stepwise"] = {"criterion": "AIC", "direction": "backward", "steps": step.steps, "kept": step.terms,
                       "aic": finite_or_none(step.fit.aic), "converged": step.fit.converged,
                       "standard_errors": step.fit.standard_errors, "p_values": step.fit.p_values}
    if step.terms and not step.fit.converged:
        warnings.append(f"the DLRC model did not converge (the training classes are separated by "
                        f"{', '.join(step.terms)}): its probabilities are close to 0 or 1 and overconfident")
    if not step.terms:
        raise InputError(f"the DLRC stepwise selection kept no predictor (candidates: {', '.join(term_columns)}): "
                         f"no usable signal for {endpoint!r}", source)
    model = DLRCModel(terms_=[term_specs[t] for t in step.terms], intercept_=step.fit.intercept,
                      coef_=dict(zip(step.fit.columns, step.fit.coefficients)))
    fitted_rows = design[complete]
    return DLRCFit(
        model=model,
        log=log,
        complete=complete,
        linear_predictor=step.fit.linear_predictor(fitted_rows[:, [columns.index(c) for c in step.fit.columns]]),
        term_data={t: fitted_rows[:, [columns.index(c) for c in term_columns[t]]] for t in step.terms},
        warnings=warnings,
    )
