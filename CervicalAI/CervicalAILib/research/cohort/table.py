"""The feature table (one row per case, cohort.csv columns then features) and its sidecar JSON (provenance)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from CervicalAILib.core import atomic
from CervicalAILib.core.errors import InputError
from CervicalAILib.research.cohort.config import ExtractionConfig
from CervicalAILib.research.cohort.index import COHORT_CSV, CohortIndex
from CervicalAILib.research.fit.table import EXTRACTION_ERROR

TABLE_SUFFIXES = (".parquet", ".csv")
SIDECAR_SCHEMA = "cervicalai.feature-table/1"


def assemble_table(index: CohortIndex, ok_ids: list[str], records: dict[str, dict[str, Any]],
                    failed: dict[str, str] | None = None):
    """cohort.csv columns (case_id, center first), `extraction_error`, then feature columns (first-seen
    order), in cohort order. A failed case keeps its row with its error message and no feature values,
    so that fitting lists it among the excluded cases instead of losing it silently."""
    import pandas as pd

    failed = failed or {}
    extracted = set(ok_ids)
    row_ids = [c for c in index.case_ids if c in extracted or c in failed]
    features_of = {case_id: {name: value for component in records[case_id]["components"].values()
                             for name, value in component["features"].items()} for case_id in ok_ids}
    columns: dict[str, None] = {}
    for case_id in ok_ids:
        columns.update(dict.fromkeys(features_of[case_id]))
    names = list(columns)
    values = np.full((len(row_ids), len(names)), np.nan)
    position = {name: j for j, name in enumerate(names)}
    for i, case_id in enumerate(row_ids):
        for name, value in features_of.get(case_id, {}).items():
            values[i, position[name]] = np.nan if value is None else float(value)
    meta = index.frame.set_index("case_id", drop=False).loc[row_ids]
    first = [c for c in ("case_id", "center") if c in meta.columns]
    meta = meta[first + [c for c in meta.columns if c not in first]].reset_index(drop=True)
    clash = sorted((set(meta.columns) | {EXTRACTION_ERROR}) & set(names))
    if clash or EXTRACTION_ERROR in meta.columns:
        raise InputError(f"{COHORT_CSV} has column(s) named like features: {', '.join((clash or [EXTRACTION_ERROR])[:5])}",
                         index.path / COHORT_CSV)
    meta[EXTRACTION_ERROR] = [failed.get(case_id, "") for case_id in row_ids]
    features = pd.DataFrame(values, columns=names)
    return pd.concat([meta, features], axis=1)


def write_table(frame, out: Path) -> None:
    with atomic.atomic_path(out) as tmp:
        if out.suffix.lower() == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False, lineterminator="\n", float_format="%.17g")


def sidecar_document(index: CohortIndex, out: Path, config: ExtractionConfig, fingerprint: dict[str, Any],
             records: dict[str, dict[str, Any]], ok_ids: list[str], failed: list[dict[str, Any]], reused: int,
             tasks: list[dict], backend: str, jobs: int, wall: float,
             partly_reused: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The provenance the models package carries into a bundle (see models/table.py).

    `partly_reused`: case -> components an earlier run made (the rest were computed now).
    """
    partly_reused = partly_reused or {}
    mask_sources: dict[str, dict[str, int]] = {}
    for case_id in ok_ids:
        for role, source in records[case_id]["masks"].items():
            mask_sources.setdefault(role, {})
            mask_sources[role][source] = mask_sources[role].get(source, 0) + 1
    ran = {t["case_id"] for t in tasks}
    new = [records[c] for c in ok_ids if c in ran]  # (partly) computed in this run
    partial = [c for c in ok_ids if c in ran and partly_reused.get(c)]  # only missing components computed now
    stage_cpu: dict[str, float] = {}
    for record in new:
        for stage, seconds in record["timings"].items():
            stage_cpu[stage] = stage_cpu.get(stage, 0.0) + seconds
    timing = {"backend": backend, "jobs": jobs, "wall_seconds": round(wall, 1),
              "cases_extracted_now": len(new) - len(partial), "cases_completed_now": len(partial),
              "cases_reused": reused}
    if new:
        timing["cpu_seconds_per_case"] = round(sum(r["cpu_seconds"] for r in new) / len(new), 3)
        if not partial:  # a throughput only when every case was extracted whole in this run
            timing["cases_per_minute"] = round(60.0 * len(new) / max(wall, 1e-9), 2)
        timing["stage_cpu_seconds_per_case"] = {k: round(v / len(new), 3) for k, v in stage_cpu.items()}
    # the whole extraction cost per case, including components computed by earlier (resumed) runs
    component_cpu: dict[str, float] = {}
    overhead = 0.0
    for case_id in ok_ids:
        record = records[case_id]
        overhead += float(record.get("overhead_cpu_seconds") or 0.0)
        for name, component in record["components"].items():
            component_cpu[name] = component_cpu.get(name, 0.0) + float(component.get("cpu_seconds") or 0.0)
    if ok_ids:
        timing["component_cpu_seconds_per_case"] = {k: round(v / len(ok_ids), 3) for k, v in component_cpu.items()}
        timing["all_components_cpu_seconds_per_case"] = round((sum(component_cpu.values()) + overhead) / len(ok_ids), 3)
    generator = index.generator or {}
    synthetic = bool(generator.get("generator")) and "cervicalai" in str(generator.get("generator")).lower()
    cohort_info: dict[str, Any] = {"folder": index.path.name, "cohort_csv_sha256": index.csv_sha256,
                                   "cases": len(index.case_ids)}
    if generator:
        cohort_info["generator"] = {k: generator.get(k) for k in ("generator", "version", "seed", "n_cases", "n_centers",
                                                                    "stage_range", "regenerate")}
    n_features: dict[str, int] = {}
    for name, component in (records[ok_ids[0]]["components"].items() if ok_ids else ()):
        family = "radiomics" if name.startswith("radiomics:") else name.split(":", 1)[1]
        n_features[family] = n_features.get(family, 0) + len(component["features"])
    return {
        "schema": SIDECAR_SCHEMA,
        "table": out.name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "synthetic": synthetic,
        "cohort": cohort_info,
        "roles": list(config.roles),
        "radiomics_settings": dict(config.settings_text),
        "radiomics_settings_sha256": fingerprint["radiomics_settings_sha256"],
        "radiomics_settings_source": dict(config.settings_source),
        "encoders": [{k: e[k] for k in ("family", "name", "version", "sha256")} for e in config.encoders],
        "features_per_family": n_features,
        "masks": {"policy": (f"labels/{config.mask_label} (T2WI grid) for every sequence, carried by "
                             "transforms/<ROLE>.tfm, else by a rigid registration run on the fly"
                             if config.mask_label else
                             "own delineation labels/tumor_<ROLE> on the sequence's grid, else labels/tumor (T2WI) "
                             "carried by transforms/<ROLE>.tfm, else by a rigid registration run on the fly")
                            + ("" if config.register else " (disabled: scanner geometry)"),
                  "sources": mask_sources},
        "cases": {"in_cohort": len(index.case_ids), "extracted": len(ok_ids), "failed": len(failed)},
        "failed_cases": [{"case_id": f["case_id"], "error": f["error"],
                          "log": os.path.relpath(f["log"], out.parent)} for f in failed],
        "case_warnings": {c: records[c]["warnings"] for c in ok_ids if records[c]["warnings"]},
        "software": fingerprint["software"],
        "timing": timing,
    }


def sidecar_path_for(out: str | Path) -> Path:
    """`features.parquet` -> `features.parquet.json` (found by models.table.read_feature_table)."""
    out = Path(out)
    return out.with_name(out.name + ".json")
