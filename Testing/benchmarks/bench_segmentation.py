"""Segmentation benchmark: quality and speed on held-out synthetic cases, and the real ProstateX study.

    .venv/bin/python Testing/benchmarks/bench_segmentation.py --cohort /work/seg_runs/bench-seed9001 \
        [--cases 30] [--out Testing/benchmarks/results/segmentation.md]

The cohort must come from a generator seed never used in training. Per case: the study is
loaded and co-registered onto the T2WI (timed, but excluded from the inference figure), then a
fresh worker process segments every registered case with the default multi-sequence bundle and
with the T2WI-only bundle, so the reported peak memory is that of an inference process alone.
Dice, HD95 (mm) and volume error are measured on the T2WI grid against labels/tumor.nii.gz and
reported overall and per size bin of the true maximum 3D diameter (< 2 cm, 2-4 cm, > 4 cm).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[2]
PROSTATEX = REPO.parent / "shared" / "refdata" / "mri" / "ProstateX-0000_dicom"
SIZE_BINS = (("< 2 cm", 0.0, 20.0), ("2-4 cm", 20.0, 40.0), ("> 4 cm", 40.0, float("inf")))


def register_cases(case_dirs: list[Path], work: Path) -> list[dict]:
    """Load + co-register every case once; write the registered images for the inference worker."""
    from CervicalAILib.cli.segment import load_images

    records = []
    for number, case_dir in enumerate(case_dirs):
        start = time.perf_counter()
        images, _, _ = load_images(case_dir)
        seconds = time.perf_counter() - start
        target = work / case_dir.name
        target.mkdir(parents=True, exist_ok=True)
        for role, image in images.items():
            sitk.WriteImage(image, str(target / f"{role}.nii.gz"), False)
        records.append({"case": case_dir.name, "case_dir": str(case_dir), "registered": str(target), "register_s": seconds})
        print(f"registered {number + 1}/{len(case_dirs)} {case_dir.name} in {seconds:.1f} s", file=sys.stderr, flush=True)
    return records


def _inference_worker(records: list[dict], bundle: str | None, roles: list[str] | None, queue) -> None:
    """Runs in a fresh process: segment every registered case; report results and peak RSS."""
    from CervicalAILib.segmentation import segment_case

    results = []
    for record in records:
        folder = Path(record["registered"])
        images = {p.name.split(".")[0]: sitk.ReadImage(str(p)) for p in sorted(folder.glob("*.nii.gz"))}
        if roles:
            images = {role: image for role, image in images.items() if role in roles}
        start = time.perf_counter()
        result = segment_case(images, bundle=bundle)
        seconds = time.perf_counter() - start
        mask_path = folder / f"pred-{'t2' if roles else 'default'}.nii.gz"
        sitk.WriteImage(result.mask, str(mask_path), False)
        results.append({**record, "seconds": seconds, "summary": result.summary, "mask": str(mask_path)})
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    queue.put({"results": results, "peak_rss_mb": peak_mb})


def run_inference(records: list[dict], bundle: str | None = None, roles: list[str] | None = None) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_inference_worker, args=(records, bundle, roles, queue))
    process.start()
    output = queue.get()
    process.join()
    return output


def score(results: list[dict]) -> list[dict]:
    from CervicalAILib.io import measurements as measure

    rows = []
    for item in results:
        truth = sitk.ReadImage(str(Path(item["case_dir"]) / "labels" / "tumor.nii.gz"))
        truth = sitk.Cast(truth > 0, sitk.sitkUInt8)
        prediction = sitk.ReadImage(item["mask"])
        prediction.CopyInformation(truth)  # same grid by construction (checked in the tests)
        true_ml, pred_ml = measure.volume_ml(truth), measure.volume_ml(prediction)
        hd95 = measure.hausdorff95_mm(prediction, truth)
        rows.append(
            {
                "case": item["case"],
                "true_diameter_mm": measure.max_diameter_mm(truth),
                "dice": measure.dice(prediction, truth),
                "hd95_mm": hd95,
                "true_ml": true_ml,
                "pred_ml": pred_ml,
                "volume_error_ml": pred_ml - true_ml,
                "volume_error_percent": 100.0 * (pred_ml - true_ml) / true_ml if true_ml > 0 else float("nan"),
                "confidence": item["summary"]["confidence"],
                "inference_s": item["seconds"],
                "register_s": item["register_s"],
                "model": item["summary"]["model"]["label"],
            }
        )
    return rows


def _median(values) -> float:
    values = [v for v in values if np.isfinite(v)]
    return float(statistics.median(values)) if values else float("nan")


def summarise(rows: list[dict]) -> list[tuple[str, int, float, float, float, float, float]]:
    table = []
    groups = [("all", rows)] + [
        (name, [r for r in rows if low <= r["true_diameter_mm"] < high]) for name, low, high in SIZE_BINS
    ]
    for name, group in groups:
        if not group:
            table.append((name, 0) + (float("nan"),) * 5)
            continue
        table.append(
            (
                name,
                len(group),
                _median(r["dice"] for r in group),
                float(np.mean([r["dice"] for r in group])),
                _median(r["hd95_mm"] for r in group),
                _median(abs(r["volume_error_percent"]) for r in group),
                _median(r["volume_error_ml"] for r in group),
            )
        )
    return table


def prostatex() -> dict | None:
    """The real study: it must run and give a result on the T2WI geometry (there is no cervix)."""
    if not PROSTATEX.is_dir():
        return None
    from CervicalAILib.cli.segment import load_images
    from CervicalAILib.io.geometry import same_grid
    from CervicalAILib.segmentation import segment_case

    start = time.perf_counter()
    images, registration, _ = load_images(PROSTATEX)
    register_s = time.perf_counter() - start
    result = segment_case(images)
    summary = result.summary
    return {
        "roles": sorted(images),
        "register_s": round(register_s, 2),
        "inference_s": summary["seconds"]["total"],
        "same_geometry_as_t2w": same_grid(result.mask, images["T2W"]),
        "tumor_found": summary["tumor_found"],
        "volume_ml": summary["volume_ml"],
        "max_diameter_mm": summary["max_diameter_mm"],
        "confidence": summary["confidence"],
        "flagged_slices": summary["flagged_slices"][:5],
        "model": summary["model"]["label"],
        "warnings": summary["warnings"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cohort", type=Path, required=True, help="held-out synthetic cohort (unseen seed)")
    parser.add_argument("--cases", type=int, default=30, help="number of cases (default 30)")
    parser.add_argument("--out", type=Path, default=REPO / "Testing" / "benchmarks" / "results" / "segmentation.md")
    parser.add_argument("--skip-prostatex", action="store_true")
    args = parser.parse_args(argv)

    from CervicalAILib.io.case import is_case_folder

    case_dirs = sorted(p for p in args.cohort.iterdir() if is_case_folder(p))[: args.cases]
    if not case_dirs:
        parser.error(f"no case folders in {args.cohort}")
    generator = args.cohort / "generator.json"
    generator_info = json.loads(generator.read_text()) if generator.is_file() else {}
    with tempfile.TemporaryDirectory(prefix="bench-seg-") as tmp:
        records = register_cases(case_dirs, Path(tmp))
        runs = {}
        for label, roles in (("multi-sequence (default)", None), ("T2WI-only", ["T2W"])):
            output = run_inference(records, roles=roles)
            rows = score(output["results"])
            runs[label] = {"rows": rows, "peak_rss_mb": output["peak_rss_mb"], "table": summarise(rows)}
            print(f"{label}: median Dice {runs[label]['table'][0][2]:.3f}", file=sys.stderr, flush=True)
    real = None if args.skip_prostatex else prostatex()

    lines = [
        "# Segmentation benchmark",
        "",
        f"Command: `.venv/bin/python Testing/benchmarks/bench_segmentation.py --cohort {args.cohort} --cases {args.cases}`",
        "",
        f"Held-out cohort: {len(case_dirs)} cases, generator seed {generator_info.get('seed', '?')} "
        f"(version {generator_info.get('version', generator_info.get('generator_version', '?'))}), never used in training. "
        "Metrics on the T2WI grid against `labels/tumor.nii.gz`; size bins by the true maximum 3D diameter. "
        "Inference time = `segment_case` (preprocessing, two network passes, resampling, post-processing, "
        "measurements), registration excluded; peak memory = peak RSS of the inference process.",
        "",
    ]
    for label, run in runs.items():
        rows = run["rows"]
        seconds = [r["inference_s"] for r in rows]
        lines += [
            f"## {label}: {rows[0]['model']}",
            "",
            "| size bin | cases | median Dice | mean Dice | median HD95 (mm) | median abs volume error (%) | median volume error (mL) |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, n, med, mean, hd, vol_pct, vol_ml in run["table"]:
            lines.append(f"| {name} | {n} | {med:.3f} | {mean:.3f} | {hd:.2f} | {vol_pct:.1f} | {vol_ml:+.2f} |")
        lines += [
            "",
            f"Inference per case: median {statistics.median(seconds):.2f} s, max {max(seconds):.2f} s; "
            f"peak memory of the inference process {run['peak_rss_mb']:.0f} MB. "
            f"Registration (excluded): median {statistics.median(r['register_s'] for r in rows):.1f} s per case.",
            "",
        ]
    lines += ["## Per case (multi-sequence model)", "", "| case | true diameter (mm) | Dice | HD95 (mm) | true mL | predicted mL | confidence | inference s |", "|---|---|---|---|---|---|---|---|"]
    for r in runs["multi-sequence (default)"]["rows"]:
        lines.append(
            f"| {r['case']} | {r['true_diameter_mm']:.1f} | {r['dice']:.3f} | {r['hd95_mm']:.2f} | {r['true_ml']:.2f} | "
            f"{r['pred_ml']:.2f} | {r['confidence']:.3f} | {r['inference_s']:.2f} |"
        )
    lines += ["", "## Real study: ProstateX-0000 (prostate, no cervix)", ""]
    if real is None:
        lines.append("not run (`../shared/refdata` absent or --skip-prostatex)")
    else:
        lines.append("```json")
        lines.append(json.dumps(real, indent=2))
        lines.append("```")
    lines.append("")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    args.out.with_suffix(".json").write_text(
        json.dumps({label: run["rows"] for label, run in runs.items()} | {"prostatex": real}, indent=1, default=float)
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
