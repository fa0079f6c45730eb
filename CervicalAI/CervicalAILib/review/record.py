"""The review record of a tumour mask: who reviewed it, when, and how much they changed.

Written beside the mask as `<mask name>.review.json` (e.g. `tumor.nii.gz.review.json`) by the
Segment module's "Mark as reviewed" and read by the readout (warns on unreviewed masks) and the
exporters (DICOM SEG algorithm type, provenance manifest). The SHA-256 of the reviewed mask is
recorded, so a mask edited after review is detected as unreviewed again. The record itself, its
file name and its JSON Schema are the contract in contracts/review.py.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import SimpleITK as sitk

from CervicalAILib.contracts.review import ReviewRecord, record_path
from CervicalAILib.core import atomic
from CervicalAILib.core.errors import InputError
from CervicalAILib.core.hashing import sha256_file
from CervicalAILib.core.json_input import read_json
from CervicalAILib.io import measurements as measure


def mark_reviewed(
    mask_path: str | Path,
    reviewer: str,
    automatic_mask: sitk.Image | None = None,
    automatic_model: str | None = None,
    now: _dt.datetime | None = None,
) -> ReviewRecord:
    """Record that `reviewer` reviewed the mask file; with the automatic contour, measure the edits."""
    mask_path = Path(mask_path)
    if not reviewer or not reviewer.strip():
        raise InputError("a review needs the reviewer's name")
    origin, metrics = "manual", None
    if automatic_mask is not None:
        metrics = measure.edit_metrics(automatic_mask, sitk.ReadImage(str(mask_path)))
        origin = "automatic" if metrics.dice == 1.0 else "edited"
    now = now or _dt.datetime.now(_dt.UTC)
    record = ReviewRecord(
        reviewed=True,
        origin=origin,
        reviewer=reviewer.strip(),
        reviewed_at=now.replace(microsecond=0).isoformat(),
        mask_sha256=sha256_file(mask_path),
        automatic_model=automatic_model,
        edit_metrics=metrics,
    )
    atomic.write_json(record_path(mask_path), record.to_dict())
    return record


def read_review(mask_path: str | Path) -> ReviewRecord:
    """The mask's review record; an unreviewed record when there is none or the mask changed since."""
    mask_path = Path(mask_path)
    path = record_path(mask_path)
    if not path.is_file():
        return ReviewRecord(reviewed=False, origin="automatic")
    record = ReviewRecord.from_dict(read_json(path, "review record"), path)
    if record.reviewed and record.mask_sha256 != sha256_file(mask_path):
        # the mask was edited after the review: the review no longer describes it
        return ReviewRecord(reviewed=False, origin="edited", automatic_model=record.automatic_model)
    return record


def require_review(mask_path: str | Path) -> ReviewRecord:
    """The mask's valid review record (exports with `--reviewed-only`); InputError naming the mask
    when it has none: no record beside it, or a record that no longer describes the mask."""
    mask_path = Path(mask_path)
    record = read_review(mask_path)
    if not record.reviewed:
        path = record_path(mask_path)
        why = (f"has no review record ({path.name} beside it)" if not path.is_file() else
               f"has no valid review ({path.name} says not reviewed, or the mask was changed after the review)")
        raise InputError(f"mask {why}; --reviewed-only exports reviewed masks only (mark it as reviewed in the "
                         "Segment module first, or leave out --reviewed-only)", mask_path)
    return record
