"""Progress reporting for long work.

Engine functions that take a while accept `progress`, a callable `progress(fraction, message)`
with fraction in [0, 1]. The CLI passes `line_progress`, which prints machine-readable lines
that Slicer's background-process runner parses into a progress bar:

    PROGRESS 0.425 registering DWI onto T2W
"""

from __future__ import annotations

import sys
from collections.abc import Callable

ProgressCallback = Callable[[float, str], None]

PROGRESS_PREFIX = "PROGRESS"


def no_progress(fraction: float, message: str) -> None:
    """Default callback: report nothing."""


def line_progress(fraction: float, message: str, stream=None) -> None:
    stream = stream if stream is not None else sys.stderr
    fraction = min(max(float(fraction), 0.0), 1.0)
    print(f"{PROGRESS_PREFIX} {fraction:.3f} {message}", file=stream, flush=True)


def parse_progress_line(line: str) -> tuple[float, str] | None:
    """Inverse of `line_progress` for the process runner: (fraction, message) or None."""
    parts = line.strip().split(" ", 2)
    if len(parts) < 2 or parts[0] != PROGRESS_PREFIX:
        return None
    try:
        fraction = float(parts[1])
    except ValueError:
        return None
    return fraction, parts[2] if len(parts) > 2 else ""


def sub_progress(progress: ProgressCallback | None, start: float, stop: float) -> ProgressCallback:
    """Map a stage's own 0..1 progress into the [start, stop] slice of its caller's bar."""
    progress = progress or no_progress

    def report(fraction: float, message: str) -> None:
        progress(start + (stop - start) * min(max(fraction, 0.0), 1.0), message)

    return report
