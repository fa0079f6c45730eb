"""Clinical variables: their kinds, seed 004's univariate tests and their coding in the DLRC model.

Kinds (decided on the training data): `binary` (values 0/1, also yes/no, true/false),
`categorical` (text; dummy-coded against the most frequent training level, ties by name),
`continuous` (numeric with more than two distinct values; entered on its own scale).

Univariate tests (seed 004, "Statistical analysis"), each on the training cases with a value:
- binary / categorical: Pearson chi-square test of the level x outcome table without continuity
  correction; Fisher's exact test when any expected count is < 5 (2 x 2: scipy's exact test;
  larger tables: the Fisher-Freeman-Halton statistic by Monte Carlo, 100 000 tables, fixed seed,
  so the p-value is reproducible).
- continuous: Welch's t-test when both groups pass Shapiro-Wilk (p > 0.05), else Mann-Whitney U.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from CervicalAILib.contracts.clinical import KNOWN_CLINICAL, is_missing, yes_no

# Seed 004's clinical candidates (those present in the table are tested); FIGO stage is among them
# but excluded by default, as seed 004 did ("inferior accuracy compared to pathological staging").
DEFAULT_CLINICAL = ("age", "parity", "menopause", "age_at_menopause", "family_history", "figo_stage",
                    "c_lnm", "histology", "scc_ag")
DEFAULT_EXCLUDED = ("figo_stage",)
# Variables that define an endpoint: using them to predict it would be circular.
DEFINES_ENDPOINT = {"stage_group": ("figo_stage", "stage_group", "stage_group_crt"), "lnm": ("lnm",)}

FISHER_RESAMPLES = 100_000
FISHER_SEED = 20261122


def to_binary(value: Any) -> float:
    """0/1 (as float) of a training value (contracts.clinical's yes/no parsing); NaN when not given;
    ValueError otherwise."""
    return np.nan if is_missing(value) else float(yes_no(value))


@dataclass
class ClinicalVariable:
    """A clinical variable as the model codes it."""

    name: str
    kind: str  # binary | categorical | continuous
    levels: list[str] | None = None  # categorical: all training levels
    reference: str | None = None  # categorical: the level coded as all-zero dummies

    @property
    def columns(self) -> list[str]:
        """Design columns of this variable."""
        if self.kind == "categorical":
            return [f"{self.name}={level}" for level in self.levels or [] if level != self.reference]
        return [self.name]

    def encode(self, values: Sequence[Any]) -> np.ndarray:
        """Design matrix rows (NaN where the value is missing or unusable)."""
        values = list(values)
        if self.kind == "binary":
            return np.array([[to_binary(v)] for v in values], dtype=float).reshape(len(values), 1)
        if self.kind == "continuous":
            out = np.full((len(values), 1), np.nan)
            for i, v in enumerate(values):
                try:
                    out[i, 0] = float(v)
                except (TypeError, ValueError):
                    pass
            return out
        levels = [lv for lv in self.levels or [] if lv != self.reference]
        out = np.zeros((len(values), len(levels)))
        for i, v in enumerate(values):
            text = _level(v)
            if text is None or text not in (self.levels or []):
                out[i] = np.nan
            else:
                out[i] = [1.0 if text == lv else 0.0 for lv in levels]
        return out

    def as_dict(self) -> dict[str, Any]:
        info = KNOWN_CLINICAL.get(self.name, {})
        out: dict[str, Any] = {"name": self.name, "label": info.get("label", self.name), "type": self.kind,
                               "unit": info.get("unit")}
        if self.kind == "categorical":
            out["levels"] = self.levels
            out["reference"] = self.reference
        elif "valid_range" in info:
            out["valid_range"] = info["valid_range"]
        if "description" in info:
            out["description"] = info["description"]
        return out


def _level(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def infer_variable(name: str, values: Sequence[Any]) -> ClinicalVariable:
    """Decide a variable's kind from its (training) values."""
    import pandas as pd

    series = pd.Series(list(values), dtype=object)
    present = series[series.map(lambda v: _level(v) is not None)]
    try:
        binary = present.map(to_binary)
        if len(present) and set(binary.unique()) <= {0.0, 1.0}:
            return ClinicalVariable(name, "binary")
    except ValueError:
        pass
    numeric = pd.to_numeric(present, errors="coerce")
    if len(present) and numeric.notna().all():
        return ClinicalVariable(name, "continuous")
    levels_count = present.map(_level).value_counts()
    levels = sorted(levels_count.index)
    reference = sorted(levels, key=lambda lv: (-levels_count[lv], lv))[0] if levels else None
    return ClinicalVariable(name, "categorical", levels=levels, reference=reference)


@dataclass
class UnivariateResult:
    name: str
    kind: str
    test: str
    p: float
    n: int
    missing: int
    detail: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.kind, "test": self.test, "p": self.p, "n": self.n,
                "missing": self.missing} | self.detail


def univariate_test(variable: ClinicalVariable, values: Sequence[Any], y: np.ndarray) -> UnivariateResult:
    """Seed 004's univariate comparison of one clinical variable between outcome groups."""
    y = np.asarray(y, dtype=int)
    values = list(values)
    if variable.kind == "continuous":
        x = variable.encode(values)[:, 0]
        ok = np.isfinite(x)
        a, b = x[ok & (y == 1)], x[ok & (y == 0)]
        if len(a) < 3 or len(b) < 3:
            return UnivariateResult(variable.name, variable.kind, "none (too few values)", 1.0, int(ok.sum()),
                                    int((~ok).sum()), {})
        normal = bool(stats.shapiro(a).pvalue > 0.05 and stats.shapiro(b).pvalue > 0.05)
        if normal:
            test, p = "Welch t-test", float(stats.ttest_ind(a, b, equal_var=False).pvalue)
        else:
            test, p = "Mann-Whitney U", float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)
        detail = {"median_positive": float(np.median(a)), "median_negative": float(np.median(b))}
        return UnivariateResult(variable.name, variable.kind, test, p, int(ok.sum()), int((~ok).sum()), detail)

    if variable.kind == "binary":
        codes = variable.encode(values)[:, 0]
        ok = np.isfinite(codes)
        labels = codes[ok].astype(int).astype(str)
    else:
        raw = [_level(v) for v in values]
        ok = np.array([r is not None for r in raw])
        labels = np.array([r for r in raw if r is not None], dtype=object)
    yy = y[ok]
    levels = sorted(set(labels.tolist()))
    table = np.array([[np.sum((labels == lv) & (yy == 0)), np.sum((labels == lv) & (yy == 1))] for lv in levels])
    detail = {"table": {lv: {"negative": int(r[0]), "positive": int(r[1])} for lv, r in zip(levels, table)}}
    if len(levels) < 2:
        return UnivariateResult(variable.name, variable.kind, "none (one level)", 1.0, int(ok.sum()), int((~ok).sum()), detail)
    expected = stats.contingency.expected_freq(table)
    if np.any(expected < 5):
        if table.shape == (2, 2):
            test, p = "Fisher exact", float(stats.fisher_exact(table).pvalue)
        else:
            method = stats.MonteCarloMethod(n_resamples=FISHER_RESAMPLES, rng=np.random.default_rng(FISHER_SEED))
            test = f"Fisher-Freeman-Halton (Monte Carlo, {FISHER_RESAMPLES} tables)"
            p = float(stats.fisher_exact(table, method=method).pvalue)
    else:
        test, p = "Pearson chi-square", float(stats.chi2_contingency(table, correction=False).pvalue)
    return UnivariateResult(variable.name, variable.kind, test, p, int(ok.sum()), int((~ok).sum()), detail)
