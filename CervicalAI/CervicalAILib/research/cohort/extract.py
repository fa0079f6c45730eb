"""Cohort feature extraction: radiomics and deep features for every case, in parallel and resumable.

    config = ExtractionConfig.build(roles=("T2W", "DWI", "CET1"), encoders=["2d", "3d"])
    result = extract_cohort("cohort/", "features.parquet", config, jobs=2)

Per case and sequence the tumour mask is taken on the sequence's OWN acquisition grid
(`registration.masks.sequence_masks`): the case's own delineation `labels/tumor_<ROLE>` when it
has one, else the T2WI mask `labels/tumor` carried by `transforms/<ROLE>.tfm` (written by
`cervicalai study register`), else by a rigid registration run on the fly (`registration.rule`).
The features come from the per-patient readout's FeaturePlan (features/plan.py), so cohort extraction
computes them exactly as the readout does, and intensities are interpolated once
(by pyradiomics' resampling), never twice. `mask_label` (`--mask-label NAME`) takes
`labels/NAME` on the T2WI grid for every sequence instead, carried like the readout carries the
reader's mask: for a second reader's or the automatic contour (the ICC reproducibility filter),
or to train with the readout's own mask source.

Resumable: each finished case is stored atomically in a parts folder beside the output
(`features.parquet.parts/cases/<case_id>.json.gz`, with the size and time stamp of the case's
files); a rerun with the same configuration skips the cases whose part is there and whose files
have not changed. Parts are kept per component (radiomics of one sequence, deep features of one
encoder) with a digest of what decides their values, so a run with other options (`overwrite`)
recomputes only what changed, e.g. the deep features when only the encoders did. A run with other
options and no `overwrite` is refused, naming the differences. A case that fails gets an error
log (`.parts/errors/<case_id>.log`), a table row with its message in `extraction_error` and no feature
values (fitting lists it among the excluded cases), and an entry in the sidecar; the
other cases go on. The table and the sidecar (`<table>.json`) are written only at the end,
atomically.

Backends: in-process (`jobs=1`), a process pool (`jobs>1`; each worker with one BLAS, ITK and
onnxruntime thread, so that N workers use N cores), or an existing Dask cluster
(`scheduler="tcp://host:8786"`; workers must see the cohort and the encoder bundles at the same paths).

Modules: config.py (ExtractionConfig: what is extracted, its fingerprint and component digests),
index.py (cohort.csv and the case folders), case.py (one case: masks and features), parts.py (the
parts folder: resume), executors.py (in-process, process pool, Dask), table.py (the feature table and
its sidecar); this one runs a cohort through them.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from CervicalAILib.core import atomic
from CervicalAILib.core.errors import CervicalAIError, InputError, OutputExistsError
from CervicalAILib.core.progress import ProgressCallback, no_progress
from CervicalAILib.research.cohort.config import ExtractionConfig
from CervicalAILib.research.cohort.executors import run_dask, run_in_process, run_process_pool
from CervicalAILib.research.cohort.index import read_cohort_table
from CervicalAILib.research.cohort.parts import (
    PARTS_ERRORS,
    case_input_stamp,
    error_path,
    parts_dir_for,
    prepare_parts,
    read_part,
    valid_components,
    write_error_log,
    write_part,
)
from CervicalAILib.research.cohort.table import (
    TABLE_SUFFIXES,
    assemble_table,
    sidecar_document,
    sidecar_path_for,
    write_table,
)

log = logging.getLogger(__name__)


@dataclass


class ExtractionResult:
    table: Path
    sidecar: Path
    parts: Path
    n_cases: int
    extracted: list[str]  # case IDs in the table
    failed: list[dict[str, Any]]  # {"case_id", "error", "log"}
    reused: int  # cases taken from an earlier (interrupted) run
    wall_seconds: float
    sidecar_data: dict[str, Any]


def extract_cohort(
    cohort: str | Path,
    out: str | Path,
    config: ExtractionConfig,
    jobs: int = 1,
    scheduler: Any = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> ExtractionResult:
    """Extract every case of `cohort` into the feature table `out` (.parquet or .csv) and its sidecar.

    `jobs` worker processes (1 = in this process) or, with `scheduler` (an address or a
    distributed.Client), the workers of a Dask cluster. Resumes a partial run of the same
    configuration; refuses an existing table unless `overwrite` (which also discards a partial
    run of another configuration). Failed cases are logged, listed and left out; the rest go on.
    """
    progress = progress or no_progress
    start = time.perf_counter()
    out = Path(out)
    if out.suffix.lower() not in TABLE_SUFFIXES:
        raise InputError(f"the feature table must end in {' or '.join(TABLE_SUFFIXES)}", out)
    if not isinstance(jobs, int) or jobs < 1:
        raise InputError(f"--jobs must be a positive integer, got {jobs!r}")
    index = read_cohort_table(cohort)
    sidecar_path, parts = sidecar_path_for(out), parts_dir_for(out)
    existing = [p for p in (out, sidecar_path) if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{existing[0]}: output exists (use --overwrite to replace it; finished cases of the "
                                "same configuration are reused from the parts folder)")
    fingerprint = config.fingerprint()
    state = prepare_parts(parts, fingerprint, overwrite)

    total = len(index.case_ids)
    keys = config.components()
    records: dict[str, dict[str, Any]] = {}
    kept: dict[str, dict[str, Any]] = {}  # case -> components reused from an earlier run
    tasks = []
    for case_id in index.case_ids:
        stamp = case_input_stamp(index.case_dirs[case_id])
        part = read_part(parts, case_id) if state != "new" else None
        valid = valid_components(part, stamp, keys)
        if len(valid) == len(keys):
            records[case_id] = part | {"components": valid}
            continue
        kept[case_id] = valid
        todo = [name for name in keys if name not in valid]
        tasks.append({"case_id": case_id, "case_dir": str(index.case_dirs[case_id]), "inputs": stamp,
                      "config": config.task_view(todo)})
    reused = len(records)
    partly = sum(1 for c in kept.values() if c)
    if reused or partly:
        log.info("resuming: %d of %d case(s) already extracted in %s (%d more in part)", reused, total, parts, partly)
    failures: dict[str, dict[str, Any]] = {}
    stamps = {t["case_id"]: t["inputs"] for t in tasks}
    progress(0.98 * reused / max(total, 1), f"{reused} of {total} case(s) done before; extracting {len(tasks)}")

    def on_result(result: dict[str, Any]) -> None:
        case_id = result["case_id"]
        if result["ok"]:
            components = dict(kept.get(case_id, {}))
            # each component keeps the CPU seconds it cost, so a resumed run can still state the whole cost
            components.update({name: {"key": keys[name], "features": values,
                                      "cpu_seconds": round(result["timings"].get(name.replace(":", " ", 1), 0.0), 4)}
                               for name, values in result["components"].items()})
            record = {k: result[k] for k in ("case_id", "masks", "warnings", "timings", "wall_seconds", "cpu_seconds")}
            record["overhead_cpu_seconds"] = round(sum(result["timings"].get(k, 0.0) for k in ("load", "masks")), 4)
            record["inputs"] = stamps[case_id]
            record["components"] = {name: components[name] for name in keys}  # configuration order
            write_part(parts, record)
            with contextlib.suppress(FileNotFoundError):
                error_path(parts, case_id).unlink()
            records[case_id] = record
            status = "done"
        else:
            log_path = write_error_log(parts, result, index.case_dirs[case_id])
            failures[case_id] = {"case_id": case_id, "error": result["error"], "log": log_path}
            log.warning("%s: extraction failed: %s (log: %s)", case_id, result["error"], log_path)
            status = "FAILED"
        done = len(records) + len(failures)
        progress(0.98 * done / max(total, 1), f"case {done}/{total} {case_id} {status}"
                 + (f" ({len(failures)} failed so far)" if failures else ""))

    if tasks:
        if scheduler is not None:
            backend = "dask"
            run_dask(tasks, scheduler, on_result)
        elif jobs == 1:
            backend = "in-process"
            run_in_process(tasks, on_result)
        else:
            backend = f"process pool ({jobs} workers)"
            run_process_pool(tasks, jobs, on_result)
    else:
        backend = "none (every case reused)"

    ok_ids = [c for c in index.case_ids if c in records]
    failed = [failures[c] for c in index.case_ids if c in failures]
    if not ok_ids:
        first = failed[0] if failed else {"case_id": "?", "error": "no case", "log": ""}
        raise CervicalAIError(f"extraction failed for every case ({len(failed)}); first: {first['case_id']}: "
                              f"{first['error']} (logs in {parts / PARTS_ERRORS})")
    progress(0.99, "writing the feature table")
    frame = assemble_table(index, ok_ids, records, {f['case_id']: f['error'] for f in failed})
    wall = time.perf_counter() - start
    sidecar = sidecar_document(index, out, config, fingerprint, records, ok_ids, failed, reused, tasks, backend, jobs, wall,
                       partly_reused=kept)
    write_table(frame, out)
    atomic.write_json(sidecar_path, sidecar)
    progress(1.0, f"{len(ok_ids)} case(s) extracted, {len(failed)} failed: {out}")
    return ExtractionResult(table=out, sidecar=sidecar_path, parts=parts, n_cases=total, extracted=ok_ids,
                            failed=[{**f, "log": str(f["log"])} for f in failed], reused=reused,
                            wall_seconds=wall, sidecar_data=sidecar)
