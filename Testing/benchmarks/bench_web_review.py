"""Benchmark: the web review app as a reader uses it (real server, Debian Chromium via Playwright).

    .venv/bin/python Testing/benchmarks/bench_web_review.py [--cases 3] [--strokes 6] [--matrix-scale 1]

Measures, on a synthetic cohort segmented by the shipped model (`cervicalai review prepare`):

- server start: `cervicalai review serve` launched -> serving (address written);
- first frame after opening the page: page load -> the T2WI view shows the image with the contour;
- time to first frame after opening a case: the open request -> the T2WI frame of the new case
  (new pixels with the contour, at the view's size);
- paint -> updated frame: one brush dab (mouse pressed and released at one point) -> a frame with
  more contour pixels;
- paint -> working copy on disk: the same dab -> tumor.nii.gz of the working copy changed (the
  autosave waits for 0.4 s without edits, then writes);
- server memory per reader: resident memory of one server (one reader) after loading cases and
  painting, and of a second reader's server running beside it.

Writes Testing/benchmarks/results/web_review.md (atomically).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "Testing" / "python"))
RESULTS = REPO / "Testing" / "benchmarks" / "results" / "web_review.md"

from browser.harness import (  # noqa: E402
    ReviewServer,
    chromium,
    frame_stats,
    missing_requirements,
    new_page,
    select_effect,
    server_rss_mb,
    wait_for_frame,
)

from CervicalAILib.core.atomic import write_text  # noqa: E402
from CervicalAILib.core.hashing import sha256_file  # noqa: E402
from CervicalAILib.review.worklist import open_worklist  # noqa: E402


def cli(*arguments: str) -> None:
    subprocess.run([sys.executable, "-m", "CervicalAILib.cli", "-q", *arguments], check=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summary(values: list[float], unit: str = "s", digits: int = 2) -> str:
    if not values:
        return "n/a"
    return (f"{statistics.median(values):.{digits}f} {unit} (min {min(values):.{digits}f}, max {max(values):.{digits}f}, "
            f"n={len(values)})")


def open_case(page, case_id: str, previous_hash) -> float:
    start = time.perf_counter()
    page.evaluate("(name) => window.trame.trigger('open_case', [name])", case_id)
    wait_for_frame(page, lambda s: s["hash"] != previous_hash and s["red"] > 50 and s["width"] > 400
                   and page.evaluate("window.trame.state.get('active_case')") == case_id, timeout=60)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=3)
    parser.add_argument("--strokes", type=int, default=6)
    parser.add_argument("--matrix-scale", type=float, default=1.0, help="synthetic matrix size (1 = full size)")
    parser.add_argument("--seed", type=int, default=9015)
    args = parser.parse_args()
    why = missing_requirements()
    if why:
        print(f"bench_web_review: cannot run: {why}", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="bench-web-review-"))
    cohort = work / "cohort"
    cli("synth", "--cases", str(args.cases), "--seed", str(args.seed), "--matrix-scale", str(args.matrix_scale),
        "--out", str(cohort))
    cli("review", "prepare", str(cohort))
    worklist = open_worklist(cohort)
    ids = worklist.case_ids()
    sizes = [worklist.reader("x").worklist.case(i).folder for i in ids]
    import SimpleITK as sitk

    t2_size = sitk.ReadImage(str(sizes[0] / "T2W.nii.gz")).GetSize()
    rows: dict[str, str] = {}
    with chromium() as browser:
        server = ReviewServer(cohort, "Bench A", work / "logs").start()
        try:
            rows["server start (launch -> serving)"] = summary([server.ready_seconds])
            with new_page(browser) as page:
                start = time.perf_counter()
                page.goto(server.url)
                wait_for_frame(page, lambda s: s["red"] > 50 and s["std"] > 20 and s["width"] > 400, timeout=60)
                rows["page load -> first frame with the contour"] = summary([time.perf_counter() - start])
                memory_first = server_rss_mb(server.pid)
                opens = []
                for case_id in ids[1:] + ids[:1]:
                    opens.append(open_case(page, case_id, frame_stats(page)["hash"]))
                rows["open a case -> its first frame"] = summary(opens)
                select_effect(page, "mdi-brush")
                reader = worklist.reader("Bench A")
                working = reader.working_mask_path(ids[0])
                frames, saves = [], []
                box = page.locator("img[src^='blob:']").first.bounding_box()
                for stroke in range(args.strokes):
                    # one dab of the brush (press and release at one point), away from the tumour
                    x = box["x"] + box["width"] * (0.15 + 0.05 * stroke)
                    y = box["y"] + box["height"] * 0.8
                    page.mouse.move(x, y)
                    time.sleep(0.3)
                    before = frame_stats(page)
                    old = sha256_file(working) if working.is_file() else None
                    pressed = time.perf_counter()
                    page.mouse.down()
                    page.mouse.up()
                    wait_for_frame(page, lambda s, b=before: s["red"] > b["red"] + 100, timeout=30, interval=0.01)
                    frames.append(time.perf_counter() - pressed)
                    while not working.is_file() or sha256_file(working) == old:
                        if time.perf_counter() - pressed > 30:
                            raise RuntimeError("the working copy was not saved within 30 s")
                        time.sleep(0.02)
                    saves.append(time.perf_counter() - pressed)
                rows["paint (one brush dab, press) -> updated frame"] = summary(frames)
                rows["paint (one brush dab, press) -> working copy on disk"] = summary(saves)
                memory_one = server_rss_mb(server.pid)
                second = ReviewServer(cohort, "Bench B", work / "logs").start()
                try:
                    with new_page(browser) as page_b:
                        page_b.goto(second.url)
                        wait_for_frame(page_b, lambda s: s["red"] > 50 and s["width"] > 400, timeout=60)
                        memory_two = server_rss_mb(second.pid)
                finally:
                    second.stop()
        finally:
            server.stop()
    rows["server memory, one reader: after the first case"] = f"{memory_first:.0f} MB"
    rows["server memory, one reader: after all cases and the strokes"] = f"{memory_one:.0f} MB"
    rows["server memory, a second reader's server beside it"] = f"{memory_two:.0f} MB"
    lines = [
        "# Web review app (trame-slicer) as a reader uses it",
        "",
        f"Generated by `Testing/benchmarks/bench_web_review.py --cases {args.cases} --strokes {args.strokes} "
        f"--matrix-scale {args.matrix_scale}` on {time.strftime('%Y-%m-%d')}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU cores, no GPU (Mesa CPU rendering through EGL), Debian Chromium headless via Playwright, "
        f"1400 x 900 window, JPEG frames. T2WI {t2_size[0]} x {t2_size[1]} x {t2_size[2]}; load average at the start "
        f"{os.getloadavg()[0]:.1f}.",
        "",
        "| measure | value |",
        "|---|---|",
        *[f"| {name} | {value} |" for name, value in rows.items()],
        "",
        "One server serves one reader (trame keeps one state per server process); each reader runs their own.",
        "",
    ]
    write_text(RESULTS, "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
