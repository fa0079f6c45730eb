"""Writing a segmentation result: mask, probability map and summary JSON, atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import SimpleITK as sitk

from ..io.atomic import atomic_directory, to_json

MASK_FILE = "tumor.nii.gz"
PROBABILITY_FILE = "tumor_probability.nii.gz"
SUMMARY_FILE = "segmentation.json"


def write_segmentation(result: Any, out_dir: str | Path, overwrite: bool = False, extra: dict | None = None) -> Path:
    """Write `result` (a SegmentationResult) into `out_dir`; the folder appears complete or not at all.

    Refuses a non-empty existing folder unless `overwrite`. `extra` is merged into the JSON
    (e.g. the input paths and registration results the CLI knows about).
    """
    out_dir = Path(out_dir)
    summary = {**result.summary, **(extra or {})}
    summary["files"] = {"mask": MASK_FILE, "probability": PROBABILITY_FILE, "probability_scale": "uint8, 255 = 1.0"}
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        sitk.WriteImage(result.mask, str(tmp / MASK_FILE), True)
        sitk.WriteImage(result.probability, str(tmp / PROBABILITY_FILE), True)
        (tmp / SUMMARY_FILE).write_text(to_json(summary), encoding="utf-8")
    return out_dir
