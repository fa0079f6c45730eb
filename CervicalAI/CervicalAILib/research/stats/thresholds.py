"""Cut-offs and the diagnostic metrics at a cut-off, with Wilson confidence intervals.

Seed 004 chooses the cut-off by the maximum Youden index (sensitivity + specificity - 1) on
the training cohort and carries that number unchanged to the validation cohorts. Candidate
cut-offs are pROC's: the midpoints between consecutive distinct training scores, so that
`youden_cutoff` returns what `pROC::coords(roc, "best", best.method="youden")` returns. When
several cut-offs reach the same maximum, the one with the higher sensitivity is kept (a
missed lymph-node metastasis costs more than a false alarm). The infinite end points
(everyone negative / everyone positive, Youden index 0) are never returned.

Threshold rule (as in pROC and `roc.py`): with direction 'higher' a patient is positive when
score >= cut-off; with 'lower' when score <= cut-off.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from CervicalAILib.core.errors import InputError
from CervicalAILib.research.stats.inputs import binary_outcome, finite_scores
from CervicalAILib.research.stats.roc import oriented, resolve_direction, roc_curve


@dataclass(frozen=True)
class YoudenCutoff:
    cutoff: float
    sensitivity: float
    specificity: float
    youden: float
    direction: str


def youden_cutoff(y, score, direction: str = "higher") -> YoudenCutoff:
    """The cut-off with the maximum Youden index on (y, score); ties -> higher sensitivity."""
    curve = roc_curve(y, score, direction)
    finite = np.isfinite(curve.thresholds)
    if not finite.any():  # a single distinct score value: everyone is called positive
        value = float(np.unique(np.asarray(score, dtype=float))[0])
        return YoudenCutoff(value, 1.0, 0.0, 0.0, curve.direction)
    index = np.flatnonzero(finite)
    youden = curve.sensitivity[index] + curve.specificity[index] - 1.0
    best = youden.max()
    # thresholds increase along the oriented curve, so the first tie has the higher sensitivity
    choice = index[np.flatnonzero(np.isclose(youden, best, rtol=0.0, atol=1e-12))[0]]
    return YoudenCutoff(float(curve.thresholds[choice]), float(curve.sensitivity[choice]),
                        float(curve.specificity[choice]), float(best), curve.direction)


def predict_positive(score, cutoff: float, direction: str = "higher") -> np.ndarray:
    """Boolean calls at `cutoff` (score >= cutoff for 'higher', score <= cutoff for 'lower')."""
    if direction not in ("higher", "lower"):
        raise InputError(f"direction must be 'higher' or 'lower' to apply a cut-off, got {direction!r}")
    if not np.isfinite(cutoff):
        raise InputError(f"cut-off must be a finite number, got {cutoff!r}")
    return oriented(np.asarray(score, dtype=float), direction) >= oriented(np.asarray(cutoff, dtype=float), direction)


def wilson_ci(successes: int, total: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion; (nan, nan) when `total` is 0."""
    if total < 0 or successes < 0 or successes > total:
        raise InputError(f"invalid proportion {successes}/{total}")
    if total == 0:
        return float("nan"), float("nan")
    z = stats.norm.ppf(0.5 + level / 2.0)
    p = successes / total
    z2n = z * z / total
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * np.sqrt(p * (1.0 - p) / total + z * z / (4.0 * total * total))
    return float(max(centre - half, 0.0)), float(min(centre + half, 1.0))


@dataclass(frozen=True)
class Proportion:
    successes: int
    total: int
    level: float = 0.95

    @property
    def value(self) -> float:
        return self.successes / self.total if self.total else float("nan")

    @property
    def ci(self) -> tuple[float, float]:
        return wilson_ci(self.successes, self.total, self.level)


METRIC_NAMES = ("accuracy", "sensitivity", "specificity", "ppv", "npv")


@dataclass(frozen=True)
class DiagnosticMetrics:
    """Confusion counts and accuracy / sensitivity / specificity / PPV / NPV (Wilson CIs)."""

    tp: int
    fp: int
    tn: int
    fn: int
    level: float = 0.95

    @property
    def accuracy(self) -> Proportion:
        return Proportion(self.tp + self.tn, self.tp + self.fp + self.tn + self.fn, self.level)

    @property
    def sensitivity(self) -> Proportion:
        return Proportion(self.tp, self.tp + self.fn, self.level)

    @property
    def specificity(self) -> Proportion:
        return Proportion(self.tn, self.tn + self.fp, self.level)

    @property
    def ppv(self) -> Proportion:
        return Proportion(self.tp, self.tp + self.fp, self.level)

    @property
    def npv(self) -> Proportion:
        return Proportion(self.tn, self.tn + self.fn, self.level)

    def as_dict(self) -> dict:
        """Plain JSON-ready numbers; an undefined proportion (0/0, e.g. PPV with no positive call) is None."""
        out: dict = {}
        for name in METRIC_NAMES:
            prop: Proportion = getattr(self, name)
            out[name] = None if prop.total == 0 else float(prop.value)
            out[f"{name}_ci"] = None if prop.total == 0 else [float(v) for v in prop.ci]
        out.update(tp=self.tp, fp=self.fp, tn=self.tn, fn=self.fn)
        return out


def diagnostic_metrics(y, predicted_positive, level: float = 0.95) -> DiagnosticMetrics:
    """Confusion counts of binary calls against the outcome (both 0/1 or boolean)."""
    y = binary_outcome(y, require_both=False)
    calls = binary_outcome(predicted_positive, name="prediction", require_both=False)
    if calls.size != y.size:
        raise InputError(f"prediction has {calls.size} values but the outcome has {y.size}")
    return DiagnosticMetrics(tp=int((calls & y).sum()), fp=int((calls & ~y).sum()),
                             tn=int((~calls & ~y).sum()), fn=int((~calls & y).sum()), level=level)


def metrics_at_cutoff(y, score, cutoff: float, direction: str = "higher", level: float = 0.95) -> DiagnosticMetrics:
    """Diagnostic metrics of `score` at a fixed `cutoff` (e.g. the training cohort's Youden cut-off)."""
    y = binary_outcome(y, require_both=False)
    score = finite_scores(score, length=y.size)
    if direction == "auto":
        direction = resolve_direction(y, score, direction)
    return diagnostic_metrics(y, predict_positive(score, cutoff, direction), level)
