"""Figures of seed 004 (Figs. 4-6) as PNG: ROC curves, calibration curves, decision curves.

One figure per cohort, drawn with matplotlib's object API on the Agg canvas (no pyplot
state, no display needed, safe inside Slicer's background process) and written atomically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from CervicalAILib.core.atomic import atomic_path
from CervicalAILib.core.errors import InputError
from CervicalAILib.research.stats.calibration import calibration_curve
from CervicalAILib.research.stats.roc import auc_ci, roc_curve
from CervicalAILib.research.stats.tables import format_p

_DPI = 150


def _new_figure(size=(5.2, 5.0)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise InputError(f"figure file must end in .png, .svg or .pdf: {path}")
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=_DPI)
    return path


def _outcome_of(y, name: str):
    """`y` is one outcome array for all scores, or a dict giving each score its own patients."""
    if isinstance(y, dict):
        if name not in y:
            raise InputError(f"no outcome given for {name!r}")
        return y[name]
    return y


def roc_figure(path: str | Path, y, scores: dict, directions: dict | None = None,
               title: str = "ROC curves") -> Path:
    """ROC curve of every score on one cohort, legend with AUC (95% DeLong CI).

    `y` is the outcome (1 = case) shared by all scores, or a dict name -> outcome when the
    scores were measured on different patients (unpaired).
    """
    if not scores:
        raise InputError("no score to draw a ROC curve for")
    directions = directions or {}
    figure = _new_figure()
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1)
    for name, score in scores.items():
        direction = directions.get(name, "higher")
        outcome = _outcome_of(y, name)
        curve = roc_curve(outcome, score, direction)
        result = auc_ci(outcome, score, direction)
        label = f"{name}: AUC {result.auc:.3f}"
        if np.all(np.isfinite(result.ci)):
            label += f" ({result.ci[0]:.3f}–{result.ci[1]:.3f})"
        # thresholds run from low to high, so reversing draws the curve from (0, 0) to (1, 1);
        # consecutive points are joined by straight lines (ties give diagonal segments, as in pROC)
        ax.plot(curve.false_positive_rate[::-1], curve.sensitivity[::-1], linewidth=1.8, label=label)
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel="1 - Specificity", ylabel="Sensitivity", title=title)
    ax.set_aspect("equal")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(figure, path)


def calibration_figure(path: str | Path, y, probabilities: dict, groups: int = 10,
                       title: str = "Calibration curves", hosmer_lemeshow: dict | None = None) -> Path:
    """Observed against predicted event rate in the Hosmer-Lemeshow groups, with the ideal diagonal.

    `y` is the outcome shared by all models or a dict name -> outcome; `hosmer_lemeshow`
    optionally maps a model name to its test result (dict with 'p') for the legend.
    """
    if not probabilities:
        raise InputError("no predicted probabilities to draw a calibration curve for")
    hosmer_lemeshow = hosmer_lemeshow or {}
    figure = _new_figure()
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="Ideal")
    for name, probability in probabilities.items():
        points = calibration_curve(_outcome_of(y, name), probability, groups)
        x = [p.mean_predicted for p in points]
        observed = [p.observed_rate for p in points]
        # Wilson bounds can sit a rounding error inside a 0% or 100% rate: clip the bar lengths at 0
        low = [max(p.observed_rate - p.ci[0], 0.0) for p in points]
        high = [max(p.ci[1] - p.observed_rate, 0.0) for p in points]
        label = name
        result = hosmer_lemeshow.get(name)
        if result and result.get("p") is not None:
            p_text = format_p(result["p"])
            label += f" (Hosmer-Lemeshow p {p_text})" if p_text.startswith("<") else f" (Hosmer-Lemeshow p = {p_text})"
        ax.errorbar(x, observed, yerr=[low, high], marker="o", markersize=4, capsize=2, linewidth=1.5, label=label)
    ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), xlabel="Predicted event probability",
           ylabel="Observed event probability", title=title)
    ax.set_aspect("equal")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(figure, path)


def decision_curve_figure(path: str | Path, rows, title: str = "Decision curves") -> Path:
    """Net benefit against threshold probability for each model, 'All' and 'None'.

    `rows` are `decision_curves` rows (or a DataFrame with threshold, model, net_benefit).
    """
    import pandas as pd

    frame = pd.DataFrame(rows)
    missing = {"threshold", "model", "net_benefit"} - set(frame.columns)
    if missing:
        raise InputError(f"decision-curve rows lack column(s) {', '.join(sorted(missing))}")
    figure = _new_figure(size=(6.0, 4.6))
    ax = figure.add_subplot()
    styles = {"all": {"color": "0.35", "linestyle": "-", "linewidth": 1.2, "label": "All"},
              "none": {"color": "0.0", "linestyle": "-", "linewidth": 1.2, "label": "None"}}
    for name, part in frame.groupby("model", sort=False):
        part = part.sort_values("threshold")
        ax.plot(part["threshold"], part["net_benefit"], **styles.get(name, {"linewidth": 1.8, "label": name}))
    prevalence = float(frame.loc[frame["model"] == "all", "net_benefit"].max()) if (frame["model"] == "all").any() else 0.1
    top = max(prevalence, float(frame["net_benefit"].max())) * 1.15 + 0.01
    ax.set(ylim=(-0.05 if top < 0.5 else -0.1, top), xlim=(float(frame["threshold"].min()), float(frame["threshold"].max())),
           xlabel="Threshold probability", ylabel="Net benefit", title=title)
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(figure, path)
