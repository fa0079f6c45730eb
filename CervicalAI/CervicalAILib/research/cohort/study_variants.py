"""Risk models of the study fitted besides seed 004's two: the LNM model without contrast.

ESUR's protocol for cervical cancer makes contrast optional, so a study may have no CE-T1WI. The
variant `lnm_no_contrast` is the same chain as `dlrc-lnm` (same cohort, same split, ComBat, Mann-Whitney
U, Spearman, LASSO, stepwise AIC, Rad_score + DL_score + clinical variables) with the candidate
features of every family restricted to T2WI and DWI/ADC; the readout uses it when CE-T1WI is missing.

Its report section compares it, case by case, with the full model and with the generator's oracle on
every cohort. A full `cervicalai study-report` fits it beside the full model; `--variants-only` fits it
alone and reads the full model's per-case scores from a bundle fitted on the same cohort and split (by
default the shipped `dlrc-lnm`), so the shipped full models need not be refitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from CervicalAILib import RESEARCH_USE_STATEMENT
from CervicalAILib.contracts.feature_names import role_of
from CervicalAILib.core.errors import InputError

CONTRAST_FREE_ROLES = ("T2W", "ADC", "DWI")
FULL_LABEL = "DLRC (full model)"


@dataclass(frozen=True)
class Variant:
    endpoint: str
    bundle: str  # bundle folder and name (its catalogue entry is the default for the variant's purpose)
    roles: tuple[str, ...]  # the MRI sequences its candidate features may come from
    title: str  # section title
    short: str  # figure titles
    label: str  # its DLRC probability in the comparison with the full model
    statement: str  # added to the bundle's training-data statement
    intended_use: str


VARIANTS = {
    "lnm_no_contrast": Variant(
        endpoint="lnm", bundle="dlrc-lnm-no-contrast", roles=CONTRAST_FREE_ROLES,
        title="LNM without contrast (T2WI + DWI/ADC)", short="LNM without contrast", label="DLRC without contrast",
        statement=(" Model without contrast: the candidate features of every family came from T2W, ADC and DWI only "
                   "(no CE-T1WI feature), the rest of the chain as the full dlrc-lnm model on the same cohort and "
                   "split; the readout uses it when a study has no CE-T1WI."),
        intended_use=("Research use: estimate the probability of pathological pelvic lymph-node metastasis before "
                      "treatment in cervical cancer, as a second opinion for a radiologist, from a reviewed tumour mask "
                      "on pelvic MRI without contrast (T2WI and DWI/ADC) plus clinical values; the readout uses it when "
                      "a study has no CE-T1WI. Not a diagnostic device."),
    ),
}


@dataclass
class Reference:
    """The full model a variant is compared with: its label and per-case scores (case_id, cohort, dlrc_probability)."""

    label: str
    scores: Any


def read_reference(config) -> Reference:
    """The full model of `config.reference` (default: the shipped model of the variants' endpoint), from the
    per-case scores its bundle carries (cohort/scores.csv)."""
    import pandas as pd

    from CervicalAILib.bundles.defaults import default_bundle_path
    from CervicalAILib.scoring.risk_model import load_risk_model

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
    from CervicalAILib.research.cohort.study_report import COHORT_LABELS, ORACLE_COLUMNS, _evaluate_endpoint
    from CervicalAILib.research.fit.table import cohort_order
    from CervicalAILib.research.stats import evaluate_scores
    from CervicalAILib.research.stats import figures as fig

    variant = VARIANTS[key]
    evaluation = _evaluate_endpoint(variant.endpoint, fit, cohort_frame, config, fig_dir, progress, name=key,
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
    import pandas as pd

    from CervicalAILib.research.cohort.study_report import COHORT_LABELS, _difference_text
    from CervicalAILib.research.stats.tables import format_auc, format_p

    rows = []
    for cohort, metrics in evaluation["comparison"].items():
        scores = metrics["scores"]
        pairs = {(c["a"], c["b"]): c for c in metrics["comparisons"]}
        against_full, against_oracle = pairs[(variant.label, FULL_LABEL)], pairs[(variant.label, "Oracle")]
        rows.append([COHORT_LABELS.get(cohort, cohort), str(metrics["n"]), str(metrics["n_cases"])]
                    + [format_auc(scores[name]["auc"], scores[name]["auc_ci"]) for name in (variant.label, FULL_LABEL, "Oracle")]
                    + [_difference_text(against_full), format_p(against_full["p"]),
                       _difference_text(against_oracle), format_p(against_oracle["p"])])
    return pd.DataFrame(rows, columns=["Cohort", "n", "Events", f"{variant.label} AUC (95% CI)", f"{FULL_LABEL} AUC (95% CI)",
                                       "Oracle AUC (95% CI)", "Without - full (95% CI)", "DeLong p (vs full)",
                                       "Without - oracle (95% CI)", "DeLong p (vs oracle)"])


def write_variant_tables(tab_dir: Path, key: str, fit, evaluation: dict[str, Any]) -> None:
    from CervicalAILib.research.cohort.study_report import write_model_tables
    from CervicalAILib.research.stats.tables import write_table

    variant = VARIANTS[key]
    write_model_tables(tab_dir, key, variant.endpoint, variant.title, fit, evaluation)
    write_table(_comparison_table(evaluation, variant), tab_dir / f"comparison_{key}",
                title=f"{variant.label} against the full model ({evaluation['reference']}) and the generator's oracle, "
                      "paired on the cases both models scored")


def variant_metrics(key: str, fit, evaluation: dict[str, Any], bundle, bundle_path: Path) -> dict[str, Any]:
    from CervicalAILib.research.cohort.study_report import model_metrics

    variant = VARIANTS[key]
    return {"title": variant.title, "endpoint": variant.endpoint, "candidate_sequences": list(variant.roles),
            **model_metrics(fit, evaluation, bundle, bundle_path),
            "reference": evaluation["reference"], "comparison_cases": evaluation["comparison_cases"],
            "comparison": evaluation["comparison"]}


def variants_metrics(config, cohort: Path, sidecar: dict[str, Any], fits, evaluations, bundles, bundle_paths, timings,
                     wall: float, load_start) -> dict[str, Any]:
    """metrics.json of a --variants-only run."""
    import time

    import pandas as pd

    from CervicalAILib.research.cohort.study_report import metrics_head, timing_metrics

    cohort_frame = pd.read_csv(cohort / "cohort.csv", dtype={"case_id": str, "center": str})
    out = metrics_head(config, "Seed 004's DLRC chain: model variants on the study's synthetic multi-centre cohort",
                       cohort, cohort_frame, sidecar)
    out["variants"] = {key: variant_metrics(key, fits[key], evaluations[key], bundles[key], bundle_paths[key])
                       for key in config.variants}
    out["timing"] = timing_metrics(timings, wall, time.process_time(), load_start)
    return out


def variant_section(key: str, result: dict[str, Any], fit, tab_dir: Path, config) -> list[str]:
    """The report section of one variant: how it differs, its figures against the full model and the oracle,
    then the same tables and figures as the full model's section."""
    from CervicalAILib.research.cohort.study_report import COHORT_LABELS, _auc_text, _endpoint_section, _read

    variant = VARIANTS[key]
    used = sorted({s for score in (fit.model.get("scores") or {}).values()
                   for s in _sequences(fit.model["families"][score]["features"])})
    heading = [f"## {variant.title}: `{variant.bundle}`", "",
               "ESUR's protocol makes contrast optional, and without CE-T1WI the full model cannot score a study. This "
               f"model is the same chain on the same cohort and split, with the candidate features of every family "
               f"restricted to {', '.join(variant.roles)} (no CE-T1WI feature; the fit used {', '.join(used) or 'none'}). "
               "The readout uses it when a study has no CE-T1WI and says so. The comparison below is paired on the "
               f"cases both models scored ({result['comparison_cases']['both_models']}), against the full model "
               f"`{result['reference']}` and the generator's oracle.", ""]
    for cohort in ("internal_validation", "external_validation"):
        metrics = result["comparison"].get(cohort)
        if metrics:
            scores = metrics["scores"]
            heading.append(f"- {COHORT_LABELS[cohort]} (n = {metrics['n']}, {metrics['n_cases']} events): without "
                           f"contrast AUC {_auc_text(scores[variant.label])}, full model {_auc_text(scores[FULL_LABEL])}, "
                           f"oracle {_auc_text(scores['Oracle'])}.")
    heading += ["", _read(tab_dir / f"comparison_{key}.md"), ""]
    if config.figures and result["comparison"]:
        heading += ["ROC against the full model and the oracle: "
                    + " ".join(f"![{COHORT_LABELS.get(c, c)}](figures/roc_{key}_vs_full_{c}.png)" for c in result["comparison"]),
                    ""]
    heading += [f"### The model without contrast in detail ({variant.endpoint}: same tables as the full model)", ""]
    return _endpoint_section(variant.endpoint, result, fit, tab_dir, config, name=key, heading=heading)


def _sequences(features: list[str]) -> set[str]:
    return {role_of(f) for f in features}


def variants_markdown(config, metrics: dict[str, Any], fits, tab_dir: Path) -> str:
    """study_report.md of a --variants-only run: the variant sections (a full run puts them in its report)."""
    from CervicalAILib.research.cohort.study_report import command_text

    generator = (metrics["cohort"].get("generator") or {})
    lines = [f"# {metrics['title']}", "",
             f"**{RESEARCH_USE_STATEMENT}** Every number below describes synthetic patients whose true risk is known.", "",
             "Reproduce (one command):", "", "```bash", command_text(config), "```", "",
             f"Cohort: `{generator.get('regenerate', 'cervicalai synth')}` ({metrics['cohort']['n_cases']} synthetic "
             f"patients, generator {generator.get('version', '?')}); the split of centre A as in the full study "
             f"(seed {config.split_seed}). Only the variants were fitted here; the full model's per-case scores come "
             "from its bundle.", ""]
    for key, result in metrics["variants"].items():
        lines += variant_section(key, result, fits[key], tab_dir, config)
    return "\n".join(lines)
