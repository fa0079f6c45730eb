"""ComBat harmonisation of features across centres (scanners, protocols): the apply half.

Learning is research code (`research/fit/harmonise.py`, neuroHarmonize's `harmonizationLearn`,
SITE = centre, parametric empirical Bayes, on the training cohort only). What it learned is kept
as plain JSON (never a pickle), per feature:

    grand_mean            pooled mean the centres are harmonised to (neuroHarmonize `stand_mean`)
    var_pooled            pooled residual variance
    gamma / delta         per-centre location / scale adjustments (`gamma_star`, `delta_star`)
    covariates            regression coefficients of numeric covariates kept in the data (`B_hat`)

`ComBat` holds one family's parameters (a combat.json "families" entry) and applies them with our
own numpy code (`transform`), equal to neuroHarmonize's `harmonizationApply` to machine precision
for a known centre:

    s        = (x - grand_mean - sum_k c_k * beta_k) / sqrt(var_pooled)
    x_harmon = (s - gamma[centre]) / sqrt(delta[centre]) * sqrt(var_pooled) + grand_mean + sum_k c_k * beta_k

(covariate values are cast to float32 first, as neuroCombat's design matrix does). For a centre that
was not in training, neuroHarmonize returns NaN; we use the *pooled reference* instead - the
sample-size-weighted average of the training centres' adjustments, i.e. the patient is treated as
coming from an average training centre - and say so in a warning. `Harmonisation` is the whole
combat.json: whether ComBat was applied, why (not), the training centres and a `ComBat` per family.

With a single training centre there is no centre effect to estimate (neuroHarmonize would still
rescale the features through its empirical-Bayes variance prior), so fitting refuses and the
fitting code records "not applied".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from CervicalAILib.core.errors import InputError

COMBAT_SCHEMA = "cervicalai.combat/1"
MIN_CASES_PER_CENTER = 3

MODE_CENTER = "centre"
MODE_POOLED = "pooled"


UNKNOWN_CENTER_POLICY = "pooled reference: sample-size-weighted average of the training centres' gamma and delta"


@dataclass
class ComBat:
    """One feature family's ComBat parameters; arrays are centres x features or covariates x features."""

    feature_names_: list[str]
    centers_: list[str]
    covariates_: list[str]  # names of the numeric covariates kept in the data
    grand_mean_: np.ndarray
    var_pooled_: np.ndarray
    gamma_: np.ndarray
    delta_: np.ndarray
    pooled_gamma_: np.ndarray
    pooled_delta_: np.ndarray
    beta_: np.ndarray
    cases_per_center_: dict[str, int] | None = None
    method_: str | None = None
    learned_with_: str | None = None
    unknown_center_policy_: str | None = UNKNOWN_CENTER_POLICY
    schema_: str | None = COMBAT_SCHEMA

    def transform(self, X: np.ndarray, centers: Sequence[str | None],
                  covariates: Mapping[str, Sequence[float]] | None = None) -> tuple[np.ndarray, list[str]]:
        """Harmonise a matrix (cases x `feature_names_`).

        Returns (harmonised matrix, per-case mode): MODE_CENTER when the case's centre was in
        training, MODE_POOLED otherwise (centre unseen or None). NaN inputs stay NaN.
        """
        values = np.atleast_2d(np.asarray(X, dtype=float))
        n_cases = values.shape[0]
        if values.shape[1] != len(self.feature_names_) or len(centers) != n_cases:
            raise ValueError("values must be cases x features, matching centers and feature_names_")
        cov = np.zeros((n_cases, len(self.covariates_)))
        for k, name in enumerate(self.covariates_):
            if covariates is None or name not in covariates:
                raise InputError(f"ComBat was learned with covariate {name!r}; its value is needed to harmonise")
            # neuroCombat builds its design matrix in float32: do the same to agree to the last digit
            cov[:, k] = np.asarray(covariates[name], dtype=np.float32).astype(float)
        sd_pooled = np.sqrt(self.var_pooled_)
        mod_mean = cov @ self.beta_
        modes: list[str] = []
        gamma = np.empty_like(values)
        delta = np.empty_like(values)
        for i, center in enumerate(centers):
            key = None if center is None else str(center)
            if key in self.centers_:
                modes.append(MODE_CENTER)
                gamma[i] = self.gamma_[self.centers_.index(key)]
                delta[i] = self.delta_[self.centers_.index(key)]
            else:
                modes.append(MODE_POOLED)
                gamma[i] = self.pooled_gamma_
                delta[i] = self.pooled_delta_
        standardised = (values - self.grand_mean_ - mod_mean) / sd_pooled
        harmonised = (standardised - gamma) / np.sqrt(delta) * sd_pooled + self.grand_mean_ + mod_mean
        return harmonised, modes

    def subset(self, feature_names: Sequence[str]) -> ComBat:
        """The same parameters restricted to `feature_names`, in that order (what a bundle needs)."""
        missing = [f for f in feature_names if f not in self.feature_names_]
        if missing:
            raise KeyError(f"ComBat parameters lack features: {', '.join(missing[:5])}")
        cols = [self.feature_names_.index(f) for f in feature_names]
        return ComBat(
            feature_names_=list(feature_names), centers_=list(self.centers_), covariates_=list(self.covariates_),
            grand_mean_=self.grand_mean_[cols], var_pooled_=self.var_pooled_[cols], gamma_=self.gamma_[:, cols],
            delta_=self.delta_[:, cols], pooled_gamma_=self.pooled_gamma_[cols], pooled_delta_=self.pooled_delta_[cols],
            beta_=self.beta_[:, cols], cases_per_center_=self.cases_per_center_, method_=self.method_,
            learned_with_=self.learned_with_, unknown_center_policy_=self.unknown_center_policy_, schema_=self.schema_,
        )

    def to_dict(self) -> dict[str, Any]:
        """One combat.json "families" entry: the parameters per feature."""
        features = {
            name: {
                "grand_mean": float(self.grand_mean_[j]),
                "var_pooled": float(self.var_pooled_[j]),
                "gamma": {c: float(self.gamma_[i, j]) for i, c in enumerate(self.centers_)},
                "delta": {c: float(self.delta_[i, j]) for i, c in enumerate(self.centers_)},
                "pooled_gamma": float(self.pooled_gamma_[j]),
                "pooled_delta": float(self.pooled_delta_[j]),
                "covariates": {c: float(self.beta_[k, j]) for k, c in enumerate(self.covariates_)},
            }
            for j, name in enumerate(self.feature_names_)
        }
        return {
            "schema": self.schema_,
            "method": self.method_,
            "learned_with": self.learned_with_,
            "centers": self.centers_,
            "cases_per_center": self.cases_per_center_,
            "covariates": self.covariates_,
            "unknown_center_policy": self.unknown_center_policy_,
            "features": features,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ComBat:
        names = list(doc["features"])
        entries = [doc["features"][f] for f in names]
        centers = [str(c) for c in doc["centers"]]
        covariates = list(doc.get("covariates", []))

        def per_center(key: str) -> np.ndarray:
            return np.array([[entry[key][c] for entry in entries] for c in centers], dtype=float).reshape(len(centers), len(names))

        return cls(
            feature_names_=names,
            centers_=centers,
            covariates_=covariates,
            grand_mean_=np.array([entry["grand_mean"] for entry in entries], dtype=float),
            var_pooled_=np.array([entry["var_pooled"] for entry in entries], dtype=float),
            gamma_=per_center("gamma"),
            delta_=per_center("delta"),
            pooled_gamma_=np.array([entry["pooled_gamma"] for entry in entries], dtype=float),
            pooled_delta_=np.array([entry["pooled_delta"] for entry in entries], dtype=float),
            beta_=np.array([[entry["covariates"][c] for entry in entries] for c in covariates],
                           dtype=float).reshape(len(covariates), len(names)),
            cases_per_center_=doc.get("cases_per_center"),
            method_=doc.get("method"),
            learned_with_=doc.get("learned_with"),
            unknown_center_policy_=doc.get("unknown_center_policy"),
            schema_=doc.get("schema"),
        )


@dataclass
class Harmonisation:
    """combat.json: whether ComBat was applied (and why not), the training centres, a ComBat per family."""

    applied_: bool
    note_: str | None
    training_centers_: list[str]
    families_: dict[str, ComBat]

    def for_family(self, family: str) -> ComBat | None:
        """The family's ComBat when the model harmonises it, else None."""
        return self.families_.get(family) if self.applied_ else None

    def to_dict(self) -> dict[str, Any]:
        return {"applied": self.applied_, "note": self.note_, "training_centers": self.training_centers_,
                "families": {family: combat.to_dict() for family, combat in self.families_.items()}}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Harmonisation:
        return cls(applied_=bool(doc.get("applied", False)), note_=doc.get("note"),
                   training_centers_=list(doc.get("training_centers", [])),
                   families_={family: ComBat.from_dict(entry) for family, entry in (doc.get("families") or {}).items()})
