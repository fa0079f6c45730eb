"""The review record of a tumour mask: who reviewed it, when, and how much they changed.

Written beside the mask as `<mask name>.review.json` (e.g. `tumor.nii.gz.review.json`) by the
Segment module's "Mark as reviewed" and read by the readout (warns on unreviewed masks) and the
exporters (DICOM SEG algorithm type, provenance manifest). The SHA-256 of the reviewed mask is
recorded, so a mask edited after review is detected as unreviewed again.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from CervicalAILib.core import atomic
from CervicalAILib.core.errors import InputError
from CervicalAILib.core.hashing import sha256_file
from CervicalAILib.io import measurements as measure

SUFFIX = ".review.json"

# How the contour came to be; with `reviewed` it gives the SegmentAlgorithmType (ReviewRecord.algorithm_type).
ORIGINS = ("automatic", "edited", "manual")


@dataclass
class ReviewRecord:
    reviewed: bool
    origin: str  # "automatic" (model output, unchanged), "edited" (model output corrected), "manual"
    reviewer: str | None = None
    reviewed_at: str | None = None  # ISO 8601, UTC
    mask_sha256: str | None = None  # of the mask file this record describes
    automatic_model: str | None = None  # "name@version" of the model that drew the automatic contour
    edit_metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def algorithm_type(self) -> str:
        """DICOM SEG SegmentAlgorithmType (issue 8): SEMIAUTOMATIC for a reviewed contour the reader
        edited from an automatic one; MANUAL for any other reviewed contour (drawn by the reader, or
        an automatic contour the reader checked and accepted unchanged: a reader vouches for it);
        AUTOMATIC when not reviewed (including a mask changed after its review)."""
        if not self.reviewed:
            return "AUTOMATIC"
        return "SEMIAUTOMATIC" if self.origin == "edited" else "MANUAL"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_path(mask_path: str | Path) -> Path:
    mask_path = Path(mask_path)
    return mask_path.with_name(mask_path.name + SUFFIX)


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
    origin = "manual"
    metrics: dict[str, Any] = {}
    if automatic_mask is not None:
        reviewed_mask = sitk.ReadImage(str(mask_path))
        metrics = measure.edit_metrics(automatic_mask, reviewed_mask)
        origin = "automatic" if metrics["dice"] == 1.0 else "edited"
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
    from CervicalAILib.core.json_input import read_json

    data = read_json(path, "review record")
    try:
        record = ReviewRecord(**data) if isinstance(data, dict) else None
    except TypeError as exc:
        raise InputError(f"review record is not valid ({exc})", path) from exc
    if record is None:
        raise InputError("review record must hold a JSON object", path)
    if record.origin not in ORIGINS:
        raise InputError(f"review record has unknown origin {record.origin!r}", path)
    kinds = {"reviewed": bool, "reviewer": (str, type(None)), "reviewed_at": (str, type(None)),
             "mask_sha256": (str, type(None)), "automatic_model": (str, type(None)), "edit_metrics": dict}
    wrong = [name for name, kind in kinds.items() if not isinstance(getattr(record, name), kind)]
    if wrong:
        raise InputError(f"review record has values of the wrong type ({', '.join(wrong)})", path)
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
