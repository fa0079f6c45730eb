"""The DLRC nomogram: rms-style points, total points, probability axis, and its rendering.

Points (as R's rms::nomogram): for each predictor i with coefficient b_i, its contribution
b_i * x ranges over the training data from c_low_i to c_high_i (for 0/1 and categorical
predictors: over the levels). The predictor with the widest range gets 0-100 points; every
other predictor is drawn on the same scale:

    points_i(x)    = (b_i * x - c_low_i) * 100 / max_i(c_high_i - c_low_i)
    total points T = sum_i points_i
    linear pred.   = intercept + sum_i c_low_i + T * max_range / 100
    probability    = 1 / (1 + exp(-linear predictor))

so reading the nomogram gives exactly the model's probability (no rounding). Values outside
the training range get points outside 0-100 (the readout warns about them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from CervicalAILib.core.atomic import atomic_path
from CervicalAILib.scoring.dlrc import sigmoid

NOMOGRAM_SCHEMA = "cervicalai.nomogram/1"
MAX_POINTS = 100.0
PROBABILITY_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)
BINARY_LABELS = {0: "No", 1: "Yes"}


def _nice_ticks(low: float, high: float, n: int = 6) -> list[float]:
    from matplotlib.ticker import MaxNLocator

    if high <= low:
        return [float(low)]
    ticks = MaxNLocator(nbins=n, steps=[1, 2, 2.5, 5, 10]).tick_values(low, high)
    span = high - low
    return [float(round(t, 12)) for t in ticks if low - 1e-9 * span <= t <= high + 1e-9 * span]


def build_nomogram(dlrc: Mapping[str, Any], term_data: Mapping[str, np.ndarray], outcome_label: str = "LNM risk",
                   endpoint: str = "lnm") -> dict[str, Any]:
    """The nomogram specification (JSON-ready) for a DLRC model and its training design columns."""
    coefficients = dlrc["coefficients"]
    predictors: list[dict[str, Any]] = []
    for term in dlrc["terms"]:
        name, kind = term["name"], term["kind"]
        data = np.asarray(term_data[name], dtype=float)
        if kind in ("score", "continuous"):
            b = coefficients[term["columns"][0]]
            x_low, x_high = float(np.nanmin(data)), float(np.nanmax(data))
            contributions = [b * x_low, b * x_high]
            predictors.append({"name": name, "label": term.get("label", name), "kind": kind, "unit": term.get("unit"),
                               "coefficient": b, "range": [x_low, x_high], "c_low": min(contributions),
                               "c_high": max(contributions)})
        elif kind == "binary":
            b = coefficients[term["columns"][0]]
            levels = [{"value": v, "label": BINARY_LABELS[v], "contribution": b * v} for v in (0, 1)]
            predictors.append({"name": name, "label": term.get("label", name), "kind": kind, "coefficient": b,
                               "levels": levels, "c_low": min(0.0, b), "c_high": max(0.0, b)})
        elif kind == "categorical":
            levels = []
            for level in term["levels"]:
                column = f"{name}={level}"
                levels.append({"value": level, "label": level, "contribution": coefficients.get(column, 0.0)})
            contributions = [lv["contribution"] for lv in levels]
            predictors.append({"name": name, "label": term.get("label", name), "kind": kind,
                               "coefficients": {c: coefficients[c] for c in term["columns"]}, "reference": term["reference"],
                               "levels": levels, "c_low": min(contributions), "c_high": max(contributions)})
        else:
            raise ValueError(f"unknown term kind {kind!r}")
    widest = max(p["c_high"] - p["c_low"] for p in predictors)
    if widest <= 0:
        raise ValueError("every DLRC predictor has zero effect over the training data; no nomogram possible")
    points_per_unit = MAX_POINTS / widest
    for p in predictors:
        if "levels" in p:
            for level in p["levels"]:
                level["points"] = (level["contribution"] - p["c_low"]) * points_per_unit
        p["max_points"] = (p["c_high"] - p["c_low"]) * points_per_unit
        if "levels" not in p:
            # fewer ticks on a short axis so that their labels stay apart
            n_ticks = max(2, min(6, round(p["max_points"] / 12)))
            p["ticks"] = [{"value": v, "points": (p["coefficient"] * v - p["c_low"]) * points_per_unit}
                          for v in _nice_ticks(*p["range"], n=n_ticks)]
    lp_zero = float(dlrc["intercept"] + sum(p["c_low"] for p in predictors))
    total_max = float(sum(p["max_points"] for p in predictors))
    prob_ticks = []
    for prob in PROBABILITY_TICKS:
        total = (math.log(prob / (1 - prob)) - lp_zero) * points_per_unit
        if 0.0 <= total <= total_max:
            prob_ticks.append({"probability": prob, "total_points": total})
    return {
        "schema": NOMOGRAM_SCHEMA,
        "endpoint": endpoint,
        "outcome_label": outcome_label,
        "method": "rms-style: 0-100 points for the predictor with the widest range of beta*x over the training data",
        "intercept": float(dlrc["intercept"]),
        "points_per_unit_lp": points_per_unit,
        "lp_at_zero_points": lp_zero,
        "predictors": predictors,
        "total_points": {"min": 0.0, "max": total_max, "ticks": _nice_ticks(0.0, total_max, 8)},
        "probability_ticks": prob_ticks,
    }


def _level_points(predictor: Mapping[str, Any], value: Any) -> float:
    for level in predictor["levels"]:
        if level["value"] == value or str(level["value"]) == str(value):
            return float(level["points"])
    raise KeyError(f"{predictor['name']}: value {value!r} is not a level of the nomogram")


def nomogram_points(spec: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """Points per predictor, total points, and the probability read from the total points."""
    per_unit = spec["points_per_unit_lp"]
    points: dict[str, float] = {}
    for predictor in spec["predictors"]:
        name = predictor["name"]
        value = values[name]
        if predictor["kind"] in ("score", "continuous", "binary"):
            points[name] = float((predictor["coefficient"] * float(value) - predictor["c_low"]) * per_unit)
        else:
            points[name] = _level_points(predictor, value)
    total = float(sum(points.values()))
    lp = spec["lp_at_zero_points"] + total / per_unit
    return {"points": points, "total_points": total, "linear_predictor": float(lp), "probability": float(sigmoid(lp))}


def _percent(probability: float) -> str:
    if probability > 0.999:
        return "> 99.9%"
    if probability < 0.001:
        return "< 0.1%"
    return f"{100 * probability:.1f}%"


def render_nomogram(spec: Mapping[str, Any], path: str | Path, patient: Mapping[str, Any] | None = None,
                    title: str | None = None) -> Path:
    """Draw the nomogram to PNG or SVG (by suffix); mark the patient's values when given.

    `patient` maps predictor name -> value (as for `nomogram_points`).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg"):
        raise ValueError(f"{path}: nomogram rendering writes .png or .svg")
    predictors = list(spec["predictors"])
    total_max = spec["total_points"]["max"]
    rows = ["Points"] + [p["label"] for p in predictors] + ["Total points", spec["outcome_label"]]
    n_rows = len(rows)
    fig_height = 1.0 + 0.62 * n_rows
    with plt.rc_context({"svg.hashsalt": "cervicalai-nomogram", "font.size": 10}):
        fig, ax = plt.subplots(figsize=(12, fig_height))
        ax.set_xlim(-32, 126)
        ax.set_ylim(-n_rows + 0.3, 1.2)
        ax.axis("off")
        y_of = {label: -i for i, label in enumerate(rows)}
        grey, mark = "#303030", "#c62828"

        def axis_line(y: float, x0: float, x1: float, label: str) -> None:
            ax.plot([x0, x1], [y, y], color=grey, lw=1.2, solid_capstyle="butt")
            ax.text(-3, y, label, ha="right", va="center", fontsize=10.5, fontweight="bold", color="#111111")

        def tick(x: float, y: float, text: str, below: bool = False) -> None:
            ax.plot([x, x], [y, y + (-0.12 if below else 0.12)], color=grey, lw=1.0)
            ax.text(x, y + (-0.17 if below else 0.17), text, ha="center", va="top" if below else "bottom", fontsize=8.5)

        # Points scale
        y = y_of["Points"]
        axis_line(y, 0, 100, "Points")
        for value in range(0, 101, 10):
            tick(value, y, f"{value}")
        for value in range(0, 101, 5):
            ax.plot([value, value], [y, y + 0.06], color=grey, lw=0.8)
        # predictors
        for p in predictors:
            y = y_of[p["label"]]
            if "levels" in p:
                xs = [lv["points"] for lv in p["levels"]]
                axis_line(y, min(xs), max(xs), p["label"])
                marks = [(lv["points"], str(lv["label"])) for lv in p["levels"]]
            else:
                ends = [(p["coefficient"] * v - p["c_low"]) * spec["points_per_unit_lp"] for v in p["range"]]
                axis_line(y, min(ends), max(ends), p["label"] + (f" ({p['unit']})" if p.get("unit") else ""))
                marks = [(t["points"], f"{t['value']:g}") for t in p["ticks"]]
            last = -1e9
            for x, text in sorted(marks):
                below = x - last < 6  # labels closer than this alternate below the line
                tick(x, y, text, below=below)
                last = -1e9 if below else x
        # total points and probability
        scale = 100.0 / total_max if total_max > 0 else 1.0
        y = y_of["Total points"]
        axis_line(y, 0, 100, "Total points")
        for value in spec["total_points"]["ticks"]:
            tick(value * scale, y, f"{value:g}")
        y = y_of[spec["outcome_label"]]
        ticks = spec["probability_ticks"]
        if ticks:
            axis_line(y, ticks[0]["total_points"] * scale, ticks[-1]["total_points"] * scale, spec["outcome_label"])
        last = -1e9
        for t in ticks:
            # probability ticks bunch up where the logistic curve is steep: label one only when it
            # stands clear of the last labelled one, the others keep their tick mark
            x = t["total_points"] * scale
            clear = x - last >= 4.5
            tick(x, y, f"{t['probability']:g}" if clear else "", below=True)
            last = x if clear else last

        if patient is not None:
            reading = nomogram_points(spec, patient)

            def shown(x: float) -> tuple[float, str]:
                # values beyond the training range are drawn at the end of the scale with an arrow
                if x > 101:
                    return 101.0, ">"
                if x < -1:
                    return -1.0, "<"
                return x, "o"

            for p in predictors:
                x, marker = shown(reading["points"][p["name"]])
                yp = y_of[p["label"]]
                ax.plot([x, x], [yp, y_of["Points"]], color=mark, lw=0.9, ls="--", alpha=0.7)
                ax.plot([x], [yp], marker, color=mark, ms=7, zorder=5)
                value = patient[p["name"]]
                text = BINARY_LABELS.get(int(value), value) if p["kind"] == "binary" else value
                text = f"{text:.3g}" if isinstance(text, float) else str(text)
                # the patient's value and points in a column right of the scales, clear of tick labels
                ax.text(104, yp, f"{text}: {reading['points'][p['name']]:.0f} pts", color=mark, fontsize=9,
                        va="center", ha="left")
            ax.text(104, y_of["Points"], "Patient", color=mark, fontsize=10, fontweight="bold", va="center", ha="left")
            xt, marker = shown(reading["total_points"] * scale)
            ax.plot([xt, xt], [y_of["Total points"], y_of[spec["outcome_label"]]], color=mark, lw=1.2, ls="--")
            ax.plot([xt], [y_of["Total points"]], marker, color=mark, ms=8, zorder=5)
            ax.plot([xt], [y_of[spec["outcome_label"]]], "D" if marker == "o" else marker, color=mark, ms=8, zorder=5)
            ax.text(min(xt, 70) + 1.5, y_of[spec["outcome_label"]] + 0.18,
                    f"{_percent(reading['probability'])}  (total {reading['total_points']:.0f} points)",
                    color=mark, fontsize=10, fontweight="bold", va="bottom")
        ax.text(0, -n_rows + 0.35, "Read each value's points on the Points scale, add them, and read the probability below "
                "the total points.", fontsize=8, color="#555555", va="bottom")
        ax.set_title(title or f"DLRC nomogram: {spec['outcome_label']}", fontsize=12, fontweight="bold", loc="left")
        fig.tight_layout()
        metadata = {"Date": None} if fmt == "svg" else {"Software": None}
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150, metadata=metadata)
        plt.close(fig)
    return path
