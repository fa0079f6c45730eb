"""Driving the web review app from tests and the benchmark: a server, a real browser, the frames.

- `ReviewServer`: `cervicalai review serve` in a child process on 127.0.0.1 (a free port, a fresh
  secret), started and stopped by the caller; its address is read from the ready file.
- `chromium()`: Debian's Chromium (/usr/bin/chromium) through Playwright, headless, with a fresh
  profile and no network features (never `playwright install`); `new_page()` a page in a new context.
- `frame_stats()`: the rendered views are <img> frames sent by the server: their pixels are read
  in the page (canvas) to check what is shown and to wait for a new frame.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

CHROMIUM = Path(os.environ.get("CERVICALAI_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SERVER_START_SECONDS = 90
VIEWPORT = {"width": 1400, "height": 900}


def missing_requirements() -> str | None:
    """Why the browser tests cannot run here (None when they can)."""
    for module in ("playwright", "trame_slicer"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (make venv installs the web app's packages)"
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} not found (make venv installs Debian's chromium)"
    return None


class ReviewServer:
    """`cervicalai review serve COHORT --reader NAME` on 127.0.0.1, in a child process."""

    def __init__(self, cohort: Path, reader: str, log_dir: Path, extra: list[str] | None = None):
        self.cohort, self.reader = Path(cohort), reader
        self.token = secrets.token_urlsafe(24)
        self.log_dir = Path(log_dir)
        self.extra = list(extra or [])
        self.process: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> ReviewServer:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        ready = Path(tempfile.mkdtemp(prefix="review-ready-")) / "url.txt"
        self.log_path = self.log_dir / f"server-{self.reader.replace(' ', '_')}-{time.strftime('%H%M%S')}.log"
        log = self.log_path.open("w")
        env = dict(os.environ, OMP_NUM_THREADS="1")
        command = [sys.executable, "-m", "CervicalAILib.cli", "review", "serve", str(self.cohort), "--reader", self.reader,
                   "--host", "127.0.0.1", "--port", "0", f"--token={self.token}", "--ready-file", str(ready), *self.extra]
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.started = time.perf_counter()
        deadline = time.monotonic() + SERVER_START_SECONDS
        while not ready.is_file():
            if self.process.poll() is not None:
                raise RuntimeError(f"review server exited with {self.process.returncode}: {self.log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"review server not ready after {SERVER_START_SECONDS} s: {self.log_path}")
            time.sleep(0.1)
        self.ready_seconds = time.perf_counter() - self.started
        self.url = ready.read_text().strip()
        shutil.rmtree(ready.parent, ignore_errors=True)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        """SIGINT (Ctrl+C, as a reader stops it), then SIGKILL if it does not go."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)

    def __enter__(self) -> ReviewServer:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()


@contextlib.contextmanager
def chromium() -> Iterator:
    """Debian's Chromium through Playwright (headless; Playwright gives it a fresh profile folder)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def new_page(browser) -> Iterator:
    """A page in a new browser context (no cookies or storage shared with other pages)."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        yield context.new_page()
    finally:
        context.close()


# Pixel statistics of the index-th view frame (0 = T2WI): size, "red" contour pixels, other coloured
# pixels (e.g. the probability map), grey mean and spread, and a cheap hash to tell frames apart.
_FRAME_JS = """(index) => {
  const images = Array.from(document.querySelectorAll('img')).filter(i => i.src.startsWith('blob:'));
  const img = images[index];
  if (!img || !img.complete || !img.naturalWidth) return null;
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let red = 0, colour = 0, sum = 0, sum2 = 0, hash = 0;
  const n = data.length / 4;
  for (let i = 0; i < data.length; i += 4) {
    const r = data[i], g = data[i + 1], b = data[i + 2];
    if (r > 90 && r > 2 * g + 20 && r > 2 * b + 20) red++;
    else if (Math.max(r, g, b) - Math.min(r, g, b) > 60) colour++;
    const grey = (r + g + b) / 3; sum += grey; sum2 += grey * grey;
    if (i % 64 === 0) hash = (hash * 31 + r + 7 * g + 13 * b) | 0;
  }
  const mean = sum / n;
  return {width: canvas.width, height: canvas.height, red: red, colour: colour, mean: mean,
          std: Math.sqrt(Math.max(0, sum2 / n - mean * mean)), hash: hash, src: img.src};
}"""


def frame_stats(page, index: int = 0) -> dict | None:
    return page.evaluate(_FRAME_JS, index)


def wait_for_frame(page, predicate, index: int = 0, timeout: float = 60.0, interval: float = 0.05) -> tuple[dict, float]:
    """Poll the view's pixels until `predicate(stats)` holds; (stats, seconds waited)."""
    start = time.perf_counter()
    while True:
        stats = frame_stats(page, index)
        if stats is not None and predicate(stats):
            return stats, time.perf_counter() - start
        if time.perf_counter() - start > timeout:
            raise AssertionError(f"no frame of view {index} met the condition within {timeout} s (last: {stats})")
        time.sleep(interval)


def stable_frame(page, index: int = 0, quiet: float = 0.5, timeout: float = 60.0) -> dict:
    """The view's frame once it has not changed for `quiet` seconds (rendering has settled)."""
    start = time.perf_counter()
    last, since = frame_stats(page, index), time.perf_counter()
    while time.perf_counter() - start < timeout:
        time.sleep(0.05)
        now = frame_stats(page, index)
        if now is None or last is None or now["hash"] != last["hash"]:
            last, since = now, time.perf_counter()
        elif time.perf_counter() - since >= quiet:
            return now
    raise AssertionError(f"view {index} kept changing for {timeout} s")


def view_box(page, index: int = 0) -> dict:
    images = page.locator("img[src^='blob:']")
    return images.nth(index).bounding_box()


def paint_stroke(page, start: tuple[float, float], end: tuple[float, float], steps: int = 15, index: int = 0) -> None:
    """Drag the mouse over the view from `start` to `end` (fractions of the view's width and height)."""
    box = view_box(page, index)
    x0, y0 = box["x"] + start[0] * box["width"], box["y"] + start[1] * box["height"]
    x1, y1 = box["x"] + end[0] * box["width"], box["y"] + end[1] * box["height"]
    page.mouse.move(x0, y0)
    time.sleep(0.1)
    page.mouse.down()
    for step in range(1, steps + 1):
        page.mouse.move(x0 + (x1 - x0) * step / steps, y0 + (y1 - y0) * step / steps)
        time.sleep(0.03)
    page.mouse.up()


def select_effect(page, icon: str) -> None:
    """Click a Segment Editor effect button by its icon (mdi-brush = Paint, mdi-eraser = Erase)."""
    button = page.locator(f"button:has(.{icon})").first
    button.scroll_into_view_if_needed()
    button.click()


def server_rss_mb(pid: int) -> float:
    """Resident memory of the server process and its children (MB)."""
    import psutil

    process = psutil.Process(pid)
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return total / 1e6
