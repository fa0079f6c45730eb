"""Step 4 per model: Table 2 / Table 4 metrics, the oracle comparison and decision curves on every cohort."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from CervicalAILib.contracts.feature_names import RADIOMICS_FAMILY, encoder_of_family
from CervicalAILib.core.errors import CervicalAIError
from CervicalAILib.core.progress import ProgressCallback
from CervicalAILib.research.fit.table import cohort_order
from CervicalAILib.research.stats import cutoffs_from, decision_curves, evaluate_scores
from CervicalAILib.research.stats.decision_curve import DEFAULT_THRESHOLDS, parse_threshold_range
from CervicalAILib.research.study_report.config import ORACLE_COLUMNS, SHORT_TITLES, StudyReportConfig
from CervicalAILib.research.study_report.figures import cohort_figures


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


def _model_scores(result, endpoint: str) -> tuple[dict[str, str], dict[str, str]]:
    """Display name -> scores.csv column, and the notes on models the fit could not build."""
    models: dict[str, str] = {}
    notes: dict[str, str] = {}
    scores = result.model["scores"]
    if "rad_score" in scores:
        models["Radiomics"] = "rad_score"
    else:
        notes["Radiomics"] = "no radiomics score: " + str(result.families.get(RADIOMICS_FAMILY).log.get("stopped", "")
                                                         if result.families.get(RADIOMICS_FAMILY) else "no radiomics features")
    if "dl_score" in scores:
        models[f"DL ({encoder_of_family(scores['dl_score'])})"] = "dl_score"
    else:
        notes["DL"] = "no deep-learning score (no deep family gave one)"
    models["DLRC"] = "dlrc_probability"
    return models, notes


def evaluate_endpoint(endpoint: str, result, cohort_frame, config: StudyReportConfig, fig_dir: Path | None,
                      progress: ProgressCallback, name: str | None = None, title: str | None = None) -> dict[str, Any]:
    """Table 2 / Table 4 metrics, oracle comparison, decision curves and figures for one endpoint
    (`name`: the model's key in file names when it is not the endpoint's own model, `title` its figure title)."""
    file_key, figure_title = name or endpoint, title or SHORT_TITLES[endpoint]  # `name` is reused below
    models, notes = _model_scores(result, endpoint)
    scores = result.scores.merge(cohort_frame, on="case_id", how="left", suffixes=("", "_cohort"))
    oracle_column = ORACLE_COLUMNS[endpoint]
    thresholds = parse_threshold_range(DEFAULT_THRESHOLDS)
    out: dict[str, Any] = {"models": models, "notes": notes, "cohorts": {}, "oracle": {}, "skipped": {},
                           "decision_curves": {}}
    cutoffs, directions = None, "higher"
    names = cohort_order(scores["cohort"].unique().tolist())
    for k, cohort in enumerate(names):
        progress(k / max(len(names), 1), f"{endpoint}: statistics for the {cohort} cohort")
        part = scores[scores["cohort"] == cohort]
        y = part[endpoint].to_numpy(dtype=int)
        values = {}
        for name, column in models.items():
            raw = part[column].to_numpy(dtype=float)
            # Rad_score and DL_score are the log-odds of their logistic models: the models' probabilities
            values[name] = raw if column == "dlrc_probability" else _sigmoid(raw)
        rules = {"SRA": part["sra"].to_numpy(dtype=float)} if endpoint == "lnm" and "sra" in part else None
        if y.min() == y.max():
            out["skipped"][cohort] = f"only one outcome class among its {len(y)} case(s)"
            continue
        source = "training cohort (maximum Youden index)"
        metrics = evaluate_scores(y, values, cutoffs=cutoffs, directions=directions, rules=rules,
                                  cutoff_from=source if cutoffs else "given")
        if cohort == "training":
            cutoffs, directions = cutoffs_from(metrics)
        out["cohorts"][cohort] = metrics
        oracle = part[oracle_column].to_numpy(dtype=float)
        out["oracle"][cohort] = evaluate_scores(y, {"DLRC": values["DLRC"], "Oracle": oracle},
                                                cutoffs={"DLRC": cutoffs["DLRC"]} if cutoffs else None)
        curves = decision_curves(y, values, thresholds)
        out["decision_curves"][cohort] = curves
        if fig_dir is not None:
            cohort_figures(fig_dir, file_key, cohort, y, values, metrics, curves, figure_title)
    if "training" not in out["cohorts"]:
        raise CervicalAIError(f"{endpoint}: the training cohort has one outcome class only; nothing to evaluate")
    out["scores_frame"] = pd.DataFrame(scores)
    return out
