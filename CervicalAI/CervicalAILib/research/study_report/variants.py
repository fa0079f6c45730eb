"""Risk models fitted besides paper 004's two (config.VARIANTS): the LNM model without contrast.

ESUR's protocol for cervical cancer makes contrast optional, so a study may have no CE-T1WI. The
variant `lnm_no_contrast` is the same chain as `dlrc-lnm` (same cohort, same split, ComBat, Mann-Whitney
U, Spearman, LASSO, stepwise AIC, Rad_score + DL_score + clinical variables) with the candidate
features of every family restricted to T2WI and DWI/ADC; the readout uses it when CE-T1WI is missing.

Its report section compares it, case by case, with the full model and with the generator's oracle on
every cohort. A full `cervicalai study-report` fits it beside the full model; `--variants-only` fits it
alone and reads the full model's per-case scores from a bundle fitted on the same cohort and split (by
default the shipped `dlrc-lnm`), so the shipped full models need not be refitted. This module: the full
model it is compared with and the comparison; metrics.py and markdown.py hold its metrics and section.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from CervicalAILib.bundles.defaults import default_bundle_path
from CervicalAILib.core.errors import InputError
from CervicalAILib.research.fit.table import cohort_order
from CervicalAILib.research.stats import evaluate_scores
from CervicalAILib.research.stats import figures as fig
from CervicalAILib.research.stats.tables import format_auc, format_p, write_table
from CervicalAILib.research.study_report.config import COHORT_LABELS, ORACLE_COLUMNS, VARIANTS, Variant
from CervicalAILib.research.study_report.evaluate import evaluate_endpoint
from CervicalAILib.research.study_report.tables import difference_text, write_model_tables
from CervicalAILib.scoring.risk_model import load_risk_model

FULL_LABEL = "DLRC (full model)"


@dataclass
class Reference:
    """The full model a variant is compared with: its label and per-case scores (case_id, cohort, dlrc_probability)."""

    label: str
    scores: Any


def read_reference(config) -> Reference:
    """The full model of `config.reference` (default: the shipped model of the variants' endpoint), from the
    per-case scores its bundle carries (cohort/scores.csv)."""

    endpoints = sorted({VARIANTS[key].endpoint for key in config.variants})
    if len(endpoints) != 1:
        raise InputError(f"--variants-only compares with one full model; the variants have endpoints {', '.join(endpoints)}")
    path = config.reference or default_bundle_path(endpoints[0])
    model = load_risk_model(path)  # verifies every file's hash
    if model.endpoint != endpoints[0]:
        raise InputError(f"the reference model predicts {model.endpoint!r}, the variants {endpoints[0]!r}", path)
    scores_file = (model.manifest.get("artefacts") or {}).get("scores")
    if not scores_file:
        raise InputError("the reference bundle carries no per-case scores (cohort/scores.csv): fit the full model in "
                         "the same run instead (without --variants-only)", path)
    scores = pd.read_csv(model.bundle.path / scores_file, dtype={"case_id": str, "center": str})
    missing = [c for c in ("case_id", "cohort", "dlrc_probability") if c not in scores.columns]
    if missing:
        raise InputError(f"{scores_file} lacks the column(s) {', '.join(missing)}", path)
    return Reference(label=model.label, scores=scores)


def evaluate_variant(key: str, fit, reference: Reference, cohort_frame, config, fig_dir: Path | None, progress) -> dict[str, Any]:
    """The variant's own figures (as the full model's section) plus, per cohort, its DLRC probability
    against the full model's and the oracle's on the cases both models scored (paired DeLong)."""

    variant = VARIANTS[key]
    evaluation = evaluate_endpoint(variant.endpoint, fit, cohort_frame, config, fig_dir, progress, name=key,
                                   title=variant.short)
    frame = evaluation["scores_frame"]
    full = reference.scores[["case_id", "cohort", "dlrc_probability"]].rename(
        columns={"cohort": "full_cohort", "dlrc_probability": "full_probability"})
    merged = frame.merge(full, on="case_id", how="inner")
    if merged.empty:
        raise InputError(f"the full model {reference.label} scored none of this cohort's cases: give the full model "
                         "fitted on this cohort (--reference)")
    # the same patients in the same cohorts, or the comparison would mix training and validation cases
    scored = merged[merged["cohort"] != "excluded"]
    moved = scored[(scored["full_cohort"] != scored["cohort"]) & (scored["full_cohort"] != "excluded")]
    if len(moved):
        row = moved.iloc[0]
        raise InputError(f"the full model {reference.label} was fitted on another split ({len(moved)} case(s) differ, e.g. "
                         f"{row['case_id']}: {row['full_cohort']} there, {row['cohort']} here): give the full model "
                         "fitted on this cohort and split (--reference)")
    oracle = ORACLE_COLUMNS[variant.endpoint]
    comparison: dict[str, Any] = {}
    for cohort in cohort_order([c for c in scored["cohort"].unique() if c != "excluded"]):
        part = scored[scored["cohort"] == cohort].dropna(subset=["dlrc_probability", "full_probability", oracle])
        y = part[variant.endpoint].to_numpy(dtype=int)
        if len(y) == 0 or y.min() == y.max():
            continue
        values = {variant.label: part["dlrc_probability"].to_numpy(dtype=float),
                  FULL_LABEL: part["full_probability"].to_numpy(dtype=float),
                  "Oracle": part[oracle].to_numpy(dtype=float)}
        comparison[cohort] = evaluate_scores(y, values)
        if fig_dir is not None:
            fig.roc_figure(fig_dir / f"roc_{key}_vs_full_{cohort}.png", y, values,
                           title=f"{variant.short} vs full model: {COHORT_LABELS.get(cohort, cohort)}")
    evaluation["comparison"] = comparison
    evaluation["reference"] = reference.label
    evaluation["comparison_cases"] = {"both_models": int(len(scored)), "variant_only": int((frame["cohort"] != "excluded").sum()
                                                                                           - len(scored))}
    return evaluation


def _comparison_table(evaluation: dict[str, Any], variant: Variant):
    rows = []
    for cohort, metrics in evaluation["comparison"].items():
        scores = metrics["scores"]
        pairs = {(c["a"], c["b"]): c for c in metrics["comparisons"]}
        against_full, against_oracle = pairs[(variant.label, FULL_LABEL)], pairs[(variant.label, "Oracle")]
        rows.append([COHORT_LABELS.get(cohort, cohort), str(metrics["n"]), str(metrics["n_cases"])]
                    + [format_auc(scores[name]["auc"], scores[name]["auc_ci"]) for name in (variant.label, FULL_LABEL, "Oracle")]
                    + [difference_text(against_full), format_p(against_full["p"]),
                       difference_text(against_oracle), format_p(against_oracle["p"])])
    return pd.DataFrame(rows, columns=["Cohort", "n", "Events", f"{variant.label} AUC (95% CI)", f"{FULL_LABEL} AUC (95% CI)",
                                       "Oracle AUC (95% CI)", "Without - full (95% CI)", "DeLong p (vs full)",
                                       "Without - oracle (95% CI)", "DeLong p (vs oracle)"])


def write_variant_tables(tab_dir: Path, key: str, fit, evaluation: dict[str, Any]) -> None:
    variant = VARIANTS[key]
    write_model_tables(tab_dir, key, variant.endpoint, variant.title, fit, evaluation)
    write_table(_comparison_table(evaluation, variant), tab_dir / f"comparison_{key}",
                title=f"{variant.label} against the full model ({evaluation['reference']}) and the generator's oracle, "
                      "paired on the cases both models scored")
