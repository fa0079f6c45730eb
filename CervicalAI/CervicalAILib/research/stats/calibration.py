"""Hosmer-Lemeshow goodness of fit and the calibration curve of predicted probabilities.

`hosmer_lemeshow` reproduces R's `ResourceSelection::hoslem.test(y, p, g)` (version 0.3-6,
the current CRAN release) step by step, so that its numbers are R's:

1. breaks = unique(quantile(p, probs = seq(0, 1, 1/g))) with R's default type-7 quantile,
   computed with R's own floating-point formula (`r_quantile_type7`);
2. groups = cut(p, breaks, include.lowest = TRUE): right-closed intervals (a, b], the first
   one closed [a, b];
3. statistic = sum over groups and both outcome classes of (observed - expected)^2 / expected,
   where expected events = sum(p) and expected non-events = sum(1 - p) in the group;
4. df = G - 2 with G the number of groups that hold at least one patient (fewer than g when
   tied predictions make quantiles coincide); p = upper tail of chi-square(df).

One deliberate difference: when an interval between two distinct breaks holds no patient
(possible with heavily tied predictions), R adds its 0/0 term and returns NaN; here that
empty interval is left out, which gives R's value whenever R gives a number (likewise a
group whose predictions are all exactly 0 or 1 and whose outcomes agree adds 0, not 0/0).
R stops when
fewer than 2 groups remain; this function refuses fewer than 3 (df = 0 has no p-value).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from CervicalAILib.core.errors import InputError
from CervicalAILib.research.stats.inputs import binary_outcome, finite_scores
from CervicalAILib.research.stats.thresholds import wilson_ci


def r_seq_by(start: float, stop: float, by: float) -> np.ndarray:
    """R's `seq(start, stop, by)` for by > 0, with its floating-point behaviour."""
    n = int((stop - start) / by + 1e-10)
    values = start + np.arange(n + 1, dtype=float) * by
    return np.minimum(values, stop)


def r_quantile_type7(x, probs) -> np.ndarray:
    """R's `quantile(x, probs, type = 7)` reproduced bit for bit.

    R computes index = 1 + (n - 1) * p, lo = floor(index), and (1 - h) * x[lo] + h * x[hi]
    with h = index - lo only where index > lo and x[hi] != x[lo]. numpy's 'linear' method is
    the same definition but a different floating-point formula, which can move a break by one
    ulp and, with it, a patient into the neighbouring Hosmer-Lemeshow group.
    """
    x = np.sort(np.asarray(x, dtype=float))
    probs = np.clip(np.asarray(probs, dtype=float), 0.0, 1.0)
    n = x.size
    if n == 0:
        raise InputError("quantile of an empty vector")
    index = 1.0 + max(n - 1, 0) * probs
    lo = np.floor(index).astype(int)
    hi = np.ceil(index).astype(int)
    q = x[lo - 1].copy()
    upper = x[hi - 1]
    interpolate = (index > lo) & (upper != q)
    h = (index - lo)[interpolate]
    q[interpolate] = (1.0 - h) * q[interpolate] + h * upper[interpolate]
    return q


@dataclass(frozen=True)
class CalibrationGroup:
    lower: float  # interval (lower, upper]; the first is closed on the left
    upper: float
    n: int
    observed_events: int
    expected_events: float  # sum of p
    expected_nonevents: float  # sum of 1 - p (summed as R does, not n - sum(p))
    mean_predicted: float

    @property
    def observed_rate(self) -> float:
        return self.observed_events / self.n


@dataclass(frozen=True)
class HosmerLemeshowResult:
    statistic: float
    df: int
    p: float
    groups_requested: int
    groups: tuple[CalibrationGroup, ...]

    def as_dict(self) -> dict:
        return {"statistic": float(self.statistic), "df": int(self.df), "p": float(self.p),
                "groups": len(self.groups), "groups_requested": self.groups_requested}


def _check_probabilities(y, probability) -> tuple[np.ndarray, np.ndarray]:
    y = binary_outcome(y, require_both=False)
    probability = finite_scores(probability, name="probability", length=y.size)
    if probability.min() < 0.0 or probability.max() > 1.0:
        raise InputError("predicted probabilities must lie in [0, 1]; found values from "
                         f"{probability.min():.6g} to {probability.max():.6g}")
    return y, probability


def quantile_groups(probability: np.ndarray, groups: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(breaks, group index per patient) as R's `cut(p, unique(quantile(p, seq(0,1,1/g))), include.lowest=TRUE)`."""
    if int(groups) != groups or groups < 2:
        raise InputError(f"number of groups must be an integer >= 2, got {groups!r}")
    breaks = np.unique(r_quantile_type7(probability, r_seq_by(0.0, 1.0, 1.0 / groups)))
    if breaks.size < 2:
        raise InputError("all predicted probabilities are identical: no groups can be formed")
    # right-closed intervals: patient in (b[i-1], b[i]] -> group i-1; the lowest break joins group 0
    index = np.searchsorted(breaks, probability, side="left") - 1
    index[index < 0] = 0
    return breaks, index


def _groups(y: np.ndarray, probability: np.ndarray, groups: int) -> list[CalibrationGroup]:
    breaks, index = quantile_groups(probability, groups)
    out = []
    for g in range(breaks.size - 1):
        member = index == g
        n = int(member.sum())
        if n == 0:
            continue
        out.append(CalibrationGroup(float(breaks[g]), float(breaks[g + 1]), n, int(y[member].sum()),
                                    float(probability[member].sum()), float((1.0 - probability[member]).sum()),
                                    float(probability[member].mean())))
    return out


def hosmer_lemeshow(y, probability, groups: int = 10) -> HosmerLemeshowResult:
    """Hosmer-Lemeshow test of predicted probabilities against the outcome (see module docstring)."""
    y, probability = _check_probabilities(y, probability)
    table = _groups(y, probability, groups)
    if len(table) < 3:
        raise InputError(f"Hosmer-Lemeshow needs at least 3 groups of distinct predicted probabilities; "
                         f"the predictions form only {len(table)}")
    statistic = 0.0
    for group in table:
        expected = np.array([group.expected_nonevents, group.expected_events])
        observed = np.array([group.n - group.observed_events, group.observed_events])
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = (observed - expected) ** 2 / expected
        # expected 0 with observed 0 (all predictions exactly 0 or 1 in a group) adds nothing;
        # expected 0 with observed > 0 is an infinitely bad fit, as in R
        terms[(expected == 0) & (observed == 0)] = 0.0
        statistic += float(terms.sum())
    df = len(table) - 2
    return HosmerLemeshowResult(statistic, df, float(stats.chi2.sf(statistic, df)), int(groups), tuple(table))


@dataclass(frozen=True)
class CalibrationPoint:
    mean_predicted: float
    observed_rate: float
    n: int
    ci: tuple[float, float]  # Wilson interval of the observed rate


def calibration_curve(y, probability, groups: int = 10, level: float = 0.95) -> list[CalibrationPoint]:
    """Observed event rate against mean predicted probability in the Hosmer-Lemeshow groups."""
    y, probability = _check_probabilities(y, probability)
    return [CalibrationPoint(g.mean_predicted, g.observed_rate, g.n, wilson_ci(g.observed_events, g.n, level))
            for g in _groups(y, probability, groups)]
