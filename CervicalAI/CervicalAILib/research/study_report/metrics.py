"""metrics.json: what was run, on which cohort, with which features, every model's figures, and the timings."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from CervicalAILib import RESEARCH_USE_STATEMENT, __version__
from CervicalAILib.core.hashing import sha256_file
from CervicalAILib.research.study_report.config import (
    ENDPOINTS,
    GENERATION_RECORD,
    VARIANTS,
    StudyReportConfig,
    command_text,
)


def report_metrics(config, cohort, sidecar, fits, evaluations, bundles, bundle_paths, timings, wall, cpu, load_start):
    splits = fits["lnm"].cases[["case_id", "cohort"]]
    cohort_frame = pd.read_csv(cohort / "cohort.csv", dtype={"case_id": str, "center": str})

    endpoints = {endpoint: model_metrics(fits[endpoint], evaluations[endpoint], bundles[endpoint], bundle_paths[endpoint])
                 for endpoint in ENDPOINTS}
    out = metrics_head(config, "The DLRC model for LNM of Bao et al. reproduced on a synthetic multi-centre cohort",
                       cohort, cohort_frame, sidecar)
    out["cohort"]["summary"] = cohort_summary(cohort_frame, splits)
    out.update(endpoints=endpoints, timing=timing_metrics(timings, wall, cpu, load_start))
    if config.variants:
        out["variants"] = {key: variant_metrics(key, fits[key], evaluations[key], bundles[key], bundle_paths[key])
                           for key in config.variants}
    return out


def metrics_head(config: StudyReportConfig, title: str, cohort: Path, cohort_frame, sidecar: dict[str, Any]) -> dict[str, Any]:
    """The first keys of metrics.json: what was run, on which cohort, with which features."""
    return {
        "schema": "cervicalai.study-report/1",
        "title": title,
        "research_use": RESEARCH_USE_STATEMENT,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command_text(config),
        "config": config.as_dict(),
        "cohort": {"folder": str(cohort), "n_cases": int(len(cohort_frame)),
                   "generator": (sidecar.get("cohort") or {}).get("generator")},
        "extraction": extraction_metrics(sidecar),
    }


def extraction_metrics(sidecar: dict[str, Any]) -> dict[str, Any]:
    return {**{k: sidecar.get(k) for k in ("roles", "encoders", "features_per_family", "masks", "cases", "failed_cases",
                                           "timing", "radiomics_settings_sha256", "radiomics_settings_source", "software")},
            "radiomics_image_types": _image_types(sidecar)}


def timing_metrics(timings: dict[str, float], wall: float, cpu: float, load_start) -> dict[str, Any]:
    return {"wall_seconds": round(wall, 1), "cpu_seconds_main_process": round(cpu, 1), "stages_seconds": timings,
            "load_average_at_start": [round(v, 2) for v in load_start],
            "load_average_at_end": [round(v, 2) for v in os.getloadavg()], "cpus": os.cpu_count(),
            "machine": f"{platform.machine()}, {platform.system()} {platform.release()}",
            "python": sys.version.split()[0], "cervicalai": __version__}


def model_metrics(fit, evaluation: dict[str, Any], bundle, bundle_path: Path) -> dict[str, Any]:
    """One fitted model's figures, selection and bundle, as metrics.json holds them."""
    return {
        "models": evaluation["models"],
        "notes": evaluation["notes"],
        "skipped_cohorts": evaluation["skipped"],
        "cohorts": evaluation["cohorts"],
        "oracle": evaluation["oracle"],
        "selected": {score: {"family": family, "features": fit.model["families"][family]["features"],
                             "coefficients": fit.model["families"][family]["coefficients"]}
                     for score, family in fit.model["scores"].items()},
        "deep_family_cv_auc": fit.family_cv_auc,
        "clinical_retained": fit.clinical_retained,
        "dlrc": {"intercept": fit.dlrc.intercept_, "coefficients": fit.dlrc.coef_},
        "combat": fit.combat_note,
        "fit_warnings": fit.warnings,
        "excluded_cases": int((fit.cases["cohort"] == "excluded").sum()),
        "bundle": {"name": bundle.label, "path": str(bundle_path),
                   "bundle_json_sha256": _sha(bundle.bundle.path / "bundle.json") if bundle.bundle else None},
    }


def variant_metrics(key: str, fit, evaluation: dict[str, Any], bundle, bundle_path: Path) -> dict[str, Any]:
    variant = VARIANTS[key]
    return {"title": variant.title, "endpoint": variant.endpoint, "candidate_sequences": list(variant.roles),
            **model_metrics(fit, evaluation, bundle, bundle_path),
            "reference": evaluation["reference"], "comparison_cases": evaluation["comparison_cases"],
            "comparison": evaluation["comparison"]}


def variants_metrics(config, cohort: Path, sidecar: dict[str, Any], fits, evaluations, bundles, bundle_paths, timings,
                     wall: float, load_start) -> dict[str, Any]:
    """metrics.json of a --variants-only run."""

    cohort_frame = pd.read_csv(cohort / "cohort.csv", dtype={"case_id": str, "center": str})
    out = metrics_head(config, "The DLRC chain of Bao et al.: model variants on the study's synthetic multi-centre cohort",
                       cohort, cohort_frame, sidecar)
    out["variants"] = {key: variant_metrics(key, fits[key], evaluations[key], bundles[key], bundle_paths[key])
                       for key in config.variants}
    out["timing"] = timing_metrics(timings, wall, time.process_time(), load_start)
    return out


def cohort_summary(cohort_frame, splits) -> list[dict[str, Any]]:
    rows = []
    merged = cohort_frame.merge(splits, on="case_id", how="inner")
    for cohort in ("training", "internal_validation", "external_validation"):
        part = merged[merged["cohort"] == cohort]
        if len(part) == 0:
            continue
        rows.append({"cohort": cohort, "centres": ", ".join(sorted(part["center"].astype(str).unique())),
                     "n": int(len(part)), "lnm_positive": int(part["lnm"].sum()),
                     "lnm_rate": float(part["lnm"].mean()),
                     "crt_group": int(part["stage_group_crt"].sum()) if "stage_group_crt" in part else None})
    return rows


def pipeline_cost(config: StudyReportConfig, sidecar: dict[str, Any], fit_cpu: float) -> dict[str, Any]:
    """CPU minutes of the whole pipeline, including steps an earlier (resumed) run did, and the
    wall time they make on two free cores (generation and extraction run on both, fitting on one)."""
    generation = None
    record = config.work / GENERATION_RECORD
    if config.cohort is None and record.is_file():
        try:
            generation = json.loads(record.read_text(encoding="utf-8"))
        except ValueError:
            generation = None
    timing = sidecar.get("timing") or {}
    per_case = timing.get("all_components_cpu_seconds_per_case")
    cases = (sidecar.get("cases") or {}).get("extracted", 0)
    out: dict[str, Any] = {
        "generation_cpu_minutes": round(generation["cpu_seconds"] / 60, 1) if generation else None,
        "generation_record": generation,
        "extraction_cpu_minutes": round(per_case * cases / 60, 1) if per_case is not None else None,
        "fit_and_statistics_cpu_minutes": round(fit_cpu / 60, 1),
    }
    if out["generation_cpu_minutes"] is not None and out["extraction_cpu_minutes"] is not None:
        out["minutes_on_two_free_cores"] = round(
            (out["generation_cpu_minutes"] + out["extraction_cpu_minutes"]) / 2 + out["fit_and_statistics_cpu_minutes"], 1)
    return out


def _image_types(sidecar: dict[str, Any]) -> dict[str, list[str]]:
    """pyradiomics image types per sequence, read from the settings the extraction recorded."""
    out = {}
    for role, text in (sidecar.get("radiomics_settings") or {}).items():
        try:
            out[role] = list((yaml.safe_load(text) or {}).get("imageType") or {})
        except yaml.YAMLError:
            out[role] = []
    return out


def _sha(path: Path) -> str:
    return sha256_file(path)
