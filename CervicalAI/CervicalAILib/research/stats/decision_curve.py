"""Decision curve analysis: net benefit of a model, of treating all and of treating none.

Net benefit at threshold probability t (Vickers & Elkin 2006):
    NB(t) = TP/n - FP/n * t / (1 - t)
where a patient counts as positive when the predicted risk >= t. As in the dcurves package
(MSKCC, the reference the tests compare with), a predicted risk of exactly 0 is never
positive, even at t = 0. "Treat all" calls everyone positive:
NB = prevalence - (1 - prevalence) * t / (1 - t); "treat none" has NB = 0.
"""

from __future__ import annotations

import numpy as np

from CervicalAILib.core.errors import InputError
from CervicalAILib.research.stats.inputs import binary_outcome, finite_scores

DEFAULT_THRESHOLDS = "0:0.99:0.01"


def parse_threshold_range(text: str) -> np.ndarray:
    """'START:STOP:STEP' -> thresholds START, START+STEP, ..., STOP (inclusive), each in [0, 1)."""
    parts = str(text).split(":")
    if len(parts) != 3:
        raise InputError(f"threshold range must be START:STOP:STEP (e.g. 0:0.99:0.01), got {text!r}")
    try:
        start, stop, step = (float(p) for p in parts)
    except ValueError:
        raise InputError(f"threshold range must hold three numbers START:STOP:STEP, got {text!r}") from None
    if not (np.isfinite(start) and np.isfinite(stop) and np.isfinite(step)) or step <= 0:
        raise InputError(f"threshold range {text!r}: STEP must be a positive number")
    if stop < start:
        raise InputError(f"threshold range {text!r}: STOP is below START")
    if start < 0 or stop >= 1:
        raise InputError(f"threshold range {text!r}: thresholds must lie in [0, 1) (net benefit is undefined at 1)")
    count = int(np.floor((stop - start) / step + 1e-9)) + 1
    # rounding removes accumulated float error (0.1 + 0.2 -> 0.3) so thresholds print as typed
    return np.round(start + step * np.arange(count), 12)


def check_thresholds(thresholds) -> np.ndarray:
    values = np.asarray(thresholds, dtype=float).ravel()
    if values.size == 0:
        raise InputError("no decision-curve thresholds given")
    if not np.isfinite(values).all() or values.min() < 0 or values.max() >= 1:
        raise InputError("decision-curve thresholds must lie in [0, 1)")
    return values


def net_benefit(y, probability, thresholds) -> np.ndarray:
    """Net benefit of treating patients whose predicted risk >= each threshold."""
    y = binary_outcome(y, require_both=False)
    probability = finite_scores(probability, name="probability", length=y.size)
    if probability.min() < 0 or probability.max() > 1:
        raise InputError("decision curves need predicted probabilities in [0, 1]")
    t = check_thresholds(thresholds)
    n = y.size
    positive = (probability[None, :] >= t[:, None]) & (probability[None, :] > 0.0)
    tp = (positive & y[None, :]).sum(axis=1)
    fp = (positive & ~y[None, :]).sum(axis=1)
    return tp / n - fp / n * (t / (1.0 - t))


def treat_all_net_benefit(y, thresholds) -> np.ndarray:
    y = binary_outcome(y, require_both=False)
    t = check_thresholds(thresholds)
    prevalence = y.mean()
    return prevalence - (1.0 - prevalence) * (t / (1.0 - t))


def decision_curves(y, probabilities: dict, thresholds) -> list[dict]:
    """Long-format rows {threshold, model, net_benefit} for each model, then 'all' and 'none'.

    `probabilities` maps a model name to its predicted risks. The rows are what
    `decision_curve.csv` holds and what `figures.decision_curve_figure` draws.
    """
    t = check_thresholds(thresholds)
    rows: list[dict] = []
    curves = {name: net_benefit(y, p, t) for name, p in probabilities.items()}
    if "all" in curves or "none" in curves:
        raise InputError("'all' and 'none' are reserved decision-curve names; rename that score")
    curves["all"] = treat_all_net_benefit(y, t)
    curves["none"] = np.zeros_like(t)
    for name, values in curves.items():
        rows.extend({"threshold": float(th), "model": name, "net_benefit": float(v)} for th, v in zip(t, values))
    return rows
