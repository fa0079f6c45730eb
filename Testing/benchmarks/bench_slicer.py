"""Benchmark: what the Slicer modules do on the GUI thread, on clinical-size volumes (slicer-core MRML).

    .venv/bin/python Testing/benchmarks/bench_slicer.py [--repeats 3]

Everything heavy runs in a background process; these are the steps that do not, and so decide
whether Slicer feels frozen: exporting the selected volumes as a case folder, importing the
segmentation result as nodes, "Mark as reviewed", the review-state check the widgets repeat,
the hub's workflow state, role assignment from DICOM headers (ProstateX, when available), and
the background runner's own costs (start to first progress line, one poll of 10 000 queued
lines, cancel to "cancelled").

Volumes: T2WI 512 x 512 x 30 (0.5 x 0.5 x 4 mm, oblique), DWI and ADC 128 x 128 x 30, CE-T1WI
512 x 512 x 60; tumour about 30 mL. Writes Testing/benchmarks/results/slicer.md (atomically).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[2]
for folder in ("CervicalAI", "CervicalAISegment", "CervicalAIPredict"):
    sys.path.insert(0, str(REPO / folder))
RESULTS = REPO / "Testing" / "benchmarks" / "results" / "slicer.md"
PROSTATEX = REPO.parent / "shared" / "refdata" / "mri" / "ProstateX-0000_dicom"


def volume(size, spacing, seed, direction=None) -> sitk.Image:
    rng = np.random.default_rng(seed)
    image = sitk.GetImageFromArray(rng.normal(400, 80, tuple(reversed(size))).astype(np.int16))
    image.SetSpacing(spacing)
    image.SetOrigin((-128.0, -128.0, -60.0))
    if direction is not None:
        image.SetDirection(direction)
    return image


def tumour(reference: sitk.Image, radius_mm=19.0) -> sitk.Image:
    z, y, x = np.indices(tuple(reversed(reference.GetSize())), dtype=float)
    spacing = reference.GetSpacing()
    centre = np.array(reference.GetSize()) / 2
    inside = ((x - centre[0]) * spacing[0]) ** 2 + ((y - centre[1]) * spacing[1]) ** 2 + ((z - centre[2]) * spacing[2]) ** 2 <= radius_mm**2
    mask = sitk.GetImageFromArray(inside.astype(np.uint8))
    mask.CopyInformation(reference)
    return mask


def timed(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_mrml(repeats: int, work: Path) -> list[tuple[str, float]]:
    import slicer

    from CervicalAIHubLib.reviewed import review_state
    from CervicalAIHubLib.segmentation import import_segmentation_result
    from CervicalAIHubLib.volumes import assign_volume_roles, candidate_volumes, export_case_folder
    from CervicalAIHubLib.workflow import workflow_state
    from CervicalAILib.io import measurements as measure
    from CervicalAILib.io.mrml import volume_node_from_image
    from CervicalAISegmentLib.review import mark_reviewed

    scene = slicer.vtkMRMLScene()
    colors = slicer.vtkMRMLColorLogic()
    colors.SetMRMLScene(scene)
    angle = np.radians(12.0)
    oblique = (1.0, 0.0, 0.0, 0.0, np.cos(angle), -np.sin(angle), 0.0, np.sin(angle), np.cos(angle))
    t2_image = volume((512, 512, 30), (0.5, 0.5, 4.0), 1, oblique)
    nodes = {
        "T2W": volume_node_from_image(scene, t2_image, "T2 TSE TRA"),
        "DWI": volume_node_from_image(scene, volume((128, 128, 30), (2.0, 2.0, 4.0), 2), "ep2d_diff b800"),
        "ADC": volume_node_from_image(scene, volume((128, 128, 30), (2.0, 2.0, 4.0), 3), "ep2d_diff ADC"),
        "CET1": volume_node_from_image(scene, volume((512, 512, 60), (0.5, 0.5, 2.0), 4), "t1 vibe post gd"),
    }
    rows = []
    counter = iter(range(10**6))
    rows.append(("assign roles from node names (4 volumes)", timed(lambda: assign_volume_roles(candidate_volumes(scene)), repeats)))
    rows.append(("export 4 volumes as an uncompressed case folder (Apply, before the background run)",
                 timed(lambda: export_case_folder(nodes, work / f"input{next(counter)}", compress=False), repeats)))  # fmt: skip
    rows.append(("the same export compressed (.nii.gz, as Export writes)",
                 timed(lambda: export_case_folder(nodes, work / f"input{next(counter)}"), repeats)))  # fmt: skip

    mask = tumour(t2_image)
    result_dir = work / "segmentation"
    result_dir.mkdir()
    sitk.WriteImage(mask, str(result_dir / "tumor.nii.gz"), True)
    sitk.WriteImage(sitk.Cast(mask * 200, sitk.sitkUInt8), str(result_dir / "tumor_probability.nii.gz"), True)
    (result_dir / "segmentation.json").write_text(json.dumps({
        "flagged_slices": [{"slice": k, "confidence": 0.5} for k in range(8, 18)], "model": {"label": "m@1"}, "confidence": 0.8,
    }))  # fmt: skip
    imports = []
    rows.append(("import the result (automatic + working copy + probability, 10 flagged slices)",
                 timed(lambda: imports.append(import_segmentation_result(scene, result_dir, nodes["T2W"], nodes)), repeats)))  # fmt: skip
    rows.append((f"tumour volume (mL) {measure.volume_ml(mask):.1f}", float("nan")))
    reviews = []
    rows.append(("Mark as reviewed (mask, Dice/HD95/volume, hash, files, reviewed copy)",
                 timed(lambda: reviews.append(mark_reviewed(scene, imports[-1].draft, "Bench", work / f"review{next(counter)}")), repeats)))  # fmt: skip
    reviewed = reviews[-1].reviewed
    from CervicalAIHubLib import reviewed as review_module

    def uncached(function):
        def run():
            review_module._VERDICTS.clear()  # as after an edit: the mask is hashed again
            return function()
        return run

    rows.append(("review-state check of a reviewed copy, mask hashed (first check after an edit)",
                 timed(uncached(lambda: review_state(reviewed)), repeats * 3)))  # fmt: skip
    rows.append(("review-state check repeated, mask unchanged (each keystroke in the reviewer field)",
                 timed(lambda: review_state(reviewed), repeats * 3)))  # fmt: skip
    rows.append((f"hub workflow state ({len(reviews)} reviewed copies in the scene), masks hashed",
                 timed(uncached(lambda: workflow_state(scene)), repeats)))  # fmt: skip
    rows.append((f"hub workflow state ({len(reviews)} reviewed copies), unchanged since the last refresh",
                 timed(lambda: workflow_state(scene), repeats)))  # fmt: skip
    colors.SetMRMLScene(None)
    return rows


def bench_dicom_roles(repeats: int) -> list[tuple[str, float]]:
    if not PROSTATEX.is_dir():
        return [("assign roles from DICOM headers (ProstateX not available)", float("nan"))]
    import slicer

    from CervicalAIHubLib.volumes import assign_volume_roles, candidate_volumes
    from CervicalAILib.io.mrml import volume_node_from_image
    from CervicalAILib.study.load import load_study

    scene = slicer.vtkMRMLScene()
    files = {}
    for series in load_study(PROSTATEX).series:
        grid = sitk.Image([int(v) for v in series.size], sitk.sitkUInt8)
        grid.SetSpacing(series.spacing)
        grid.SetDirection(series.direction)
        node = volume_node_from_image(scene, grid, f"Volume {series.key}")
        files[node.GetID()] = sorted(p for p in series.path.rglob("*") if p.is_file())
    seconds = timed(lambda: assign_volume_roles(candidate_volumes(scene), lambda n: files[n.GetID()]), repeats)
    return [("assign roles from DICOM headers (ProstateX, 7 series, 3 files each)", seconds)]


def bench_runner(repeats: int, work: Path) -> list[tuple[str, float]]:
    from CervicalAILib.core.background import BackgroundRun, Step, engine_command

    first_progress, cancel_return, cancelled = [], [], []
    for index in range(repeats):
        image = volume((64, 64, 12), (1.0, 1.0, 3.0), 5)
        from CervicalAILib.io.case import write_case

        case = write_case(work / f"tiny{index}", {"T2W": image, "ADC": image})
        start = time.perf_counter()
        run = BackgroundRun([Step(engine_command(sys.executable, "study", "register", case, "--out", work / f"reg{index}"))]).start()
        while not any(line.startswith("PROGRESS") for line in run.poll().new_lines) and not run.finished:
            time.sleep(0.005)
        first_progress.append(time.perf_counter() - start)
        run.wait(timeout=300)
        sleeper = work / "sleep.py"
        sleeper.write_text(textwrap.dedent("""
            import subprocess, sys
            subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]).wait()
        """))
        run = BackgroundRun([Step([sys.executable, str(sleeper)])]).start()
        time.sleep(0.3)
        start = time.perf_counter()
        run.cancel()
        cancel_return.append(time.perf_counter() - start)
        run.wait(timeout=60)
        cancelled.append(time.perf_counter() - start)
    lines = BackgroundRun([Step([sys.executable, "-c", "import sys\nfor i in range(10000): print(f'PROGRESS {i/10000:.4f} step {i}', file=sys.stderr)"])]).start()
    while not lines.finished:
        time.sleep(0.05)
        if lines._queue.qsize() >= 10001:  # everything queued: measure one poll that applies it all
            break
    lines._thread.join(timeout=60)
    start = time.perf_counter()
    lines.poll()
    poll_seconds = time.perf_counter() - start
    return [
        ("runner: start to first PROGRESS line (engine `study register`, new Python process)", statistics.median(first_progress)),
        ("runner: cancel() returns", statistics.median(cancel_return)),
        ("runner: cancel to status 'cancelled' (launcher + child killed)", statistics.median(cancelled)),
        ("runner: one poll() applying 10 000 queued lines", poll_seconds),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        rows = bench_mrml(args.repeats, work) + bench_dicom_roles(args.repeats) + bench_runner(args.repeats, work)
    load = f"{load_before:.1f} / {os.getloadavg()[0]:.1f}"
    lines = [
        "# Slicer module logic: work on the GUI thread",
        "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, slicer-core MRML (no application). "
        f"Median of {args.repeats} runs. T2WI 512x512x30 oblique, DWI/ADC 128x128x30, CE-T1WI 512x512x60. "
        f"Load average (1 min) at start / end: {load} on {os.cpu_count()} cores (other work slows every row).",
        "",
        "| step | seconds |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {'-' if np.isnan(seconds) else f'{seconds:.3f}' if seconds >= 0.001 else f'{seconds:.1e}'} |"
              for name, seconds in rows]  # fmt: skip
    lines += ["", f"Command: `.venv/bin/python Testing/benchmarks/bench_slicer.py --repeats {args.repeats}`", ""]
    text = "\n".join(lines)
    from CervicalAILib.core.atomic import write_text

    write_text(RESULTS, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
