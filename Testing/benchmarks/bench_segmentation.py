"""Segmentation benchmark: quality and speed on held-out synthetic cases, and the real ProstateX study.

    .venv/bin/python Testing/benchmarks/bench_segmentation.py --cohort /work/seg_runs/bench-seed9001 \
        [--cases 30] [--model BUNDLE] [--t2-model BUNDLE] [--out Testing/benchmarks/results/segmentation.md] \
        [--figure docs/figures/prostatex_organs.png]

The cohort must come from a generator seed never used in training. Per case: the study is
loaded and co-registered onto the T2WI (timed, but excluded from the inference figure), then a
fresh worker process segments every registered case with the default multi-sequence bundle and
with the T2WI-only bundle, so the reported peak memory is that of an inference process alone.
Dice, HD95 (mm) and volume error are measured on the T2WI grid against labels/tumor.nii.gz and
reported overall and per size bin of the true maximum 3D diameter (< 2 cm, 2-4 cm, > 4 cm).
When the bundle segments anatomy, each organ's Dice and HD95 against the case's labels/organs.nii.gz
(matched by name through its label table) is reported too, with the whole cervix (cervix + tumour,
as real-data studies contour it: the cervix label is only the stroma the tumour left) and the whole
uterus (uterus + cervix + tumour, the "uterus" of most multi-structure studies); the out-of-distribution score of
every case gives the false-alarm rate on held-out synthetic cases, to compare with the real study.
With --figure, the real study's T2WI is drawn through the centre of the bladder the network found
(axial and sagittal) with every organ it found outlined, to check by eye that they lie where they are.
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
TUMOUR_VOLUME_BINS = (("< 5 mL", 0.0, 5.0), ("5-20 mL", 5.0, 20.0), ("20-50 mL", 20.0, 50.0), ("> 50 mL", 50.0, float("inf")))
# the T2WI slice plane's tilt against the axial plane (cervical MRI is often planned perpendicular to the canal)
TILT_BINS = (("< 25 deg", 0.0, 25.0), ("25-40 deg", 25.0, 40.0), (">= 40 deg", 40.0, 90.0))
WHOLE_CERVIX = "whole cervix (cervix + tumour)"
WHOLE_UTERUS = "whole uterus (uterus + cervix + tumour)"


def register_cases(case_dirs: list[Path], work: Path) -> list[dict]:
    """Load + co-register every case once; write the registered images for the inference worker."""
    from CervicalAILib.pipeline.segment import load_images

    records = []
    for number, case_dir in enumerate(case_dirs):
        start = time.perf_counter()
        images = load_images(case_dir).images
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
        tag = "t2" if roles else "default"
        mask_path = folder / f"pred-{tag}.nii.gz"
        mask = result.mask
        if mask is None:  # the anatomy gate recognised no cervix/uterus: no contour
            mask = sitk.Image(images["T2W"].GetSize(), sitk.sitkUInt8)
            mask.CopyInformation(images["T2W"])
        sitk.WriteImage(mask, str(mask_path), False)
        organs_path = None
        if result.organs is not None:
            organs_path = folder / f"organs-{tag}.nii.gz"
            sitk.WriteImage(result.organs, str(organs_path), False)
        results.append({**record, "seconds": seconds, "summary": result.summary, "mask": str(mask_path),
                        "organs": str(organs_path) if organs_path else None, "organ_labels": result.organ_labels})
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


def organ_scores(item: dict) -> tuple[dict[str, float], dict[str, float]]:
    """Dice and HD95 (mm; inf when only one side has the organ) of each predicted organ against the case's true
    organ label map, matched by name, plus the whole cervix and the whole uterus."""
    from CervicalAILib.contracts.label_table import label_mask, read_label_table
    from CervicalAILib.io.measurements import hausdorff95_mm, mask_dice
    from CervicalAILib.segmentation.finish import to_image

    case_dir = Path(item["case_dir"])
    if not item.get("organs") or not (case_dir / "labels" / "organs.nii.gz").is_file():
        return {}, {}
    table = read_label_table(case_dir, "organs")
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(case_dir / "labels" / "organs.nii.gz")))
    organs_image = sitk.ReadImage(item["organs"])
    predicted = sitk.GetArrayFromImage(organs_image)
    labels = item["organ_labels"]
    pairs = {name: (predicted == value, label_mask(truth, table[name])) for name, value in labels.items() if name in table}
    # The cervix label is the stroma the tumour left; real-data studies usually contour the whole cervix
    # (stroma and tumour): the union of the cervix and the tumour, on both sides, is that structure.
    if "cervix" in pairs:
        true_tumour = sitk.GetArrayFromImage(sitk.ReadImage(str(case_dir / "labels" / "tumor.nii.gz"))) > 0
        found_tumour = sitk.GetArrayFromImage(sitk.ReadImage(item["mask"])) > 0
        pairs[WHOLE_CERVIX] = (pairs["cervix"][0] | found_tumour, pairs["cervix"][1] | true_tumour)
        # Multi-structure networks for cervical cancer MRI mostly contour the uterus with its cervix and
        # tumour as one organ: this is the figure to set beside theirs.
        if "uterus" in pairs:
            pairs[WHOLE_UTERUS] = (pairs["uterus"][0] | pairs[WHOLE_CERVIX][0], pairs["uterus"][1] | pairs[WHOLE_CERVIX][1])

    dice = {name: mask_dice(found, true) for name, (found, true) in pairs.items()}
    hd95 = {name: hausdorff95_mm(to_image(found.astype(np.uint8), organs_image), to_image(true.astype(np.uint8), organs_image))
            for name, (found, true) in pairs.items()}
    return dice, hd95


def score(results: list[dict]) -> list[dict]:
    from CervicalAILib.io import measurements as measure
    from CervicalAILib.io.geometry import plane_tilt_deg

    rows = []
    for item in results:
        truth = sitk.ReadImage(str(Path(item["case_dir"]) / "labels" / "tumor.nii.gz"))
        truth = sitk.Cast(truth > 0, sitk.sitkUInt8)
        prediction = sitk.ReadImage(item["mask"])
        prediction.CopyInformation(truth)  # same grid by construction (checked in the tests)
        true_ml, pred_ml = measure.volume_ml(truth), measure.volume_ml(prediction)
        hd95 = measure.hausdorff95_mm(prediction, truth)
        organ_dice, organ_hd95 = organ_scores(item)
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
                "ood_score": item["summary"].get("ood", {}).get("score"),
                "gate": item["summary"].get("anatomy_gate", {}).get("anatomy_found"),
                "gate_found_ml": item["summary"].get("anatomy_gate", {}).get("anatomy_found_ml"),  # cervix, uterus
                "organ_dice": organ_dice,
                "organ_hd95_mm": organ_hd95,
                "t2_tilt_deg": round(plane_tilt_deg(truth), 1),
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


def organ_table(rows: list[dict]) -> list[str]:
    names = sorted({name for r in rows for name in r["organ_dice"]})
    if not names:
        return []
    lines = ["| organ | cases | median Dice | mean Dice | cases at Dice >= 0.85 | median HD95 (mm) | HD95 infinite (organ on one side only) |",
             "|---|---|---|---|---|---|---|"]
    for name in names:
        values = [r["organ_dice"][name] for r in rows if name in r["organ_dice"]]
        share = 100.0 * sum(v >= 0.85 for v in values) / len(values)
        # an organ missed on one side has an infinite HD95: it stays in the median (as the worst), and is counted
        distances = [r["organ_hd95_mm"][name] for r in rows if name in r.get("organ_hd95_mm", {})]
        hd95 = f"{statistics.median(distances):.2f}" if distances else "-"
        missed = sum(d == float("inf") for d in distances)
        lines.append(f"| {name} | {len(values)} | {_median(values):.3f} | {float(np.mean(values)):.3f} | {share:.0f}% "
                     f"| {hd95} | {missed} |")
    # The cervix label is the stroma the tumour has not replaced: around a large tumour it is a thin rim,
    # whose Dice falls with the tumour's size; the same breakdown for every organ shows whether it is that.
    header = "| true tumour volume | cases | " + " | ".join(names) + " |"
    lines += ["", "Organ median Dice by the true tumour volume:", "", header, "|---|---|" + "---|" * len(names)]
    for label, low, high in TUMOUR_VOLUME_BINS:
        group = [r for r in rows if low <= r["true_ml"] < high]
        cells = [f"{_median(r['organ_dice'][n] for r in group if n in r['organ_dice']):.3f}" for n in names]
        lines.append(f"| {label} | {len(group)} | " + " | ".join(cells) + " |")
    # An oblique series on a working grid that keeps its slice plane shows the network tilted anatomy.
    header = "| T2WI slice-plane tilt | cases | tumour | " + " | ".join(names) + " |"
    lines += ["", "Median Dice by the tilt of the T2WI slice plane against the axial plane:", "", header,
              "|---|---|---|" + "---|" * len(names)]
    for label, low, high in TILT_BINS:
        group = [r for r in rows if low <= r["t2_tilt_deg"] < high]
        cells = [f"{_median(r['dice'] for r in group):.3f}"]
        cells += [f"{_median(r['organ_dice'][n] for r in group if n in r['organ_dice']):.3f}" for n in names]
        lines.append(f"| {label} | {len(group)} | " + " | ".join(cells) + " |")
    return lines + [""]


def ood_line(rows: list[dict]) -> str:
    scores = [r["ood_score"] for r in rows if r["ood_score"] is not None]
    if not scores:
        return "Out-of-distribution score: not in this bundle."
    flagged = sum(score > 1.0 for score in scores)
    by_cohort: dict[str, list[float]] = {}  # case ids start with the cohort's prefix, e.g. SYN9002-A-0002
    for r in rows:
        if r["ood_score"] is not None:
            by_cohort.setdefault(r["case"].split("-")[0], []).append(r["ood_score"])
    split = ", ".join(f"{name} {sum(v > 1.0 for v in values)} of {len(values)}" for name, values in by_cohort.items())
    return (f"Out-of-distribution score on these held-out synthetic cases: median {_median(scores):.2f}, max "
            f"{max(scores):.2f}; false alarms (score > 1) {flagged} of {len(scores)} ({100 * flagged / len(scores):.1f}%"
            f"{'; ' + split if len(by_cohort) > 1 else ''}). "
            f"Anatomy gate: no cervix/uterus recognised in {sum(r['gate'] is False for r in rows)} case(s).")


def prostatex(bundle: str | None = None, figure: Path | None = None) -> dict | None:
    """The real study: it must run and give a result on the T2WI geometry (there is no cervix)."""
    if not PROSTATEX.is_dir():
        return None
    from CervicalAILib.io.geometry import same_grid
    from CervicalAILib.pipeline.segment import load_images
    from CervicalAILib.segmentation import segment_case

    start = time.perf_counter()
    images = load_images(PROSTATEX).images
    register_s = time.perf_counter() - start
    result = segment_case(images, bundle=bundle)
    summary = result.summary
    if figure is not None and result.organs is not None:
        draw_organs(images["T2W"], result.organs, result.organ_labels, figure)
    return {
        "roles": sorted(images),
        "register_s": round(register_s, 2),
        "inference_s": summary["seconds"]["total"],
        "same_geometry_as_t2w": same_grid(result.mask, images["T2W"]) if result.mask is not None else None,
        "status": summary["status"],
        "anatomy_gate": summary.get("anatomy_gate"),
        "ood": {k: v for k, v in summary.get("ood", {}).items() if k in ("available", "score", "unusual", "reason")},
        "organs": summary.get("organs", []),
        "tumor_found": summary["tumor_found"],
        "volume_ml": summary["volume_ml"],
        "max_diameter_mm": summary["max_diameter_mm"],
        "confidence": summary["confidence"],
        "flagged_slices": summary["flagged_slices"][:5],
        "model": summary["model"]["label"],
        "warnings": summary["warnings"],
    }


def draw_organs(t2w: sitk.Image, organs: sitk.Image, labels: dict[str, int], out: Path) -> None:
    """Axial and sagittal T2WI slices through the centre of the bladder found (or of all organs found),
    every organ outlined in its own colour, on the voxel grid (the sagittal view stretched to mm)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a benchmark machine
    import matplotlib.pyplot as plt

    image = sitk.GetArrayFromImage(t2w).astype(np.float32)  # z, y, x
    label_map = sitk.GetArrayFromImage(organs)
    found = {name: value for name, value in labels.items() if np.any(label_map == value)}
    centre_mask = label_map == labels["bladder"] if "bladder" in found else label_map > 0
    if not centre_mask.any():
        return
    z, y, x = (int(round(v)) for v in np.argwhere(centre_mask).mean(axis=0))
    low, high = np.percentile(image, [1, 99.5])
    spacing_x, _, spacing_z = t2w.GetSpacing()
    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.2), gridspec_kw={"width_ratios": [1, 1]})
    views = (("axial", image[z], label_map[z], 1.0), ("sagittal", image[:, :, x], label_map[:, :, x], spacing_z / t2w.GetSpacing()[1]))
    for axis, (title, plane, plane_labels, aspect) in zip(axes, views, strict=True):
        origin = "upper" if title == "axial" else "lower"  # sagittal: head at the top
        axis.imshow(plane, cmap="gray", vmin=low, vmax=high, aspect=aspect, origin=origin, interpolation="nearest")
        for index, (name, value) in enumerate(sorted(found.items(), key=lambda item: item[1])):
            if np.any(plane_labels == value):
                axis.contour(plane_labels == value, levels=[0.5], colors=[colours(index)], linewidths=1.2)  # pixel centres, as imshow
                axis.plot([], [], color=colours(index), label=name)
        axis.set_title(f"{title} slice through the bladder found")
        axis.axis("off")
    axes[0].legend(loc="lower left", fontsize=8, framealpha=0.7)
    fig.suptitle("ProstateX-0000 (male pelvis, real T2WI): structures found by the network; no cervix or uterus", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    print(f"figure written: {out} (organs found: {', '.join(sorted(found)) or 'none'}; spacing x {spacing_x:.2f} mm)",
          file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cohort", type=Path, nargs="+", required=True,
                        help="held-out synthetic cohort(s) (seeds never used in training or calibration)")
    parser.add_argument("--cases", type=int, default=30, help="number of cases per cohort (default 30)")
    parser.add_argument("--out", type=Path, default=REPO / "Testing" / "benchmarks" / "results" / "segmentation.md")
    parser.add_argument("--skip-prostatex", action="store_true")
    parser.add_argument("--model", help="multi-sequence bundle to test (default: the shipped one)")
    parser.add_argument("--t2-model", help="T2WI-only bundle to test (default: the shipped fallback)")
    parser.add_argument("--figure", type=Path, help="PNG of the organs found on the real study (multi-sequence model)")
    args = parser.parse_args(argv)

    from CervicalAILib.io.case import is_case_folder

    case_dirs, generators = [], []
    for cohort in args.cohort:
        found = sorted(p for p in cohort.iterdir() if is_case_folder(p))[: args.cases]
        if not found:
            parser.error(f"no case folders in {cohort}")
        case_dirs += found
        generator = cohort / "generator.json"
        info = json.loads(generator.read_text()) if generator.is_file() else {}
        generators.append(f"seed {info.get('seed', '?')} ({len(found)} cases, version "
                          f"{info.get('version', info.get('generator_version', '?'))})")
    with tempfile.TemporaryDirectory(prefix="bench-seg-") as tmp:
        records = register_cases(case_dirs, Path(tmp))
        runs = {}
        for label, roles, bundle in (("multi-sequence (default)", None, args.model), ("T2WI-only", ["T2W"], args.t2_model)):
            output = run_inference(records, bundle=bundle, roles=roles)
            rows = score(output["results"])
            runs[label] = {"rows": rows, "peak_rss_mb": output["peak_rss_mb"], "table": summarise(rows)}
            print(f"{label}: median Dice {runs[label]['table'][0][2]:.3f}", file=sys.stderr, flush=True)
    real = None if args.skip_prostatex else prostatex(args.model, args.figure)

    lines = [
        "# Segmentation benchmark",
        "",
        "Command: `.venv/bin/python Testing/benchmarks/bench_segmentation.py --cohort "
        f"{' '.join(str(c) for c in args.cohort)} --cases {args.cases}`",
        "",
        f"Held-out cases: {len(case_dirs)}, generator {'; '.join(generators)}, never used in training or calibration. "
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
            ood_line(rows),
            "",
        ] + organ_table(rows)
    lines += ["## Per case (multi-sequence model)", "", "| case | true diameter (mm) | Dice | HD95 (mm) | true mL | predicted mL | confidence | OOD score | inference s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in runs["multi-sequence (default)"]["rows"]:
        confidence = "-" if r["confidence"] is None else f"{r['confidence']:.3f}"
        ood = "-" if r["ood_score"] is None else f"{r['ood_score']:.2f}"
        lines.append(
            f"| {r['case']} | {r['true_diameter_mm']:.1f} | {r['dice']:.3f} | {r['hd95_mm']:.2f} | {r['true_ml']:.2f} | "
            f"{r['pred_ml']:.2f} | {confidence} | {ood} | {r['inference_s']:.2f} |"
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
