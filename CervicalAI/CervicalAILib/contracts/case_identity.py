"""Which patient's images a mask or a registration transform was made on: recorded, then checked.

A mask or a `transforms/` folder from another patient on the same grid is indistinguishable by
geometry (synthetic and many real protocols share one grid), and using it gives a plausible but
wrong readout. So every command that makes one records the case it was made on:

    "case": {"case_id": "...", "images": {"T2W": {"voxels_sha256": "...", "size": [...],
             "spacing_mm": [...], "origin_mm": [...]}, "ADC": {...}, ...}}

in `segmentation.json` (beside the automatic mask and its transforms) and `registration.json`
(beside a registered case's transforms). `voxels_sha256` hashes the voxel values (as float32) and
the image size, so the same image gives the same hash whether it was read from DICOM, a case
folder or a registered copy; the geometry is compared with a tolerance (NIfTI stores it as float32).

`check_case` compares such a record with the images at hand: the T2WI (the grid every mask is
on) must be the same image, and each sequence a transform is used for must be the one it was
computed for. A mismatch is an InputError naming the file; no record gives a warning.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from CervicalAILib.contracts.case_folder import REGISTRATION_FILE
from CervicalAILib.contracts.segmentation import SEGMENTATION_SUMMARY, SegmentationSummary
from CervicalAILib.core.errors import InputError
from CervicalAILib.core.json_input import read_json

ORIGIN_TOLERANCE_MM = 0.05
SPACING_TOLERANCE = 1e-4  # relative
RECORD_FILES = (SEGMENTATION_SUMMARY, REGISTRATION_FILE)


def voxels_sha256(image: sitk.Image) -> str:
    """SHA-256 of the image size and its voxel values as float32 (independent of the file format)."""
    digest = hashlib.sha256()
    digest.update(repr(tuple(int(n) for n in image.GetSize())).encode())
    array = sitk.GetArrayViewFromImage(image)
    digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    return digest.hexdigest()


def image_record(image: sitk.Image) -> dict[str, Any]:
    return {
        "voxels_sha256": voxels_sha256(image),
        "size": [int(n) for n in image.GetSize()],
        "spacing_mm": [round(float(s), 6) for s in image.GetSpacing()],
        "origin_mm": [round(float(o), 4) for o in image.GetOrigin()],
    }


def case_record(case_id: str, images: dict[str, sitk.Image]) -> dict[str, Any]:
    """What a mask or transform records about the case it was made on (see the module docstring)."""
    return {"case_id": str(case_id), "images": {role: image_record(image) for role, image in images.items()}}


def read_record(folder: str | Path) -> tuple[dict[str, Any] | None, Path | None]:
    """(the "case" record, the file it is in) from segmentation.json or registration.json in `folder`."""
    folder = Path(folder)
    for name in RECORD_FILES:
        path = folder / name
        if path.is_file():
            document = read_json(path, name)
            if name == SEGMENTATION_SUMMARY:  # an edited summary must not carry its values further
                SegmentationSummary.from_dict(document, path)
            record = document.get("case") if isinstance(document, dict) else None
            if isinstance(record, dict) and isinstance(record.get("images"), dict):
                return record, path
            return None, path
    return None, None


def _same_image(recorded: dict[str, Any], image: sitk.Image) -> bool:
    if recorded.get("voxels_sha256") != voxels_sha256(image):
        return False
    spacing = np.asarray(recorded.get("spacing_mm") or image.GetSpacing(), dtype=float)
    origin = np.asarray(recorded.get("origin_mm") or image.GetOrigin(), dtype=float)
    return bool(np.allclose(spacing, image.GetSpacing(), rtol=SPACING_TOLERANCE, atol=1e-6)
                and np.allclose(origin, image.GetOrigin(), atol=ORIGIN_TOLERANCE_MM))


def check_case(
    record: dict[str, Any] | None,
    record_path: Path | None,
    images: dict[str, sitk.Image],
    what: str,
    case_id: str,
    roles: list[str] | None = None,
    warnings: list[str] | None = None,
) -> None:
    """InputError when `record` (made on some case) describes other images than `images`.

    roles: the sequences whose images must match besides the T2WI (those a transform is used for).
    Without a record, a warning (in `warnings`) says the check could not be made.
    """
    if record is None:
        if warnings is not None:
            where = (f"{record_path.name} beside it has none" if record_path
                     else "no segmentation.json or registration.json beside it")
            warnings.append(f"no record of the case {what} was made on ({where}): it cannot be checked to belong to "
                            "this patient")
        return
    recorded = record.get("images") or {}
    for role in ["T2W", *(r for r in (roles or []) if r != "T2W")]:
        if role not in recorded or role not in images:
            continue
        if not _same_image(recorded[role], images[role]):
            other = record.get("case_id") or "another case"
            raise InputError(
                f"{what} came from other images than this case's {role} (the record says case {other!r}, this is "
                f"{case_id!r}; the {role} voxels differ): from another patient or another study - refusing to use it",
                record_path)
