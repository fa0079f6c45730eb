"""Synthetic cohort generator benchmark: seconds per case (one core) and cases/minute with --jobs.

    .venv/bin/python Testing/benchmarks/bench_synth.py [--cases 12] [--cohort-cases 16]
        [--dicom-cases 3] [--out Testing/benchmarks/results/synth.md]

1. One core: `generate_case` + NIfTI case-folder writing for --cases full-size cases in this
   process (SimpleITK limited to one thread). Reported per stage (anatomy and tumour
   layout, T2W, DWI+ADC, CE-T1, sagittal T2W rendering, writing) as CPU seconds (process time:
   what the case costs; on a loaded shared machine it still grows with cache and memory
   contention, so the load average is written with the table) and wall seconds.
2. Throughput: `generate_cohort` of --cohort-cases cases with jobs=1 and jobs=2 (spawned
   worker processes, start-up included), as cases/minute of wall time. On a machine shared
   with other work the wall figures are pessimistic; the CPU figures are the reliable ones.
3. DICOM: the extra cost of writing a case as a DICOM study instead of NIfTI.

The machine, its load average and the commands are written with the table.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def one_core(n_cases: int, seed: int, sagittal: bool = True) -> dict[str, list[float]]:
    import SimpleITK as sitk

    from CervicalAILib.research.synth import SynthParams, generate_case
    from CervicalAILib.research.synth.cohort import freed_memory_kept
    from CervicalAILib.research.synth.writer import write_case_folder

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    params = SynthParams(sagittal_t2=sagittal)
    stats: dict[str, list[float]] = {k: [] for k in ("anatomy", "T2W", "DWI", "CET1", "T2W_SAG", "write", "cpu", "wall",
                                                      "voxels")}
    # as `cervicalai synth` generates (its processes keep freed memory for the next arrays)
    with freed_memory_kept(), tempfile.TemporaryDirectory(prefix="bench_synth_") as tmp:
        generate_case(10_000, seed, params, 5)  # warm-up: imports, first allocations
        for index in range(n_cases):
            cpu0, wall0 = time.process_time(), time.perf_counter()
            case = generate_case(index, seed, params, 5)
            cpu1 = time.process_time()
            write_case_folder(case, Path(tmp) / case.case_id, "nifti", seed)
            cpu2, wall2 = time.process_time(), time.perf_counter()
            for key in ("anatomy", "T2W", "DWI", "CET1", "T2W_SAG"):
                stats[key].append(case.timings.get(key, 0.0))
            stats["write"].append(cpu2 - cpu1)
            stats["cpu"].append(cpu2 - cpu0)
            stats["wall"].append(wall2 - wall0)
            stats["voxels"].append(sum(int(np.prod(im.GetSize())) for im in [*case.images.values(),
                                                                              *case.extra_images.values()]))
            print(f"case {index + 1}/{n_cases}: {cpu2 - cpu0:.2f} s CPU, {wall2 - wall0:.2f} s wall", file=sys.stderr)
    return stats


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (worker processes)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def throughput(n_cases: int, seed: int, jobs: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of all processes) for a cohort of n_cases with `jobs` workers."""
    from CervicalAILib.research.synth import generate_cohort

    with tempfile.TemporaryDirectory(prefix="bench_synth_") as tmp:
        cpu, start = _cpu_seconds(), time.perf_counter()
        generate_cohort(Path(tmp) / "cohort", n_cases, seed, centers=5, jobs=jobs)
        return time.perf_counter() - start, _cpu_seconds() - cpu


def dicom_cost(n_cases: int, seed: int) -> tuple[float, float]:
    from CervicalAILib.research.synth import SynthParams, generate_case
    from CervicalAILib.research.synth.cohort import freed_memory_kept
    from CervicalAILib.research.synth.writer import write_case_folder

    nifti, dicom = [], []
    with freed_memory_kept(), tempfile.TemporaryDirectory(prefix="bench_synth_") as tmp:
        for index in range(n_cases):
            case = generate_case(index, seed, SynthParams(), 5)
            for fmt, sink in (("nifti", nifti), ("dicom", dicom)):
                start = time.process_time()
                write_case_folder(case, Path(tmp) / fmt / case.case_id, fmt, seed)
                sink.append(time.process_time() - start)
            shutil.rmtree(Path(tmp) / "dicom")
            shutil.rmtree(Path(tmp) / "nifti")
    return float(np.mean(nifti)), float(np.mean(dicom))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=12, help="cases for the one-core timing")
    parser.add_argument("--cohort-cases", type=int, default=16, help="cases for the jobs=1/jobs=2 throughput")
    parser.add_argument("--dicom-cases", type=int, default=3, help="cases for the DICOM writing cost (0: skip)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", default=str(REPO / "Testing/benchmarks/results/synth.md"))
    args = parser.parse_args()

    load_before = os.getloadavg()
    stats = one_core(args.cases, args.seed)
    wall_1, cpu_1 = throughput(args.cohort_cases, args.seed, 1)
    wall_2, cpu_2 = throughput(args.cohort_cases, args.seed, 2)
    nifti_write, dicom_write = dicom_cost(args.dicom_cases, args.seed) if args.dicom_cases else (float("nan"),) * 2
    load_after = os.getloadavg()

    def row(name: str, values: list[float]) -> str:
        v = np.asarray(values)
        return f"| {name} | {v.mean():.3f} | {np.median(v):.3f} | {v.max():.3f} |"

    cpu_model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    lines = [
        "# Synthetic cohort generator benchmark",
        "",
        f"Command: `.venv/bin/python Testing/benchmarks/bench_synth.py --cases {args.cases} "
        f"--cohort-cases {args.cohort_cases} --dicom-cases {args.dicom_cases} --seed {args.seed}`",
        "",
        f"Machine: {cpu_model}, {os.cpu_count()} logical CPUs; load average before {load_before[0]:.1f}, "
        f"after {load_after[0]:.1f} (shared machine: wall times include waiting for the CPU).",
        f"Python {platform.python_version()}, numpy {np.__version__}. Full-size cases (default matrices), "
        f"{np.mean(stats['voxels']) / 1e6:.1f} M image voxels per case (T2W + DWI + ADC + CET1 + sagittal T2W), "
        "generator " + __import__("CervicalAILib.research.synth", fromlist=["GENERATOR_VERSION"]).GENERATOR_VERSION + ".",
        "",
        "## One core: CPU seconds per case (wall seconds in the last row)",
        "",
        "| stage | mean | median | max |",
        "|---|---|---|---|",
        row("anatomy + tumour layout", stats["anatomy"]),
        row("T2W rendering + labels", stats["T2W"]),
        row("DWI b0/b-high + ADC rendering", stats["DWI"]),
        row("CE-T1 rendering", stats["CET1"]),
        row("sagittal T2W rendering", stats["T2W_SAG"]),
        row("NIfTI writing, 5 images + 7 labels", stats["write"]),
        row("**whole case, CPU seconds**", stats["cpu"]),
        row("whole case without the sagittal T2W (`--no-sagittal`; its rendering subtracted)",
            list(np.subtract(stats["cpu"], stats["T2W_SAG"]))),
        row("whole case, wall seconds", stats["wall"]),
        "",
        "## Throughput (generate_cohort, worker start-up included)",
        "",
        "Wall: measured on this (shared) machine. CPU-limited: cases/minute when each worker has",
        "a free core, from the CPU seconds all processes actually used (jobs x 60 x cases / CPU s).",
        "",
        "| jobs | cases | wall seconds | cases/minute (wall) | CPU seconds | cases/minute (CPU-limited) |",
        "|---|---|---|---|---|---|",
        f"| 1 | {args.cohort_cases} | {wall_1:.1f} | {60 * args.cohort_cases / wall_1:.1f} | {cpu_1:.1f} | "
        f"{60 * args.cohort_cases / cpu_1:.1f} |",
        f"| 2 | {args.cohort_cases} | {wall_2:.1f} | {60 * args.cohort_cases / wall_2:.1f} | {cpu_2:.1f} | "
        f"{2 * 60 * args.cohort_cases / cpu_2:.1f} |",
        "",
        "## Output format",
        "",
        "| writing one case | CPU seconds |",
        "|---|---|",
        f"| NIfTI case folder | {nifti_write:.3f} |",
        f"| DICOM study (5 series, b0 + b-high DWI) + labels | {dicom_write:.3f} |",
        "",
        "Goal (issue 13 item 7): a few CPU seconds per case on one core (3 s aimed at); 1100 cases at the "
        f"one-core CPU rate take {1100 * np.mean(stats['cpu']) / 60:.0f} CPU-minutes (about half that wall time with --jobs 2 on two free cores).",
        "",
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
