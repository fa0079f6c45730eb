"""Writing a segmentation result: mask, probability map and summary JSON, atomically (and reading
its organ label table back)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from CervicalAILib.contracts.case_folder import TRANSFORMS_DIR
from CervicalAILib.contracts.segmentation import (
    MASK_FILE,
    PROBABILITY_FILE,
    SEGMENTATION_SUMMARY,
    SegmentationSummary,
)
from CervicalAILib.core.atomic import atomic_directory, to_json
from CervicalAILib.core.errors import InputError
from CervicalAILib.io.images import write_image
from CervicalAILib.segmentation.anatomy import NO_ANATOMY_MESSAGE

ORGANS_FILE = "organs.nii.gz"  # label map of the anatomical structures, values in ORGAN_TABLE_FILE
ORGAN_TABLE_FILE = "organs.json"  # {name: value}
# Everything write_segmentation writes (glob patterns): `segment --overwrite` replaces only these.
OUTPUT_FILES = [MASK_FILE, PROBABILITY_FILE, SEGMENTATION_SUMMARY, ORGANS_FILE, ORGAN_TABLE_FILE, "transforms/*.tfm"]


def write_segmentation(
    result: Any,
    out_dir: str | Path,
    overwrite: bool = False,
    extra: dict | None = None,
    transforms: dict[str, sitk.Transform] | None = None,
) -> Path:
    """Write `result` (a SegmentationResult) into `out_dir`; the folder appears complete or not at all.

    Refuses a non-empty existing folder unless `overwrite`. `extra` is merged into the JSON
    (e.g. the input paths and registration results the CLI knows about). `transforms` (T2WI ->
    sequence, from the co-registration) go to `transforms/<ROLE>.tfm`, so that the readout
    (`cervicalai predict --transforms OUT`) reuses them instead of registering again.
    When the anatomy gate found no cervix or uterus there is no tumour mask and no tumour
    probability file: nothing can pick up a contour that should not exist. The organ label map
    (`organs.nii.gz`, values by name in `organs.json`) is written whenever the network gave one.
    """
    out_dir = Path(out_dir)
    summary = {**result.summary, **(extra or {})}
    summary["files"] = {}
    if result.mask is not None:
        summary["files"] = {"mask": MASK_FILE, "probability": PROBABILITY_FILE, "probability_scale": "uint8, 255 = 1.0"}
    organs = getattr(result, "organs", None)
    if organs is not None:
        summary["files"].update(organs=ORGANS_FILE, organ_labels=ORGAN_TABLE_FILE)
    if transforms:
        summary["files"]["transforms"] = {role: f"{TRANSFORMS_DIR}/{role}.tfm" for role in sorted(transforms)}
    with atomic_directory(out_dir, overwrite=overwrite, owned=OUTPUT_FILES) as tmp:
        if result.mask is not None:
            write_image(result.mask, tmp / MASK_FILE)
            write_image(result.probability, tmp / PROBABILITY_FILE)
        if organs is not None:
            write_image(organs, tmp / ORGANS_FILE)
            (tmp / ORGAN_TABLE_FILE).write_text(to_json(dict(result.organ_labels)), encoding="utf-8")
        (tmp / SEGMENTATION_SUMMARY).write_text(to_json(SegmentationSummary.from_dict(summary).to_dict()), encoding="utf-8")
        if transforms:
            (tmp / TRANSFORMS_DIR).mkdir()
            for role, transform in transforms.items():
                sitk.WriteTransform(transform, str(tmp / TRANSFORMS_DIR / f"{role}.tfm"))
    return out_dir


def organ_label_names(summary: dict[str, Any], folder: str | Path) -> dict[int, str]:
    """Label value -> organ name of the organ labels map: the table file segmentation.json names
    (`files.organ_labels`, `organs.json` as `segment` writes it) or a table inside segmentation.json,
    either as {name: value} or {value: name}."""
    labels = summary.get("organ_labels") or (summary.get("files") or {}).get("organ_labels") or {}
    if isinstance(labels, str):  # the name of the table file beside the map
        table_path = Path(folder) / labels
        try:
            labels = json.loads(table_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"organ label table listed in segmentation.json is unreadable ({exc})", table_path) from exc
    if not isinstance(labels, dict):
        raise InputError("organ label table must be a JSON object of names and values", Path(folder))
    result: dict[int, str] = {}
    for key, value in labels.items():
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            result[int(value)] = str(key)
        elif str(key).isdigit():
            result[int(key)] = str(value)
    return {value: name for value, name in result.items() if value > 0}


def no_anatomy_sentence(summary: Any) -> str | None:
    """The anatomy gate's sentence when a segmentation summary says no cervix or uterus was
    recognised (segment then wrote no tumour mask and exited with status 3), else None."""
    gate = summary.get("anatomy_gate") if isinstance(summary, dict) else None
    if isinstance(gate, dict) and gate.get("anatomy_found") is False:
        return str(gate.get("message") or summary.get("message") or NO_ANATOMY_MESSAGE)
    return None
