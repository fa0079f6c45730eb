#!/usr/bin/env python3
"""Registration time per pair and accuracy on realistic pelvic MRI sizes.

Synthetic pairs (the test suite's phantom, rendered at clinical sizes) displaced by known rigid
transforms: seconds per pair and the residual error at the tumour (distance between where the
true and the recovered transform map 200 points of the tumour). Plus the real ProstateX ADC
onto its T2WI (time and spread over sampling seeds: no ground truth) when ../shared/refdata is
present, and its high-b DWI for comparison (the reason the ADC is the one registered).

    .venv/bin/python Testing/benchmarks/bench_registration.py [--repeats 3] [--out FILE]

Writes a Markdown table to Testing/benchmarks/results/registration.md (or --out).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "Testing" / "python"))

from test_registration import (  # noqa: E402  (the phantom lives with the tests)
    centred_grid,
    point_errors,
    random_rigid,
    render,
    tumour_points,
)

from CervicalAILib.registration import register_rigid, register_to_t2  # noqa: E402

# The phantom enlarged to a real pelvis (about 250 x 195 mm across, a 44 x 35 x 40 mm tumour) so
# that it fills a clinical field of view as a patient does.
SCALE = 2.2
# (label, fixed grid, moving sequence, moving grid): T2WI ~0.6-0.75 mm in-plane x 4 mm, 256-400 px,
# 20-30 slices; DWI/ADC ~2 mm x 5 mm; CE-T1WI ~1 mm x 3 mm
CASES = [
    ("T2 256x256x20 (0.75x0.75x4) <- DWI 96x96x18 (2x2x5)",
     dict(size=(256, 256, 20), spacing=(0.75, 0.75, 4.0), tilt_deg=6.0), "DWI",
     dict(size=(96, 96, 18), spacing=(2.0, 2.0, 5.0))),
    ("T2 320x320x24 (0.7x0.7x4) <- DWI 128x128x20 (2x2x5)",
     dict(size=(320, 320, 24), spacing=(0.7, 0.7, 4.0), tilt_deg=10.0), "DWI",
     dict(size=(128, 128, 20), spacing=(2.0, 2.0, 5.0))),
    ("T2 400x400x30 (0.6x0.6x4) <- DWI 128x128x24 (2x2x5)",
     dict(size=(400, 400, 30), spacing=(0.6, 0.6, 4.0), tilt_deg=0.0), "DWI",
     dict(size=(128, 128, 24), spacing=(2.0, 2.0, 5.0))),
    ("T2 320x320x24 (0.7x0.7x4) <- ADC 128x128x20 (2x2x5)",
     dict(size=(320, 320, 24), spacing=(0.7, 0.7, 4.0), tilt_deg=10.0), "ADC",
     dict(size=(128, 128, 20), spacing=(2.0, 2.0, 5.0))),
    ("T2 320x320x24 (0.7x0.7x4) <- CE-T1 256x256x40 (1x1x3)",
     dict(size=(320, 320, 24), spacing=(0.7, 0.7, 4.0), tilt_deg=10.0), "CET1",
     dict(size=(256, 256, 40), spacing=(1.0, 1.0, 3.0))),
]


def bench_synthetic(repeats: int) -> list[dict]:
    rows = []
    points = tumour_points(scale=SCALE)
    for label, fixed_spec, sequence, moving_spec in CASES:
        fixed = render(centred_grid(**fixed_spec), "T2W", seed=1, scale=SCALE)
        rng = np.random.default_rng(2026)
        seconds, cpu, errors_max, errors_mean, before, iterations = [], [], [], [], [], []
        for repeat in range(repeats):
            truth = random_rigid(rng, shift_mm=6.0, angle_deg=4.0)
            moving = render(centred_grid(**moving_spec, centre=(2.0, 3.0, -2.0)), sequence, truth, seed=10 + repeat,
                            scale=SCALE)
            cpu_start = time.process_time()
            result = register_rigid(fixed, moving)
            cpu.append(time.process_time() - cpu_start)
            errors = point_errors(truth, result.transform, points)
            seconds.append(result.seconds)
            errors_max.append(errors.max())
            errors_mean.append(errors.mean())
            before.append(point_errors(truth, sitk.Euler3DTransform(), points).mean())
            iterations.append(result.iterations)
        rows.append(
            {
                "pair": label,
                "n": repeats,
                "seconds": f"{np.median(seconds):.2f} (max {np.max(seconds):.2f})",
                "cpu_seconds": f"{np.median(cpu):.2f}",
                "before_mm": f"{np.mean(before):.1f}",
                "mean_err_mm": f"{np.mean(errors_mean):.2f}",
                "max_err_mm": f"{np.max(errors_max):.2f}",
                "iterations": f"{np.median(iterations):.0f}",
            }
        )
        print(rows[-1], flush=True)
    return rows


def bench_study(repeats: int) -> dict:
    """A whole study: DWI (+ its ADC) and CE-T1WI onto a 320x320x24 T2WI, with resampling."""
    fixed = render(centred_grid((320, 320, 24), (0.7, 0.7, 4.0), tilt_deg=10.0), "T2W", seed=1, scale=SCALE)
    rng = np.random.default_rng(7)
    truth_dwi = random_rigid(rng, 6.0, 4.0)
    truth_cet1 = random_rigid(rng, 6.0, 4.0)
    dwi_grid = centred_grid((128, 128, 20), (2.0, 2.0, 5.0), centre=(2.0, 3.0, -2.0))
    images = {
        "T2W": fixed,
        "DWI": render(dwi_grid, "DWI", truth_dwi, seed=3, scale=SCALE),
        "ADC": render(dwi_grid, "ADC", truth_dwi, seed=4, scale=SCALE),
        "CET1": render(centred_grid((256, 256, 40), (1.0, 1.0, 3.0)), "CET1", truth_cet1, seed=5, scale=SCALE),
    }
    times, cpu = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        _, results = register_to_t2(images)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
    errors = {role: point_errors(truth, results[role].transform, tumour_points(scale=SCALE)).max()
              for role, truth in (("DWI", truth_dwi), ("ADC", truth_dwi), ("CET1", truth_cet1))}
    row = {
        "pair": "whole study: DWI+ADC+CE-T1 onto T2 320x320x24, incl. resampling",
        "n": repeats,
        "seconds": f"{np.median(times):.2f} (max {np.max(times):.2f})",
        "cpu_seconds": f"{np.median(cpu):.2f}",
        "before_mm": "",
        "mean_err_mm": "",
        "max_err_mm": ", ".join(f"{role} {error:.2f}" for role, error in errors.items()),
        "iterations": "",
    }
    print(row, flush=True)
    return row


def _real_row(label: str, fixed: sitk.Image, moving: sitk.Image, repeats: int) -> dict:
    cpu_start = time.process_time()
    results = [register_rigid(fixed, moving, seed=seed) for seed in range(1, repeats + 1)]
    cpu = (time.process_time() - cpu_start) / repeats
    shifts = [np.linalg.norm(r.translation_mm) for r in results]
    angles = [r.rotation_deg for r in results]
    row = {
        "pair": label,
        "n": repeats,
        "seconds": f"{np.median([r.seconds for r in results]):.2f} (max {max(r.seconds for r in results):.2f})",
        "cpu_seconds": f"{cpu:.2f}",
        "before_mm": "",
        "mean_err_mm": "",
        "max_err_mm": f"no ground truth; found {min(shifts):.1f}-{max(shifts):.1f} mm, "
        f"{min(angles):.1f}-{max(angles):.1f} deg over seeds 1..{repeats}",
        "iterations": f"{np.median([r.iterations for r in results]):.0f}",
    }
    print(row, flush=True)
    return row


def bench_prostatex(repeats: int) -> list[dict]:
    """The real study: ADC onto T2WI (what register_to_t2 does), and the high-b DWI for comparison."""
    refdata = Path(os.environ.get("CERVICALAI_REFDATA", REPO.parent / "shared" / "refdata")) / "mri"
    if not (refdata / "ProstateX-0000_dicom").is_dir():
        print(f"skipping ProstateX: {refdata} not found")
        return []
    from CervicalAILib.study.load import load_study

    start = time.perf_counter()
    study = load_study(refdata / "ProstateX-0000_dicom")
    t2, adc, dwi = study.image("T2W"), study.image("ADC"), study.image("DWI")
    print(f"ProstateX study loaded in {time.perf_counter() - start:.1f} s")
    return [
        _real_row("ProstateX-0000 (real): T2 384x384x19 (0.5x0.5x3) <- ADC 84x128x19 (2x2x3)", t2, adc, repeats),
        _real_row("ProstateX-0000 (real): T2 <- high-b DWI (b=800) directly, NOT used (see registration/study.py)",
                  t2, dwi, repeats),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="displacements (or seeds) per pair (default 3)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "registration.md")
    args = parser.parse_args(argv)

    rows = bench_synthetic(args.repeats)
    rows.append(bench_study(1))
    rows.extend(bench_prostatex(args.repeats))

    header = ["pair", "n", "seconds", "cpu_seconds", "before_mm", "mean_err_mm", "max_err_mm", "iterations"]
    lines = [
        "# Registration benchmark",
        "",
        f"`{Path(sys.argv[0]).name} --repeats {args.repeats}` on {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, SimpleITK {sitk.Version_VersionString()}, load average at the end "
        f"{os.getloadavg()[0]:.1f}.",
        "Synthetic pairs: known rigid displacement of 6 mm and 4 degrees (random axis and direction); "
        "errors are distances between the true and the recovered mapping of 200 tumour points (mm). "
        "`seconds` is register_rigid's own wall-clock time (median, max over n); `cpu_seconds` the "
        "process CPU time per pair (all threads), which shared-machine load does not inflate.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(str(row[key]) for key in header) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
