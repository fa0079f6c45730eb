"""Benchmark: cohort feature extraction throughput (`cervicalai extract`), cases per minute with --jobs 2.

    .venv/bin/python Testing/benchmarks/bench_extract.py                       # 16 full-size synthetic cases
    .venv/bin/python Testing/benchmarks/bench_extract.py --cases 24 --jobs 2
    .venv/bin/python Testing/benchmarks/bench_extract.py --cohort DIR --encoders PATH2D PATH3D

Generates a full-size synthetic cohort (or takes `--cohort`), then runs `extract_cohort` once per
variant (sequences x encoders), each into a fresh output, and reports:

- wall seconds and cases/minute as measured (the machine may be shared: other processes' load
  stretches the wall clock; the load average is printed);
- CPU seconds of the parent and all worker processes, and the CPU-limited throughput
  jobs x 60 x cases / CPU seconds (what the run gives when each worker has a free core);
- CPU seconds per case and stage inside the workers (image loading, masks, radiomics per
  sequence, each encoder), from the extraction sidecar;
- the projection for seed 004's cohort of 1100 cases.

Writes Testing/benchmarks/results/extract.md (atomically) and prints it.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "Testing" / "benchmarks" / "results" / "extract.md"
STUDY_CASES = 1100


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_variant(cohort: Path, work: Path, name: str, roles: list[str], encoders: list[str], jobs: int) -> dict:
    from CervicalAILib.research.cohort import ExtractionConfig, extract_cohort

    config = ExtractionConfig.build(roles=roles, encoders=encoders)
    out = work / f"{name}.parquet"
    load = os.getloadavg()[0]
    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    result = extract_cohort(cohort, out, config, jobs=jobs)
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    timing = result.sidecar_data["timing"]
    n = len(result.extracted)
    return {
        "name": name, "roles": ",".join(roles), "encoders": ", ".join(e["name"] for e in config.encoders) or "none",
        "jobs": jobs, "cases": n, "failed": len(result.failed), "wall": wall, "cpu": cpu,
        "cases_per_min_wall": 60.0 * n / wall, "cases_per_min_cpu": jobs * 60.0 * n / cpu,
        "worker_cpu_per_case": timing.get("cpu_seconds_per_case"), "stages": timing.get("stage_cpu_seconds_per_case", {}),
        "features": sum(result.sidecar_data["features_per_family"].values()), "load_before": load,
        "load_after": os.getloadavg()[0],
    }


def render(rows: list[dict], args, cohort_note: str) -> str:
    lines = ["# Cohort feature extraction benchmark", "",
             f"Command: `.venv/bin/python Testing/benchmarks/bench_extract.py {' '.join(sys.argv[1:])}`".rstrip(), "",
             f"Machine: {platform.machine()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}; "
             "a shared machine: wall times include waiting for the CPU (load average before/after each run below), "
             "so the CPU-limited figure is the one to plan with.", "", f"Cohort: {cohort_note}.", "",
             "## Throughput", "",
             "| variant | sequences | encoders | features | jobs | cases | wall s | cases/min (wall) | CPU s (all processes) | "
             "cases/min (CPU-limited) | load before / after |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['roles']} | {r['encoders']} | {r['features']} | {r['jobs']} | {r['cases']} | "
                     f"{r['wall']:.1f} | {r['cases_per_min_wall']:.1f} | {r['cpu']:.1f} | {r['cases_per_min_cpu']:.1f} | "
                     f"{r['load_before']:.1f} / {r['load_after']:.1f} |")
    stages = sorted({s for r in rows for s in r["stages"]}, key=lambda s: (not s.startswith("load"), s))
    lines += ["", "## CPU seconds per case inside the workers, by stage", "",
              "| stage | " + " | ".join(r["name"] for r in rows) + " |", "|---" * (len(rows) + 1) + "|"]
    for stage in stages:
        lines.append(f"| {stage} | " + " | ".join(f"{r['stages'].get(stage, 0.0):.3f}" if stage in r["stages"] else "/"
                                                   for r in rows) + " |")
    lines.append("| **whole case** | " + " | ".join(f"**{r['worker_cpu_per_case']:.3f}**" for r in rows) + " |")
    lines += ["", f"## Projection for the {STUDY_CASES}-case study cohort", "",
              "| variant | minutes at the measured wall rate | minutes CPU-limited (2 free cores) |", "|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {STUDY_CASES / r['cases_per_min_wall']:.1f} | "
                     f"{STUDY_CASES / r['cases_per_min_cpu'] * r['jobs'] / 2:.1f} |")
    lines += ["", "Worker start-up (spawned processes importing SimpleITK, pyradiomics, onnxruntime; about 3 CPU s each) "
              "is included in the CPU seconds of all processes, so small cohorts understate the throughput of large ones."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cohort", type=Path, help="existing cohort folder (default: generate --cases full-size cases)")
    parser.add_argument("--cases", type=int, default=16, help="cases to generate (default 16)")
    parser.add_argument("--seed", type=int, default=4, help="generator seed (default 4, the study's)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--encoders", nargs="*", default=["2d", "3d"],
                        help="encoders (default: the shipped 2d and 3d; bundle folders otherwise)")
    parser.add_argument("--quick", action="store_true", help="only the study configuration (no variants)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results Markdown (default: results/extract.md)")
    args = parser.parse_args(argv)

    from CervicalAILib.core.atomic import write_text

    with tempfile.TemporaryDirectory(prefix="bench_extract_") as tmp:
        work = Path(tmp)
        if args.cohort is None:
            from CervicalAILib.research.synth import generate_cohort

            cohort = work / "cohort"
            t0 = time.perf_counter()
            generate_cohort(cohort, args.cases, args.seed, centers=5, jobs=args.jobs)
            cohort_note = (f"{args.cases} full-size synthetic cases (`cervicalai synth --cases {args.cases} --seed {args.seed} "
                           f"--centers 5`, generated in {time.perf_counter() - t0:.0f} s)")
        else:
            cohort = args.cohort
            cohort_note = f"{cohort}"
        variants = [("study: T2W,DWI,CET1 + encoders", ["T2W", "DWI", "CET1"], args.encoders)]
        if not args.quick:
            variants += [("radiomics only", ["T2W", "DWI", "CET1"], []),
                         ("all four + encoders", ["T2W", "ADC", "DWI", "CET1"], args.encoders)]
        rows = []
        for name, roles, encoders in variants:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            rows.append(run_variant(cohort, work, name.split(":")[0].replace(" ", "_").replace(",", ""), roles,
                                    encoders, args.jobs) | {"name": name})
        text = render(rows, args, cohort_note)
    write_text(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
