"""The work folders of background engine runs.

The Segment module's Apply, the Predict module's Compute and the hub's study loading each run
`cervicalai` commands (CervicalAILib.core.background.BackgroundRun) in a new folder of their own
under CervicalAIHubLib.application.work_base(), with its Python and environment.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from pathlib import Path

from CervicalAIHubLib.scene import now_utc


def safe_file_name(text: str, default: str = "case") -> str:
    """A file-system safe version of a node name (letters, digits, - and _)."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")
    return cleaned[:60] or default


def unique_folder(parent: str | Path, stem: str) -> Path:
    """A new, empty folder `parent/stem` (or `stem_2`, `stem_3`, ...): never an existing one."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    number = 1
    while True:
        candidate = parent / (stem if number == 1 else f"{stem}_{number}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            number += 1


def new_work_folder(base: str | os.PathLike, label: str, now: _dt.datetime | None = None) -> Path:
    """A new folder `<base>/<label>-<UTC time>` (suffixed if taken) for one run's files."""
    stamp = now_utc(now).strftime("%Y%m%dT%H%M%SZ")
    return unique_folder(base, f"{safe_file_name(label)}-{stamp}")
