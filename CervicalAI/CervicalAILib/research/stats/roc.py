"""ROC curves, AUC and DeLong's variance, confidence interval and tests.

DeLong's method is implemented with the fast midrank algorithm of Sun & Xu (2014, IEEE
Signal Processing Letters 21:1389): the structural components ("placements") of every case
and control come from three rankings, so the cost is O(n log n) instead of DeLong's O(m*n).
The numbers agree with R's pROC (`auc`, `ci.auc(method="delong")`, `roc.test(method="delong")`,
paired and unpaired) to machine precision; the tests check this on pROC's aSAH data.

Direction. pROC guesses the direction of each score from the medians of cases and controls
(`direction="auto"`). Here the default is explicit: `direction="higher"` means a higher score
means "more likely a case" (pROC's "<"), which is true for every probability, Rad_score,
DL_score and nomogram total in this project, so an AUC below 0.5 is reported as it is and
not silently flipped. `"lower"` is pROC's ">", and `"auto"` applies pROC's rule (cases'
median >= controls' median -> "higher"). The threshold rule follows pROC: with "higher" a
patient is called positive when score >= threshold, with "lower" when score <= threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from CervicalAILib.core.errors import InputError
from CervicalAILib.research.stats.inputs import binary_outcome, finite_scores

DIRECTIONS = ("higher", "lower", "auto")
_ALIASES = {"<": "higher", ">": "lower", "higher": "higher", "lower": "lower", "auto": "auto"}


def normalise_direction(direction: str) -> str:
    """'higher' | 'lower' | 'auto' (pROC's '<' and '>' are accepted as aliases)."""
    try:
        return _ALIASES[str(direction).strip().lower()]
    except KeyError:
        raise InputError(f"direction must be one of higher, lower, auto (or pROC's < and >); got {direction!r}") from None


def resolve_direction(y, score, direction: str = "higher") -> str:
    """The concrete direction ('higher' or 'lower') for `score`; 'auto' uses pROC's median rule."""
    direction = normalise_direction(direction)
    if direction != "auto":
        return direction
    y = binary_outcome(y)
    score = finite_scores(score, length=y.size)
    return "higher" if np.median(score[~y]) <= np.median(score[y]) else "lower"


def oriented(score: np.ndarray, direction: str) -> np.ndarray:
    """The score turned so that higher always means 'more likely a case'."""
    return score if direction == "higher" else -score


@dataclass(frozen=True)
class RocCurve:
    """An empirical ROC curve with pROC's thresholds.

    `thresholds` are -inf, the midpoints between consecutive distinct score values, and +inf
    (on the score's own scale; with direction 'lower' they decrease). At each threshold
    `sensitivity` and `specificity` follow the module's threshold rule.
    """

    thresholds: np.ndarray
    sensitivity: np.ndarray
    specificity: np.ndarray
    auc: float
    direction: str
    n_cases: int
    n_controls: int

    @property
    def false_positive_rate(self) -> np.ndarray:
        return 1.0 - self.specificity


def _prepare(y, score, direction: str, name: str = "score") -> tuple[np.ndarray, np.ndarray, str]:
    y = binary_outcome(y)
    score = finite_scores(score, name=name, length=y.size)
    direction = resolve_direction(y, score, direction)
    return y, score, direction


def roc_curve(y, score, direction: str = "higher") -> RocCurve:
    """Empirical ROC curve of `score` for the binary outcome `y` (1/True = case)."""
    y, score, direction = _prepare(y, score, direction)
    s = oriented(score, direction)
    distinct = np.unique(s)
    cuts = np.concatenate(([-np.inf], (distinct[:-1] + distinct[1:]) / 2.0, [np.inf]))
    cases = np.sort(s[y])
    controls = np.sort(s[~y])
    # positive when oriented score >= cut: count of cases at or above, controls below
    sensitivity = (cases.size - np.searchsorted(cases, cuts, side="left")) / cases.size
    specificity = np.searchsorted(controls, cuts, side="left") / controls.size
    thresholds = cuts if direction == "higher" else -cuts
    return RocCurve(thresholds, sensitivity, specificity, auc(y, score, direction), direction,
                    int(cases.size), int(controls.size))


def _placements(y: np.ndarray, oriented_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sun & Xu midrank placements for K oriented scores (K x N).

    Returns (auc[K], v10[K, m], v01[K, n]): v10 is, for each case, the fraction of controls
    scored below it (ties count one half); v01 is, for each control, the fraction of cases
    scored above it. AUC = mean(v10) = mean(v01).
    """
    m, n = int(y.sum()), int((~y).sum())
    ranks_all = stats.rankdata(oriented_scores, method="average", axis=1)
    ranks_cases = stats.rankdata(oriented_scores[:, y], method="average", axis=1)
    ranks_controls = stats.rankdata(oriented_scores[:, ~y], method="average", axis=1)
    v10 = (ranks_all[:, y] - ranks_cases) / n
    v01 = 1.0 - (ranks_all[:, ~y] - ranks_controls) / m
    # AUC from the rank sum (Mann-Whitney), the same number pROC's trapezoidal AUC gives
    aucs = (ranks_all[:, y].sum(axis=1) - m * (m + 1) / 2.0) / (m * n)
    return aucs, v10, v01


def delong_covariance(y, scores, directions=None) -> tuple[np.ndarray, np.ndarray]:
    """AUCs and DeLong's covariance matrix for several scores measured on the same patients.

    `scores` is a sequence of K score arrays (or a K x N array); `directions` one per score
    (default 'higher'). Returns (auc[K], cov[K, K]); cov is NaN when there is a single case
    or a single control (the variance is undefined, as in pROC).
    """
    y = binary_outcome(y)
    arrays = [finite_scores(s, name=f"score {i + 1}", length=y.size) for i, s in enumerate(scores)]
    if directions is None:
        directions = ["higher"] * len(arrays)
    directions = [resolve_direction(y, s, d) for s, d in zip(arrays, directions, strict=True)]
    matrix = np.vstack([oriented(s, d) for s, d in zip(arrays, directions, strict=True)])
    aucs, v10, v01 = _placements(y, matrix)
    m, n = v10.shape[1], v01.shape[1]
    if m < 2 or n < 2:
        return aucs, np.full((len(arrays), len(arrays)), np.nan)
    cov = np.atleast_2d(np.cov(v10, ddof=1)) / m + np.atleast_2d(np.cov(v01, ddof=1)) / n
    return aucs, cov


def auc(y, score, direction: str = "higher") -> float:
    """Area under the empirical ROC curve (Mann-Whitney statistic, ties count one half)."""
    y, score, direction = _prepare(y, score, direction)
    aucs, _, _ = _placements(y, oriented(score, direction)[None, :])
    return float(aucs[0])


@dataclass(frozen=True)
class AucResult:
    auc: float
    variance: float  # DeLong
    ci: tuple[float, float]  # normal interval on the AUC scale, clipped to [0, 1] as in pROC
    level: float
    direction: str
    n_cases: int
    n_controls: int

    @property
    def standard_error(self) -> float:
        return float(np.sqrt(self.variance))


def auc_ci(y, score, direction: str = "higher", level: float = 0.95) -> AucResult:
    """AUC with DeLong's variance and confidence interval (pROC `ci.auc`, method "delong")."""
    _check_level(level)
    y, score, direction = _prepare(y, score, direction)
    aucs, cov = delong_covariance(y, [score], [direction])
    value, variance = float(aucs[0]), float(cov[0, 0])
    if np.isnan(variance):
        ci = (float("nan"), float("nan"))
    else:
        half = stats.norm.ppf(0.5 + level / 2.0) * np.sqrt(variance)
        ci = (float(min(max(value - half, 0.0), 1.0)), float(min(max(value + half, 0.0), 1.0)))
    return AucResult(value, variance, ci, level, direction, int(y.sum()), int((~y).sum()))


@dataclass(frozen=True)
class DelongTest:
    """DeLong's test of AUC_a = AUC_b.

    Paired (same patients): Z statistic, normal p-value, CI of the difference d +- z*sd
    (pROC `roc.test(paired=TRUE)`). Unpaired (independent samples): pROC's statistic
    D = d / sqrt(V_a + V_b) referred to a t distribution with Welch-Satterthwaite degrees of
    freedom `df` (pROC `roc.test(paired=FALSE)`); the CI of the difference uses the same t
    quantile, so it excludes 0 exactly when p < 1 - level.
    """

    auc_a: float
    auc_b: float
    difference: float
    statistic: float
    p: float
    ci: tuple[float, float]
    paired: bool
    df: float | None = None
    level: float = 0.95

    @property
    def method(self) -> str:
        return "DeLong paired (correlated ROC curves)" if self.paired else "DeLong unpaired (independent ROC curves)"


def delong_paired_test(y, score_a, score_b, direction_a: str = "higher", direction_b: str = "higher",
                       level: float = 0.95) -> DelongTest:
    """DeLong's test for two correlated ROC curves (two scores on the same patients)."""
    _check_level(level)
    y = binary_outcome(y)
    a = finite_scores(score_a, name="a", length=y.size)
    b = finite_scores(score_b, name="b", length=y.size)
    aucs, cov = delong_covariance(y, [a, b], [direction_a, direction_b])
    d = float(aucs[0] - aucs[1])
    variance = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    sd = float(np.sqrt(max(variance, 0.0))) if np.isfinite(variance) else float("nan")
    if sd == 0.0 and d == 0.0:
        z, p = 0.0, 1.0  # identical curves: pROC's special case
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            z = d / sd if sd > 0 else float("nan")
        p = float(2.0 * stats.norm.sf(abs(z))) if np.isfinite(z) else float("nan")
    crit = stats.norm.ppf(0.5 + level / 2.0)
    ci = (float(d - crit * sd), float(d + crit * sd))
    return DelongTest(float(aucs[0]), float(aucs[1]), d, float(z), p, ci, True, None, level)


def delong_unpaired_test(y_a, score_a, y_b, score_b, direction_a: str = "higher", direction_b: str = "higher",
                         level: float = 0.95) -> DelongTest:
    """DeLong's test for two independent ROC curves (e.g. one score in two cohorts)."""
    _check_level(level)
    first = auc_ci(y_a, score_a, direction_a, level)
    second = auc_ci(y_b, score_b, direction_b, level)
    va, vb = first.variance, second.variance
    d = first.auc - second.auc
    total = va + vb
    n_a = first.n_cases + first.n_controls
    n_b = second.n_cases + second.n_controls
    if not np.isfinite(total):
        return DelongTest(first.auc, second.auc, d, float("nan"), float("nan"), (float("nan"), float("nan")),
                          False, float("nan"), level)
    if total == 0.0:
        z = 0.0 if d == 0.0 else float("nan")
        p = 1.0 if d == 0.0 else float("nan")
        return DelongTest(first.auc, second.auc, d, z, p, (d, d), False, float("nan"), level)
    df = total**2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))
    statistic = d / np.sqrt(total)
    p = float(2.0 * stats.t.sf(abs(statistic), df))
    half = stats.t.ppf(0.5 + level / 2.0, df) * np.sqrt(total)
    return DelongTest(first.auc, second.auc, d, float(statistic), p, (float(d - half), float(d + half)), False, float(df),
                      level)


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise InputError(f"confidence level must be between 0 and 1, got {level!r}")
