"""The DLRC model: a logistic model over the scores (Rad_score, DL_score) and clinical variables.

`DLRCModel` is the fitted half of a scikit-learn estimator (state in attributes ending in `_`,
`decision_function` / `predict_proba`, plain data in and out); `to_dict` / `from_dict` read and
write model.json's "dlrc" entry exactly. Fitting it (statsmodels, backward stepwise AIC) is
research code: `research/fit/dlrc.py`.

A term is one predictor as the reader enters it: a score, a continuous or binary clinical value
(one design column each), or a categorical clinical value (one dummy column per level but the
reference level, named `name=level`). Coefficients are in raw units.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


def sigmoid(lp: np.ndarray | float) -> np.ndarray | float:
    """Logistic function, numerically stable for large |lp|."""
    lp_arr = np.asarray(lp, dtype=float)
    out = np.where(lp_arr >= 0, 1.0 / (1.0 + np.exp(-np.abs(lp_arr))), np.exp(-np.abs(lp_arr)) / (1.0 + np.exp(-np.abs(lp_arr))))
    return float(out) if np.ndim(out) == 0 else out


def finite_or_none(value: float) -> float | None:
    """JSON has no infinity: a non-converged model's AIC is logged as null."""
    return float(value) if math.isfinite(value) else None


@dataclass
class DLRCModel:
    """model.json "dlrc": terms (as the bundle describes them), intercept, coefficient per design column."""

    terms_: list[dict[str, Any]]
    intercept_: float
    coef_: dict[str, float]

    def decision_function(self, term_values: Mapping[str, Any]) -> float:
        """The linear predictor (log-odds) for one patient's value of every term.

        A categorical value that is the reference level (or not a level: the caller checks) adds 0.
        """
        lp = self.intercept_
        for term in self.terms_:
            value = term_values[term["name"]]
            if term["kind"] == "categorical":
                lp += self.coef_.get(f"{term['name']}={value}", 0.0)
            else:
                lp += self.coef_[term["columns"][0]] * float(value)
        return float(lp)

    def predict_proba(self, term_values: Mapping[str, Any]) -> float:
        """The probability of the positive outcome for one patient."""
        return float(sigmoid(self.decision_function(term_values)))

    def to_dict(self) -> dict[str, Any]:
        return {"terms": self.terms_, "intercept": self.intercept_, "coefficients": self.coef_}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> DLRCModel:
        return cls(terms_=list(doc["terms"]), intercept_=doc["intercept"], coef_=dict(doc["coefficients"]))
