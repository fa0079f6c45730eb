"""Benchmark: loading a DICOM study (headers, grouping, roles) and building its volumes.

    .venv/bin/python Testing/benchmarks/bench_study_loading.py [--study DIR] [--repeats 5]

Default study: ../shared/refdata/mri/ProstateX-0000_dicom (164 images in 7 series, 16 MB).

- cold: a fresh Python process whose first act is to drop the study's files from the page cache
  (posix_fadvise DONTNEED, best effort without root), then imports the engine, loads the study
  and builds the T2W, DWI (high b) and ADC volumes. Repeated `--repeats` times, median shown.
- warm: one process, files in the page cache and modules imported, the same work repeated.

Writes Testing/benchmarks/results/study_loading.md (atomically) and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_STUDY = REPO.parent / "shared" / "refdata" / "mri" / "ProstateX-0000_dicom"
RESULTS = REPO / "Testing" / "benchmarks" / "results" / "study_loading.md"
ROLES = ("T2W", "DWI", "ADC")


def drop_from_page_cache(folder: Path) -> int:
    """Ask the kernel to forget the cached pages of every file under `folder`; returns the count."""
    count = 0
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                count += 1
            finally:
                os.close(fd)
    return count


def measure_once(study_dir: Path) -> dict[str, float]:
    """Timings (s) of one load: import, headers+roles, each volume build."""
    start = time.perf_counter()
    from CervicalAILib.study.load import load_study

    imported = time.perf_counter()
    study = load_study(study_dir)
    loaded = time.perf_counter()
    timings = {"import": imported - start, "scan + roles": loaded - imported}
    for role in ROLES:
        t0 = time.perf_counter()
        study.image(role)
        timings[f"build {role}"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - start
    timings["series"] = len(study.series)
    timings["images"] = sum(s.n_files for s in study.series if s.source == "dicom")
    return timings


def child(mode: str, study_dir: Path, repeats: int) -> None:
    if mode == "cold":
        drop_from_page_cache(study_dir)
        result = measure_once(study_dir)
    else:
        measure_once(study_dir)  # fill the page cache and import everything
        runs = [measure_once(study_dir) for _ in range(repeats)]
        result = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def run_child(mode: str, study_dir: Path, repeats: int) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--study", str(study_dir), "--repeats", str(repeats)],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path, default=DEFAULT_STUDY)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--child", choices=("cold", "warm"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.study, args.repeats)
        return 0
    if not args.study.is_dir():
        print(f"study folder not found: {args.study}", file=sys.stderr)
        return 1
    cold_runs = [run_child("cold", args.study, 1) for _ in range(args.repeats)]
    cold = {key: statistics.median(run[key] for run in cold_runs) for key in cold_runs[0]}
    warm = run_child("warm", args.study, args.repeats)
    size_mb = sum(p.stat().st_size for p in args.study.rglob("*") if p.is_file()) / 2**20
    keys = ["import", "scan + roles"] + [f"build {role}" for role in ROLES] + ["total"]
    lines = [
        "# Study loading",
        "",
        f"Study: `{args.study.name}` ({int(cold['images'])} DICOM images, {int(cold['series'])} series, "
        f"{size_mb:.1f} MB). Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}. Median of {args.repeats} runs.",
        "",
        "Cold = fresh process, study files dropped from the page cache first (posix_fadvise, best effort); "
        "warm = same process, files cached, modules imported.",
        "",
        "| step | cold (s) | warm (s) |",
        "|---|---:|---:|",
    ]
    for key in keys:
        warm_value = "-" if key == "import" else f"{warm[key]:.3f}"
        lines.append(f"| {key} | {cold[key]:.3f} | {warm_value} |")
    lines.append(f"| peak resident memory (MB) | {cold['peak_rss_mb']:.0f} | {warm['peak_rss_mb']:.0f} |")
    lines += ["", f"Command: `.venv/bin/python Testing/benchmarks/bench_study_loading.py --repeats {args.repeats}`", ""]
    text = "\n".join(lines)
    sys.path.insert(0, str(REPO / "CervicalAI"))
    from CervicalAILib.core.atomic import write_text

    write_text(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
