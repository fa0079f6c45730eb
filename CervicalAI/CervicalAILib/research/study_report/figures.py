"""The report's figures: ROC, calibration and decision curves per model and cohort, and the DLRC nomograms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from CervicalAILib.research.stats import figures as fig
from CervicalAILib.research.study_report.config import COHORT_LABELS, ENDPOINT_TITLES, VARIANTS
from CervicalAILib.scoring.nomogram import render_nomogram


def cohort_figures(fig_dir: Path, endpoint: str, cohort: str, y, values, metrics, curves, model_title: str) -> None:
    label = COHORT_LABELS.get(cohort, cohort)
    title = f"{model_title}: {label}"
    fig.roc_figure(fig_dir / f"roc_{endpoint}_{cohort}.png", y, values,
                   {n: metrics["scores"][n]["direction"] for n in values}, title=f"ROC, {title}")
    hl = {n: metrics["scores"][n].get("hosmer_lemeshow") for n in values}
    fig.calibration_figure(fig_dir / f"calibration_{endpoint}_{cohort}.png", y, values, 10,
                           title=f"Calibration, {title}", hosmer_lemeshow=hl)
    fig.decision_curve_figure(fig_dir / f"decision_curve_{endpoint}_{cohort}.png", curves,
                              title=f"Decision curves, {title}")


def nomogram_figures(fig_dir: Path, fits: dict[str, Any]) -> None:
    """The DLRC nomogram of every fitted model (paper 004's two and the variants)."""
    for key, fit in fits.items():
        title = VARIANTS[key].title if key in VARIANTS else ENDPOINT_TITLES[key]
        render_nomogram(fit.nomogram, fig_dir / f"nomogram_{key}.png", title=f"DLRC nomogram: {title}")
