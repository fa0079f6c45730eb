"""Whole cohorts: case folders, cohort.csv and generator.json; the image-free cohort table.

A cohort folder is built under a temporary name beside its destination and renamed into place
when complete, so a reader never sees half a cohort and an existing cohort is replaced only
with --overwrite, after the new one is finished. Each case depends only on (seed, case index,
parameters, number of centres), so the bytes do not depend on --jobs or on scheduling.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import io
import math
import multiprocessing
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from CervicalAILib.core import atomic
from CervicalAILib.core.errors import InputError
from CervicalAILib.core.progress import ProgressCallback, no_progress
from CervicalAILib.research.synth import anatomy as current_anatomy
from CervicalAILib.research.synth import scanner as current_scanner
from CervicalAILib.research.synth.clinical import center_probabilities, sample_patient
from CervicalAILib.research.synth.labels import label_table
from CervicalAILib.research.synth.params import GENERATOR_NAME, GENERATOR_VERSION, SynthParams
from CervicalAILib.research.synth.render import generate_case
from CervicalAILib.research.synth.v1 import anatomy as anatomy_v1
from CervicalAILib.research.synth.v1 import scanner as scanner_v1
from CervicalAILib.research.synth.writer import write_case_folder

FORMATS = ("nifti", "dicom")
CLINICAL_COLUMNS = (
    "case_id", "center", "age", "figo_stage", "histology", "ln_short_axis_mm", "ln_long_axis_mm",
    "ln_necrosis", "c_lnm", "sra", "scc_ag", "lnm", "stage_group", "stage_group_crt",
)
MEASURED_COLUMNS = ("tumor_volume_ml", "tumor_max_diameter_mm")
ORACLE_COLUMNS = ("oracle_lnm_probability", "oracle_stage_probability")


@dataclass
class CohortResult:
    path: Path
    n_cases: int
    rows: list[dict[str, Any]]
    seconds: float


def _version(params: SynthParams):
    """(build_anatomy, center_profile, organ label legend) of the generator version in use."""
    if params.generator_version == GENERATOR_VERSION:
        return current_anatomy.build_anatomy, current_scanner.center_profile, label_table()["labels"]
    return anatomy_v1.build_anatomy, scanner_v1.center_profile, {str(v): k for k, v in anatomy_v1.ORGAN_LABELS.items()}


def cohort_row(clinical: dict[str, Any], latent: dict[str, Any]) -> dict[str, Any]:
    """One cohort.csv row: clinical values, measured tumour size, oracle, latent biology."""
    row = {key: clinical[key] for key in CLINICAL_COLUMNS}
    for key in MEASURED_COLUMNS:
        if key in clinical:
            row[key] = clinical[key]
    for key in ORACLE_COLUMNS:
        row[key] = latent[key]
    for key, value in latent.items():
        if key.startswith("latent_"):
            row[key] = value
    return row


def sample_cohort_table(n_cases: int, seed: int, params: SynthParams | None = None, centers: int = 1,
                        measure_tumours: bool = False) -> dict[str, np.ndarray]:
    """The cohort.csv columns for cases 0..n-1 without rendering any image (fast statistics).

    Values are exactly those `generate_cohort` writes for the same arguments. Without
    `measure_tumours` the measured tumour volume/diameter columns are left out (they need
    the tumour shape, about 50 ms per case); the latent diameter is always there.
    """
    params = _check(n_cases, seed, centers, params)
    rows = []
    for index in range(n_cases):
        bio = sample_patient(index, seed, params, centers)
        clinical = dict(bio.clinical)
        if measure_tumours:
            anatomy = _version(params)[0](bio, seed, params)
            clinical["tumor_volume_ml"] = round(anatomy.tumour_volume_ml, 3)
            clinical["tumor_max_diameter_mm"] = round(anatomy.tumour_max_diameter_mm, 1)
        rows.append(cohort_row(clinical, bio.latent))
    return {key: np.asarray([row[key] for row in rows]) for key in rows[0]}


def _check(n_cases: int, seed: int, centers: int, params: SynthParams | None) -> SynthParams:
    if not isinstance(n_cases, (int, np.integer)) or n_cases < 1:
        raise InputError(f"number of cases must be a positive integer, got {n_cases!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(centers, (int, np.integer)) or centers < 1:
        raise InputError(f"number of centres must be a positive integer, got {centers!r}")
    return (params or SynthParams()).validate()


def _make_case(task: tuple) -> tuple[dict[str, Any], dict[str, float]]:
    """Worker: generate one case and write its folder; returns its cohort row and timings."""
    case_index, seed, params_dict, centers, folder, fmt = task
    params = SynthParams.from_dict(params_dict)
    case = generate_case(case_index, seed, params, centers)
    t = time.process_time()
    write_case_folder(case, Path(folder) / case.case_id, fmt, seed)
    timings = dict(case.timings)
    timings["write"] = time.process_time() - t
    return cohort_row(case.clinical, case.latent), timings


def _worker_init() -> None:
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    _keep_freed_memory()


# glibc mallopt parameters and their defaults (mallopt(3))
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_DEFAULT_TRIM_THRESHOLD, _DEFAULT_MMAP_MAX = 128 * 1024, 65536


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt  # noqa: B018 (glibc only)
        return libc
    except (OSError, AttributeError):
        return None


def _keep_freed_memory() -> None:
    """Let this process reuse freed memory instead of returning it to the system: the renderer
    allocates and frees many arrays of tens of MB (complex spectra of a T2WI: 37 MB), and
    mapping fresh pages for each costs up to a third of a case's CPU time (far more on a
    virtual machine that hands freed pages back to its host). No allocation is served by its
    own mmap (those are unmapped when freed, whatever their size) and the heap is not trimmed.
    glibc only; elsewhere nothing changes. The images do not depend on it."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
        libc.mallopt(_M_MMAP_MAX, 0)


@contextlib.contextmanager
def freed_memory_kept() -> Iterator[None]:
    """`_keep_freed_memory` for the duration of a generation in this process (jobs=1), then the
    glibc defaults again and the retained memory returned to the system."""
    libc = _glibc()
    if libc is None:
        yield
        return
    _keep_freed_memory()
    try:
        yield
    finally:
        libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
        libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
        libc.malloc_trim(0)


def generate_cohort(
    out_dir: str | Path,
    n_cases: int,
    seed: int,
    centers: int = 1,
    fmt: str = "nifti",
    jobs: int = 1,
    params: SynthParams | None = None,
    progress: ProgressCallback | None = None,
    overwrite: bool = False,
) -> CohortResult:
    """Write a synthetic cohort: `out_dir/<case_id>/...`, `cohort.csv`, `generator.json`."""
    params = _check(n_cases, seed, centers, params)
    if fmt not in FORMATS:
        raise InputError(f"unknown output format {fmt!r} (choose {' or '.join(FORMATS)})")
    if not isinstance(jobs, (int, np.integer)) or jobs < 1:
        raise InputError(f"--jobs must be a positive integer, got {jobs!r}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("output path exists and is not a folder", out_dir)
    progress = progress or no_progress
    start = time.perf_counter()
    params_dict = params.to_dict()
    rows: list[dict[str, Any] | None] = [None] * n_cases
    totals: dict[str, float] = {}
    with atomic.atomic_directory(out_dir, overwrite=overwrite) as tmp:
        tasks = [(i, int(seed), params_dict, int(centers), str(tmp), fmt) for i in range(n_cases)]
        progress(0.0, f"generating {n_cases} synthetic case(s)")
        if jobs == 1:
            with freed_memory_kept():
                _collect(map(_make_case, tasks), rows, totals, n_cases, progress)
        else:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=int(jobs), mp_context=context, initializer=_worker_init) as pool:
                _collect(pool.map(_make_case, tasks, chunksize=1), rows, totals, n_cases, progress)
        final_rows = [row for row in rows if row is not None]
        atomic.write_text(tmp / "cohort.csv", cohort_csv(final_rows))
        atomic.write_json(tmp / "generator.json", generator_manifest(params, seed, n_cases, centers, fmt, final_rows))
    progress(1.0, f"wrote {n_cases} case(s) to {out_dir}")
    return CohortResult(out_dir, n_cases, final_rows, time.perf_counter() - start)


def _collect(results, rows, totals, n_cases, progress) -> None:
    for done, (row, timings) in enumerate(results, start=1):
        index = _index_of(row["case_id"])
        rows[index] = row
        for key, value in timings.items():
            totals[key] = totals.get(key, 0.0) + value
        progress(done / n_cases, f"case {done}/{n_cases} {row['case_id']}")


def _index_of(case_id: str) -> int:
    return int(case_id.rsplit("-", 1)[1]) - 1


def _format(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(float(value)):
            raise InputError(f"non-finite value {value!r} in the cohort table")
        return repr(float(value))
    return str(value)


def cohort_csv(rows: list[dict[str, Any]]) -> str:
    """cohort.csv text (one row per case, case order, deterministic number formatting)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = list(rows[0])
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_format(row[c]) for c in columns])
    return buffer.getvalue()


def generator_manifest(params: SynthParams, seed: int, n_cases: int, centers: int, fmt: str,
                       rows: list[dict[str, Any]]) -> dict[str, Any]:
    """generator.json: everything needed to understand and regenerate the cohort."""
    o = params.outcome
    sens, fpr = o.c_lnm_rates()
    _, center_profile, organ_legend = _version(params)
    lnm = np.array([r["lnm"] for r in rows])
    oracle = np.array([r["oracle_lnm_probability"] for r in rows])
    c_lnm = np.array([r["c_lnm"] for r in rows])
    return {
        "generator": GENERATOR_NAME,
        "version": params.generator_version,
        "seed": int(seed),
        "n_cases": int(n_cases),
        "n_centers": int(centers),
        "format": fmt,
        "stage_range": params.stage_range,
        "regenerate": f"cervicalai synth --cases {n_cases} --seed {seed} --centers {centers} --format {fmt} "
                      f"--stage-range {params.stage_range}"
                      + (f" --matrix-scale {params.matrix_scale}" if params.matrix_scale != 1.0 else "")
                      + (f" --generator-version {params.generator_version}"
                         if params.generator_version != GENERATOR_VERSION else "")
                      + (" --no-sagittal" if not params.sagittal_t2 and params.generator_version == GENERATOR_VERSION
                         else ""),
        "parameters": params.to_dict(),
        "center_share": [round(float(v), 6) for v in center_probabilities(centers, params)],
        "centers": [center_profile(i, params).to_dict() for i in range(centers)],
        "units": {
            "ADC": f"integers in {params.adc_unit} (e.g. 850 = 0.85e-3 mm2/s)",
            "T2W, DWI, CET1": "arbitrary scanner units, 12-bit (0-4095), stored as int16",
            "lengths": "mm",
            "volumes": "ml",
            "coordinates": "LPS (DICOM/ITK), T2W physical space = patient anatomy",
        },
        "label_legend": {
            "labels/organs.nii.gz": organ_legend,
            "labels/tumor.nii.gz": "1 = tumour (whole tumour, necrosis included), T2W grid",
            "labels/tumor_ADC.nii.gz, tumor_DWI.nii.gz, tumor_CET1.nii.gz": "1 = tumour on that sequence's own grid",
            "labels/tumor_necrosis.nii.gz": "1 = necrotic part of the tumour, T2W grid",
            "labels/lymph_nodes.nii.gz": "node instance ids on the T2W grid; see generator_truth.json lymph_nodes",
        },
        "case_folder": {
            "nifti": "<case>/T2W.nii.gz ADC.nii.gz DWI.nii.gz CET1.nii.gz"
                     + (" T2W_SAG.nii.gz (sagittal T2WI, not a case role)"
                        if params.generator_version == GENERATOR_VERSION and params.sagittal_t2 else "")
                     + ", labels/, clinical.json, generator_truth.json",
            "dicom": "<case>/dicom/<series>/IM*.dcm (one study, one series per sequence), labels/, clinical.json, "
                     "generator_truth.json",
        },
        "outcome_model": {
            "lnm": {
                "model": "logit P(LNM) = intercept + size*ln(latent_diameter_mm/30) + cellularity*latent_cellularity "
                         "+ heterogeneity*latent_heterogeneity_z + enhancement_heterogeneity*"
                         "latent_enhancement_heterogeneity_z + stromal_invasion*logit(latent_stromal_invasion) "
                         "+ vaginal_extension*[vagina] + parametrial_extension*[parametrium, sidewall, organs]",
                "coefficients": {
                    "intercept": o.intercept, "size": o.size, "cellularity": o.cellularity,
                    "heterogeneity": o.heterogeneity, "enhancement_heterogeneity": o.enhancement_heterogeneity,
                    "stromal_invasion": o.stromal_invasion, "vaginal_extension": o.vaginal_extension,
                    "parametrial_extension": o.parametrial_extension,
                },
                "largest_node_short_axis": "log-normal given LNM only (median/sd in parameters.outcome)",
                "c_lnm_sensitivity": round(sens, 6),
                "c_lnm_false_positive_rate": round(fpr, 6),
                "oracle": "oracle_lnm_probability = sigmoid(latent_lnm_linear_predictor + log LR(c_lnm)), "
                          "the exact P(LNM | image-visible tumour biology, c_LNM)",
            },
            "stage_group": {
                "groups": "surgery: IA-IB2, IIA1; chemoradiotherapy: IB3, IIA2-IVB (seed 000)",
                "oracle": "oracle_stage_probability = P(chemoradiotherapy | latent diameter, visible extension"
                          "[, c_lnm in the full range]) by Bayes' rule over the stage mix and size model",
            },
        },
        "calibration": {
            "seed_004_targets": {"lnm_prevalence": 0.31, "c_lnm_positive_in_lnm_positive": 0.27,
                                 "c_lnm_positive_in_lnm_negative": 0.025, "oracle_auc": "0.80-0.85",
                                 "figo_mix": params.stage_mix_early},
            "this_cohort": {
                "lnm_prevalence": round(float(lnm.mean()), 4),
                "c_lnm_sensitivity": round(float(c_lnm[lnm == 1].mean()), 4) if lnm.any() else None,
                "c_lnm_false_positive_rate": round(float(c_lnm[lnm == 0].mean()), 4) if (lnm == 0).any() else None,
                "oracle_lnm_auc": _auc(lnm, oracle),
            },
        },
    }


def _auc(y: np.ndarray, score: np.ndarray) -> float | None:
    """Mann-Whitney AUC (ties count half); None when only one class is present."""
    y = np.asarray(y).astype(bool)
    pos, neg = np.asarray(score)[y], np.asarray(score)[~y]
    if len(pos) == 0 or len(neg) == 0:
        return None
    # average ranks of ties (scipy.stats.rankdata's default; importing scipy.stats would add a
    # second to every `cervicalai synth` start)
    _, tie_group, tie_count = np.unique(np.concatenate([pos, neg]), return_inverse=True, return_counts=True)
    below = np.cumsum(tie_count) - tie_count
    ranks = below[tie_group] + (tie_count[tie_group] + 1) / 2
    return round(float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))), 6)
