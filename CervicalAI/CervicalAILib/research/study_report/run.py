"""Running a study report: the cohort (step 1) and the feature table (step 2), reused when an earlier run made
them; the fits (step 3); then the statistics, figures, tables, bundles and report written in one folder."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from CervicalAILib.bundles.catalog import default_entry
from CervicalAILib.core import atomic
from CervicalAILib.core.errors import OutputExistsError
from CervicalAILib.core.progress import ProgressCallback, no_progress, sub_progress
from CervicalAILib.research.cohort.config import ExtractionConfig
from CervicalAILib.research.cohort.extract import extract_cohort
from CervicalAILib.research.cohort.index import read_cohort_table
from CervicalAILib.research.cohort.table import sidecar_path_for
from CervicalAILib.research.fit.bundle import write_risk_bundle
from CervicalAILib.research.fit.fit import FitConfig, fit_risk_model
from CervicalAILib.research.fit.selection import SelectionConfig
from CervicalAILib.research.fit.table import SplitSpec, read_feature_table
from CervicalAILib.research.study_report.config import (
    CENTERS,
    ENDPOINTS,
    GENERATION_RECORD,
    SPLIT_STRATUM,
    TRAIN_CENTER,
    TRAIN_FRACTION,
    VARIANTS,
    StudyReportConfig,
    StudyReportResult,
)
from CervicalAILib.research.study_report.evaluate import evaluate_endpoint
from CervicalAILib.research.study_report.figures import nomogram_figures
from CervicalAILib.research.study_report.markdown import report_markdown, variants_markdown
from CervicalAILib.research.study_report.metrics import pipeline_cost, report_metrics, variants_metrics
from CervicalAILib.research.study_report.tables import write_tables
from CervicalAILib.research.study_report.variants import (
    Reference,
    evaluate_variant,
    read_reference,
    write_variant_tables,
)
from CervicalAILib.research.synth import GENERATOR_VERSION, SynthParams, generate_cohort


def _cohort(config: StudyReportConfig, progress: ProgressCallback) -> Path:
    """The synthetic cohort: an existing one given by the user, a matching earlier one, or a new one."""
    if config.cohort is not None:
        progress(1.0, f"using the cohort {config.cohort}")
        return config.cohort
    folder = config.work / "cohort"
    wanted = {"seed": config.seed, "n_cases": config.n_cases, "n_centers": CENTERS, "version": GENERATOR_VERSION,
              "matrix_scale": config.matrix_scale}
    manifest = folder / "generator.json"
    if manifest.is_file():
        try:
            found = json.loads(manifest.read_text(encoding="utf-8"))
        except ValueError:
            found = {}
        have = {"seed": found.get("seed"), "n_cases": found.get("n_cases"), "n_centers": found.get("n_centers"),
                "version": found.get("version"),
                "matrix_scale": (found.get("parameters") or {}).get("matrix_scale")}
        if have == wanted:
            progress(1.0, f"reusing the cohort generated before in {folder}")
            return folder
        differences = ", ".join(f"{k} {have[k]} (wanted {wanted[k]})" for k in wanted if have[k] != wanted[k])
        if not config.overwrite:
            raise OutputExistsError(f"{folder}: a different cohort is there ({differences}); use --overwrite to "
                                    "regenerate it or choose another --work folder")
    elif folder.exists() and any(folder.iterdir()) and not config.overwrite:
        raise OutputExistsError(f"{folder}: exists and is not a generated cohort; use --overwrite or another --work")
    load = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), _all_cpu_seconds()
    generate_cohort(folder, config.n_cases, config.seed, centers=CENTERS, jobs=config.jobs,
                    params=SynthParams(matrix_scale=config.matrix_scale), progress=progress, overwrite=True)
    # kept beside the cohort so that a resumed study can still state what generating it cost
    atomic.write_json(config.work / GENERATION_RECORD, {
        "cases": config.n_cases, "jobs": config.jobs, "wall_seconds": round(time.perf_counter() - wall, 1),
        "cpu_seconds": round(_all_cpu_seconds() - cpu, 1), "load_average_before": round(load, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
        "created": datetime.now(UTC).isoformat(timespec="seconds")})
    return folder


def _all_cpu_seconds() -> float:
    """CPU seconds of this process and of its finished worker processes."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _features(config: StudyReportConfig, cohort: Path, progress: ProgressCallback) -> tuple[Path, dict[str, Any]]:
    """The feature table: reused when an earlier run made it from the same cohort and configuration."""
    extraction = ExtractionConfig.build(roles=config.roles, settings_dir=config.settings_dir,
                                        encoders=list(config.encoders))
    table = config.work / "features.parquet"
    sidecar_path = sidecar_path_for(table)
    if table.is_file() and sidecar_path.is_file():
        try:
            sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
        except ValueError:
            sidecar = {}
        fingerprint = extraction.fingerprint()
        same = (sidecar.get("roles") == fingerprint["roles"]
                and sidecar.get("radiomics_settings_sha256") == fingerprint["radiomics_settings_sha256"]
                and sidecar.get("encoders") == fingerprint["encoders"]
                and sidecar.get("software") == fingerprint["software"]
                and (sidecar.get("cohort") or {}).get("cohort_csv_sha256") == read_cohort_table(cohort).csv_sha256)
        if same:
            progress(1.0, f"reusing the feature table extracted before: {table}")
            return table, sidecar
    # overwrite=True replaces a stale table; finished cases of the same configuration are still reused
    result = extract_cohort(cohort, table, extraction, jobs=config.jobs, overwrite=True, progress=progress)
    return table, result.sidecar_data


def _fit(table_path: Path, endpoint: str, config: StudyReportConfig, progress: ProgressCallback,
         roles: tuple[str, ...] | None = None):
    table = read_feature_table(table_path)
    fit_config = FitConfig(
        endpoint=endpoint,
        # one split for both endpoints, stratified by LNM (paper 004's endpoint), so that Table 1 and every
        # cohort mean the same patients whichever endpoint is read
        split=SplitSpec(train_centers=[TRAIN_CENTER], train_fraction=TRAIN_FRACTION, seed=config.split_seed,
                        stratify_by=SPLIT_STRATUM),
        selection=SelectionConfig(mwu_p=config.mwu_p),
        min_events=config.min_events,
        family_cv_folds=min(5, config.min_events),
        roles=list(roles) if roles is not None else None,
    )
    return fit_risk_model(table, fit_config, progress=progress)


def _training_statement(endpoint: str, result, sidecar: dict[str, Any]) -> str:
    training = result.training
    n, events = len(training), int(training[endpoint].sum())
    generator = (sidecar.get("cohort") or {}).get("generator") or {}
    source = (f"{generator.get('generator', 'CervicalAI synthetic pelvic MRI')} {generator.get('version', '')}".strip()
              + (f", `{generator['regenerate']}`" if generator.get("regenerate") else ""))
    return (f"Trained on synthetic data from the CervicalAI generator, not for clinical use. {n} training cases "
            f"({events} positive for {endpoint}) of centre {TRAIN_CENTER} of a synthetic multi-centre cohort ({source}): "
            f"the 70 % training part of a 7:3 split stratified by LNM (seed {result.config.split.seed}); "
            f"features from `cervicalai extract` on {', '.join(sidecar.get('roles') or [])}. Made by "
            "`cervicalai study-report`, which reproduces Bao et al.'s study. "
            + _mask_statement(sidecar))


def _mask_statement(sidecar: dict[str, Any]) -> str:
    """Where the training masks came from, against what the readout uses (a reviewer's question)."""
    sources = (sidecar.get("masks") or {}).get("sources") or {}
    if not sources:
        return ""
    parts = [f"{role}: " + ", ".join(f"{n} {source}" for source, n in sorted(counts.items()))
             for role, counts in sources.items()]
    return ("Training tumour masks per sequence (" + "; ".join(parts) + "). The readout instead carries the "
            "reader's T2WI mask onto each sequence through the co-registration, so its features also carry the "
            "registration error (mean 0.2-0.9 mm on synthetic pairs, Testing/benchmarks/results/registration.md); train with the same mask "
            "source as the readout (`cervicalai extract` without per-sequence labels) to remove that difference.")


def run_study_report(config: StudyReportConfig, progress: ProgressCallback | None = None) -> StudyReportResult:
    """Run the study and write the report folder (atomically) and the risk-model bundles: paper 004's two
    and the variants (`config.variants`); with `config.variants_only`, the variants alone."""
    progress = progress or no_progress
    start = time.perf_counter()
    cpu_start = time.process_time()
    load_start = os.getloadavg()
    out = config.out
    if out.exists() and any(out.iterdir()) and not config.overwrite:
        raise OutputExistsError(f"{out}: report folder exists and is not empty (use --overwrite to replace it)")
    bundle_root = config.bundles
    names = {} if config.variants_only else {endpoint: default_entry(endpoint).name for endpoint in ENDPOINTS}
    names.update({key: VARIANTS[key].bundle for key in config.variants})
    bundle_paths = {key: (bundle_root or out / "bundles") / name for key, name in names.items()}
    if bundle_root is not None and not config.overwrite:
        taken = [p for p in bundle_paths.values() if p.exists() and any(p.iterdir())]
        if taken:
            raise OutputExistsError(f"{taken[0]}: bundle folder exists (use --overwrite to replace it)")
    # the full model a variant is compared with, when this run does not fit it (checked before the long steps)
    reference = read_reference(config) if config.variants_only else None
    config.work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def stage(name: str, t0: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - t0, 1)
        return now

    t = time.perf_counter()
    fit_cpu = 0.0
    cohort = _cohort(config, sub_progress(progress, 0.0, 0.2))
    t = stage("cohort", t)
    table_path, sidecar = _features(config, cohort, sub_progress(progress, 0.2, 0.75))
    t = stage("extraction", t)
    cohort_frame = pd.read_csv(cohort / "cohort.csv", dtype={"case_id": str, "center": str})

    fits: dict[str, Any] = {}
    evaluations: dict[str, Any] = {}
    cpu_mark = _all_cpu_seconds()
    step = 0.16 / max(len(names), 1)
    for k, key in enumerate(names):
        variant = VARIANTS.get(key)
        fits[key] = _fit(table_path, variant.endpoint if variant else key, config,
                         sub_progress(progress, 0.75 + step * k, 0.75 + step * (k + 1)),
                         roles=variant.roles if variant else None)
    t = stage("fit", t)

    with atomic.atomic_directory(out, overwrite=config.overwrite) as tmp:
        fig_dir = tmp / "figures"
        tab_dir = tmp / "tables"
        fig_dir.mkdir()
        tab_dir.mkdir()
        for k, endpoint in enumerate(e for e in ENDPOINTS if e in fits):
            evaluations[endpoint] = evaluate_endpoint(
                endpoint, fits[endpoint], cohort_frame, config, fig_dir if config.figures else None,
                sub_progress(progress, 0.91 + 0.02 * k, 0.93 + 0.02 * k))
        for key in config.variants:
            variant = VARIANTS[key]
            if reference is None:  # the full model of this run
                reference = Reference(label=default_entry(variant.endpoint).name,
                                      scores=fits[variant.endpoint].scores)
            evaluations[key] = evaluate_variant(key, fits[key], reference, cohort_frame, config,
                                                fig_dir if config.figures else None, sub_progress(progress, 0.95, 0.97))
        t = stage("statistics", t)
        fit_cpu = _all_cpu_seconds() - cpu_mark
        progress(0.97, "writing the bundles and the report")
        bundles = {}
        for key, path in bundle_paths.items():
            target = tmp / "bundles" / path.name if bundle_root is None else path
            bundles[key] = write_risk_bundle(
                fits[key], target, name=names[key], version=config.bundle_version, synthetic=True,
                training_data=_training_statement(fits[key].config.endpoint, fits[key], sidecar)
                + (VARIANTS[key].statement if key in VARIANTS else ""),
                intended_use=VARIANTS[key].intended_use if key in VARIANTS else None, overwrite=config.overwrite)
        if config.figures:
            nomogram_figures(fig_dir, fits)
        stage("report", t)
        if config.variants_only:
            metrics = variants_metrics(config, cohort, sidecar, fits, evaluations, bundles, bundle_paths, timings,
                                       time.perf_counter() - start, load_start)
        else:
            metrics = report_metrics(config, cohort, sidecar, fits, evaluations, bundles, bundle_paths, timings,
                                     time.perf_counter() - start, time.process_time() - cpu_start, load_start)
            metrics["timing"]["pipeline"] = pipeline_cost(config, sidecar, fit_cpu)
            write_tables(tab_dir, cohort_frame, fits, evaluations)
        for key in config.variants:
            write_variant_tables(tab_dir, key, fits[key], evaluations[key])
        atomic.write_json(tmp / "metrics.json", metrics)
        text = (variants_markdown(config, metrics, fits, tab_dir) if config.variants_only
                else report_markdown(config, metrics, fits, evaluations, tab_dir, cohort_frame))
        atomic.write_text(tmp / "study_report.md", text)
    progress(1.0, f"study report written to {out}")
    return StudyReportResult(out=out, metrics=metrics, bundles=bundle_paths, seconds=time.perf_counter() - start,
                             report=out / "study_report.md")
