"""study_report.md: the Markdown report of a full run, and of a --variants-only run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from CervicalAILib import RESEARCH_USE_STATEMENT
from CervicalAILib.bundles.catalog import default_entry
from CervicalAILib.contracts.feature_names import role_of
from CervicalAILib.research.stats.tables import format_auc, format_p
from CervicalAILib.research.study_report.config import (
    COHORT_LABELS,
    ENDPOINT_TITLES,
    ENDPOINTS,
    SHORT_TITLES,
    VARIANTS,
    StudyReportConfig,
    command_text,
)
from CervicalAILib.research.study_report.paper004 import PAPER004_SIZES, paper004_comparison
from CervicalAILib.research.study_report.tables import difference_text
from CervicalAILib.research.study_report.variants import FULL_LABEL


def _pct(value) -> str:
    return "/" if value is None else f"{100 * value:.1f}%"


def auc_text(entry: dict[str, Any]) -> str:
    return format_auc(entry.get("auc"), entry.get("auc_ci"))


def _variant_headline(variant: dict[str, Any], cohort: str) -> list[str]:
    """One headline line for a model variant: its AUC against the full model's and the oracle's on the same cases."""
    comparison = (variant.get("comparison") or {}).get(cohort)
    if not comparison:
        return []
    against_full = next((c for c in comparison["comparisons"] if c["b"] == FULL_LABEL), None)
    if against_full is None:
        return []
    scores = comparison["scores"]
    own, oracle = scores[against_full["a"]], scores.get("Oracle")
    line = (f"- {variant['title']} (`{variant['bundle']['name']}`), {COHORT_LABELS[cohort].lower()}: AUC "
            f"{auc_text(own)} against the full model's {auc_text(scores[FULL_LABEL])} on the same {comparison['n']} "
            f"patients (difference {difference_text(against_full)}, DeLong p {format_p(against_full['p'])})")
    return [line + (f" and the oracle's {auc_text(oracle)}." if oracle else ".")]


def table_text(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip()


def report_markdown(config: StudyReportConfig, metrics: dict[str, Any], fits, evaluations, tab_dir: Path, cohort_frame) -> str:
    lnm = metrics["endpoints"]["lnm"]
    timing = metrics["timing"]
    summary_rows = metrics["cohort"]["summary"]
    ext = "external_validation"
    lines = [f"# {metrics['title']}", "",
             f"**{RESEARCH_USE_STATEMENT}** Every number below describes synthetic patients whose true risk is known; "
             "it says how well the pipeline recovers that risk, not how it would do on real patients.", "",
             "Reproduce (one command):", "", "```bash", command_text(config), "```", ""]
    # headline
    if ext in lnm["oracle"]:
        o = lnm["oracle"][ext]
        comparison = o["comparisons"][0]
        lines += ["## Headline", "",
                  f"- LNM, external validation (centres B-E, n = {o['n']}, {o['n_cases']} with LNM): the fitted **DLRC model "
                  f"AUC {auc_text(o['scores']['DLRC'])}** against the **generator's oracle AUC "
                  f"{auc_text(o['scores']['Oracle'])}** (the exact probability given the image-visible tumour biology and "
                  f"c_LNM, the ceiling for any model), difference {difference_text(comparison)}, DeLong p "
                  f"{format_p(comparison['p'])}. "
                  f"Bao et al. reported a DLRC external AUC of 0.807 on real patients."]
        se = metrics["endpoints"]["stage_group"]["oracle"].get(ext)
        if se:
            lines.append(f"- Stage group (chemoradiotherapy vs surgery), external validation: DLRC AUC "
                         f"{auc_text(se['scores']['DLRC'])}, oracle AUC {auc_text(se['scores']['Oracle'])}.")
        for variant in (metrics.get("variants") or {}).values():
            lines += _variant_headline(variant, ext)
        lines += [f"- Run time of this run: {timing['wall_seconds'] / 60:.1f} min wall clock on {timing['cpus']} CPU cores "
                  f"(load average {timing['load_average_at_start'][0]:.1f} at the start, "
                  f"{timing['load_average_at_end'][0]:.1f} at the end: the cores were shared with other work); "
                  "stages: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in timing["stages_seconds"].items()) + "."]
        pipeline = timing.get("pipeline") or {}
        if pipeline.get("minutes_on_two_free_cores") is not None:
            lines.append(f"- Cost of the whole pipeline (also the steps an earlier run of the same configuration did, which "
                         f"this command reuses): generation {pipeline['generation_cpu_minutes']:.1f}, extraction "
                         f"{pipeline['extraction_cpu_minutes']:.1f}, fits and statistics "
                         f"{pipeline['fit_and_statistics_cpu_minutes']:.1f} CPU-minutes: "
                         f"**{pipeline['minutes_on_two_free_cores']:.1f} min on two free cores**.")
        lines.append("")
    # design
    generator = metrics["cohort"].get("generator") or {}
    lines += ["## Design", "",
              f"Bao et al.: 1095 patients of five centres; centre A split 7:3 into training and internal "
              f"validation, centres B-E pooled as external validation ({'/'.join(map(str, PAPER004_SIZES))}). Here: "
              f"`{generator.get('regenerate', 'cervicalai synth')}` ({metrics['cohort']['n_cases']} synthetic patients, "
              f"generator {generator.get('version', '?')}, centre shares of Bao et al.), the same split of centre A "
              f"(stratified by LNM, the same split for both endpoints, seed {config.split_seed}).", "",
              "| Cohort | Centres | n | LNM+ | LNM rate | Chemoradiotherapy group |", "|---|---|---|---|---|---|"]
    for row in summary_rows:
        lines.append(f"| {COHORT_LABELS[row['cohort']]} | {row['centres']} | {row['n']} | {row['lnm_positive']} | "
                     f"{_pct(row['lnm_rate'])} | {row['crt_group']} |")
    extraction = metrics["extraction"]
    sources = extraction.get("masks", {}).get("sources", {})
    failed = extraction.get("failed_cases") or []
    encoders = extraction.get("encoders") or []
    lines += ["", "Pipeline (all engine code; every setting in `metrics.json` and in each bundle's provenance):", "",
              f"1. **Features** (`cervicalai extract`): pyradiomics on {', '.join(extraction.get('roles') or [])}, each "
              "sequence on its own acquisition grid with its own tumour delineation (mask sources: "
              + "; ".join(f"{r}: " + ", ".join(f"{s} {n}" for s, n in v.items()) for r, v in sources.items())
              + f"); {extraction.get('features_per_family', {}).get('radiomics', 0)} radiomics features per case ("
              + ", ".join(sorted({t for types in extraction.get("radiomics_image_types", {}).values() for t in types}))
              + " images; settings: " + ", ".join(sorted(set((extraction.get("radiomics_settings_source") or {}).values())))
              + "), and deep features of "
              + (", ".join(f"{e['name']}@{e['version']} ({e['family']})" for e in encoders) or "no encoder")
              + f". Failed cases: {len(failed)}" + (f" ({', '.join(f['case_id'] for f in failed[:10])})" if failed else "") + ".",
              f"2. **Selection and fitting** (`cervicalai fit`, training cohort only): ComBat ({lnm['combat']}); "
              f"Mann-Whitney U p < {config.mwu_p}; Spearman |rho| > 0.8 removed; LASSO logistic regression (penalty by "
              f"{fits['lnm'].config.selection.lasso_folds}-fold CV, fewer folds when a class has fewer cases); "
              "backward stepwise logistic regression by AIC -> Rad_score, and DL_score from the deep family with the best "
              "cross-validated training AUC; clinical variables with univariate p < 0.05 (FIGO stage excluded as in Bao et al.); "
              "DLRC = backward stepwise logistic regression over Rad_score, DL_score and those clinical variables.",
              "3. **Statistics** (`CervicalAILib.research.stats`): AUC with DeLong 95% CI; cut-off of maximum Youden index on the "
              "training cohort, carried to the validation cohorts; accuracy, sensitivity, specificity, PPV, NPV; DeLong "
              "tests (paired); Hosmer-Lemeshow (10 groups); decision curves. The Radiomics and DL rows are the "
              "probabilities of their logistic models (sigmoid of Rad_score / DL_score; same AUC as the scores).", ""]
    lines += ["## Table 1. Clinical characteristics", "", table_text(tab_dir / "table1_clinical.md").split("\n", 2)[-1], ""]
    for endpoint in ENDPOINTS:
        lines += endpoint_section(endpoint, metrics["endpoints"][endpoint], fits[endpoint], tab_dir, config)

    for key, result in (metrics.get("variants") or {}).items():
        lines += variant_section(key, result, fits[key], tab_dir, config)
    lines += paper004_comparison(lnm)
    lines += ["## Limitations", "",
              "- Synthetic data: the anatomy is geometric and the outcome follows a known logistic model of the tumour's "
              "size, cellularity, texture heterogeneity, enhancement heterogeneity, stromal invasion and extension, plus "
              "c_LNM (docs/synthetic_cohort.md). Real tumours carry more, and less tidy, information.",
              "- Bao et al. trained on one centre, as here. ComBat needs at least two centres in the training cohort, so the "
              "fit reports it as not applied; the radiomics settings z-score each image and the deep encoders z-score "
              "each crop, which removes the centres' gain differences but not their noise, contrast and resolution "
              "differences. External-validation losses measure that domain shift.",
              "- The deep encoders are small self-supervised networks trained on other synthetic cases "
              "(docs/deep_features.md), not ImageNet ResNets; Bao et al.'s six DL models are two families here (2D, 3D).",
              "- Training-cohort figures are optimistic (the same cases chose the features); read the validation cohorts.",
              "- No ICC reproducibility filter: Bao et al. kept features with ICC > 0.75 between two readers, but the "
              "synthetic cases have one delineation each. With a second contour per case, `cervicalai extract "
              "--mask-label NAME` and `cervicalai icc` give the list that `cervicalai fit --keep-features` applies.",
              ""]
    lines += ["## Files", "",
              "- `metrics.json`: every number above (and more: CIs of every metric, Hosmer-Lemeshow, DeLong statistics), "
              "the configuration, timings, extraction and fit provenance.",
              "- `tables/`: CSV and Markdown of every table; `scores_<endpoint>.csv` (per case: cohort, scores, oracle); "
              "`decision_curve_<endpoint>.csv`.",
              "- `figures/`: ROC, calibration and decision curves per endpoint and cohort; the DLRC nomograms.",
              "- Bundles: " + ", ".join(f"`{v['bundle']['name']}`" for v in metrics["endpoints"].values())
              + " (the shipped defaults " + " and ".join(f"`Resources/Models/{default_entry(e).folder}`" for e in ENDPOINTS)
              + " are copies of a full run's bundles, hashes intact).", ""]
    return "\n".join(lines)


def endpoint_section(endpoint: str, result: dict[str, Any], fit, tab_dir: Path, config: StudyReportConfig,
                     name: str | None = None, heading: list[str] | None = None) -> list[str]:
    """The report section of one model: `name` is its key in file names (default: the endpoint's own model),
    `heading` replaces the section's title line."""
    title = ENDPOINT_TITLES[endpoint]
    name = name or endpoint
    lines = list(heading) if heading else [f"## {SHORT_TITLES[endpoint]}: {title}", ""]
    for model, note in result["notes"].items():
        lines.append(f"- {model}: {note}")
    for cohort, reason in result["skipped_cohorts"].items():
        lines.append(f"- {COHORT_LABELS.get(cohort, cohort)} cohort not evaluated: {reason}")
    if result["deep_family_cv_auc"]:
        lines.append(f"- Deep family for DL_score ({fit.config.family_cv_folds}-fold cross-validated training AUC of the "
                     "whole chain): "
                     + ", ".join(f"{f} {a:.3f}" for f, a in result["deep_family_cv_auc"].items()))
    lines.append(f"- Clinical variables retained (p < 0.05): {', '.join(result['clinical_retained']) or 'none'}; "
                 f"DLRC terms: {', '.join(result['dlrc']['coefficients'])}.")
    for warning in result["fit_warnings"]:
        lines.append(f"- Fit warning: {warning}")
    lines += ["", table_text(tab_dir / f"models_{name}.md"), "",
              table_text(tab_dir / f"table2_{name}.md").replace("predicting the endpoint", f"predicting {title}"), ""]
    if (tab_dir / f"table4_{name}.md").is_file():
        lines += [table_text(tab_dir / f"table4_{name}.md"), ""]
    lines += [table_text(tab_dir / f"oracle_{name}.md"), ""]
    if endpoint == "lnm":
        sra_lines = []
        for cohort, metrics in result["cohorts"].items():
            sra = (metrics.get("rules") or {}).get("SRA")
            dlrc = metrics["scores"]["DLRC"]
            if sra:
                sra_lines.append(f"| {COHORT_LABELS[cohort]} | {_pct(sra['sensitivity'])} | {_pct(dlrc['sensitivity'])} | "
                                 f"{_pct(sra['specificity'])} | {_pct(dlrc['specificity'])} | {_pct(sra['accuracy'])} | "
                                 f"{_pct(dlrc['accuracy'])} |")
        if sra_lines:
            lines += ["**Comparison with the standardized radiological assessment (SRA)** (DLRC at the training cohort's "
                      "Youden cut-off; Bao et al.: sensitivity 33.6-37.8% with SRA against 57.1-60.4% with DLRC):", "",
                      "| Cohort | SEN SRA | SEN DLRC | SPE SRA | SPE DLRC | ACC SRA | ACC DLRC |", "|---|---|---|---|---|---|---|",
                      *sra_lines, ""]
    if config.figures:
        cohorts = list(result["cohorts"])
        lines += [f"![DLRC nomogram](figures/nomogram_{name}.png)", ""]
        for kind, caption in (("roc", "ROC curves"), ("calibration", "Calibration (Hosmer-Lemeshow groups)"),
                              ("decision_curve", "Decision curves")):
            lines.append(f"{caption}: " + " ".join(f"![{caption}, {COHORT_LABELS.get(c, c)}](figures/{kind}_{name}_{c}.png)"
                                                   for c in cohorts))
            lines.append("")
    return lines


def variant_section(key: str, result: dict[str, Any], fit, tab_dir: Path, config) -> list[str]:
    """The report section of one variant: how it differs, its figures against the full model and the oracle,
    then the same tables and figures as the full model's section."""

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
                           f"contrast AUC {auc_text(scores[variant.label])}, full model {auc_text(scores[FULL_LABEL])}, "
                           f"oracle {auc_text(scores['Oracle'])}.")
    heading += ["", table_text(tab_dir / f"comparison_{key}.md"), ""]
    if config.figures and result["comparison"]:
        heading += ["ROC against the full model and the oracle: "
                    + " ".join(f"![{COHORT_LABELS.get(c, c)}](figures/roc_{key}_vs_full_{c}.png)" for c in result["comparison"]),
                    ""]
    heading += [f"### The model without contrast in detail ({variant.endpoint}: same tables as the full model)", ""]
    return endpoint_section(variant.endpoint, result, fit, tab_dir, config, name=key, heading=heading)


def _sequences(features: list[str]) -> set[str]:
    return {role_of(f) for f in features}


def variants_markdown(config, metrics: dict[str, Any], fits, tab_dir: Path) -> str:
    """study_report.md of a --variants-only run: the variant sections (a full run puts them in its report)."""

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
