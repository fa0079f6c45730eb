"""One feature family's score (Rad_score from radiomics, DL_score from a deep family).

The score is the linear predictor of a logistic model on standardised (harmonised) features:

    score = intercept + sum_i coef_i * (x_i - mean_i) / sd_i

`FamilyScore` is the fitted half of a scikit-learn estimator (attributes ending in `_`); `to_dict`
/ `from_dict` read and write one entry of model.json's "families" exactly. The chain that chooses
the features and fits the coefficients is research code (`research/fit/selection.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from CervicalAILib.scoring.dlrc import sigmoid


@dataclass
class FamilyScore:
    family_: str
    features_: list[str]
    mean_: np.ndarray
    sd_: np.ndarray  # standard deviation with ddof = 0, of the training cohort
    coef_: np.ndarray  # per standard deviation
    intercept_: float

    def decision_function(self, X: np.ndarray) -> np.ndarray | np.floating:
        """The score of one case (1-D values in `features_` order) or of each row of a cases x features matrix.

        The two shapes are kept apart (not one row reshaped to a matrix) because a vector dot and a
        matrix-vector product may round the last bit differently: the readout has always scored one
        patient with the former and the fit its training cohort with the latter.
        """
        z = (np.asarray(X, dtype=float) - self.mean_) / self.sd_
        return self.intercept_ + z @ self.coef_

    def predict_proba(self, X: np.ndarray) -> np.ndarray | float:
        """The family's own logistic model's probability of the positive outcome (the score is its log-odds)."""
        return sigmoid(self.decision_function(X))

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family_,
            "features": self.features_,
            "standardisation": {"mean": self.mean_.tolist(), "sd": self.sd_.tolist(), "ddof": 0},
            "coefficients": self.coef_.tolist(),
            "intercept": self.intercept_,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> FamilyScore:
        features = list(doc["features"])
        mean, sd = doc["standardisation"]["mean"], doc["standardisation"]["sd"]
        coef = doc["coefficients"]
        if not len(mean) == len(sd) == len(coef) == len(features):
            raise ValueError(f"family {doc.get('family')!r}: features, mean, sd and coefficients differ in length")
        return cls(family_=doc["family"], features_=features, mean_=np.asarray(mean, dtype=float),
                   sd_=np.asarray(sd, dtype=float), coef_=np.asarray(coef, dtype=float), intercept_=doc["intercept"])
