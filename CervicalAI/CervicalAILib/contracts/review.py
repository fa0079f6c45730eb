"""The review record beside a tumour mask (`tumor.nii.gz.review.json`), typed.

    record = ReviewRecord.from_dict(document, path)   # InputError naming the file, the key and the value
    record.reviewed, record.origin, record.edit_metrics.dice, record.algorithm_type
    record.to_dict() == document                      # the same JSON, key for key and in its order

review/record.py writes and reads it (mark_reviewed, read_review, require_review); the Slicer hub
maps a reviewed segmentation node's attributes to the same record (CervicalAIHubLib/reviewed.py).
The JSON Schema is contracts/schemas/review.schema.json (copy in docs/schemas/).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from CervicalAILib.contracts.records import Record
from CervicalAILib.contracts.schemas import require_valid
from CervicalAILib.core.errors import InputError
from CervicalAILib.core.output_guard import REVIEW_RECORD_SUFFIX

# The record's file is the mask's name with this suffix, beside the mask (defined in core: the output
# guard, which refuses to write over a review record, sits below the contracts).
SUFFIX = REVIEW_RECORD_SUFFIX

# How the contour came to be; with `reviewed` it gives the SegmentAlgorithmType (ReviewRecord.algorithm_type).
ORIGINS = ("automatic", "edited", "manual")


def record_path(mask_path: str | Path) -> Path:
    """The review record file of a mask (`tumor.nii.gz` -> `tumor.nii.gz.review.json`)."""
    mask_path = Path(mask_path)
    return mask_path.with_name(mask_path.name + SUFFIX)


@dataclass(frozen=True, kw_only=True)
class EditMetrics(Record):
    """How much the reader changed the automatic contour (io/measurements.py edit_metrics measures it).
    None where a value is undefined: HD95 when a contour is empty, the percent change of an empty one."""

    dice: float
    hd95_mm: float | None
    automatic_volume_ml: float
    reviewed_volume_ml: float
    volume_change_ml: float
    volume_change_percent: float | None

    def summary(self) -> str:
        """'Dice 0.910, HD95 2.3 mm, volume 10.20 -> 11.00 mL (+7.8%)' (the Segment module and the web app)."""
        parts = [f"Dice {self.dice:.3f}", f"HD95 {self.hd95_mm:.1f} mm" if self.hd95_mm is not None else "HD95 n/a"]
        volume = f"volume {self.automatic_volume_ml:.2f} -> {self.reviewed_volume_ml:.2f} mL"
        if self.volume_change_percent is not None:
            volume += f" ({self.volume_change_percent:+.1f}%)"
        return ", ".join(parts + [volume])


@dataclass(frozen=True, kw_only=True)
class ReviewRecord(Record):
    reviewed: bool
    origin: str  # "automatic" (model output, unchanged), "edited" (model output corrected), "manual"
    reviewer: str | None = None
    reviewed_at: str | None = None  # ISO 8601, UTC
    mask_sha256: str | None = None  # of the mask file this record describes
    automatic_model: str | None = None  # "name@version" of the model that drew the automatic contour
    edit_metrics: EditMetrics | None = None  # None: no automatic contour to compare with ({} in the file)

    @property
    def algorithm_type(self) -> str:
        """DICOM SEG SegmentAlgorithmType: SEMIAUTOMATIC for a reviewed contour the reader edited from
        an automatic one; MANUAL for any other reviewed contour (drawn by the reader, or an automatic
        contour the reader checked and accepted unchanged: a reader vouches for it); AUTOMATIC when
        not reviewed (including a mask changed after its review)."""
        if not self.reviewed:
            return "AUTOMATIC"
        return "SEMIAUTOMATIC" if self.origin == "edited" else "MANUAL"

    @classmethod
    def from_json(cls, data: Any, where: str = "") -> Self:
        if isinstance(data, dict) and data.get("edit_metrics") == {}:
            data = {**data, "edit_metrics": None}  # no automatic contour (same keys, same order)
        record = super().from_json(data, where)
        if record.origin not in ORIGINS:
            raise InputError(f"{where + '.' if where else ''}origin: {record.origin!r} is not one of {', '.join(ORIGINS)}")
        return record

    def to_dict(self) -> dict[str, Any]:
        document = super().to_dict()
        if "edit_metrics" in document and document["edit_metrics"] is None:
            document["edit_metrics"] = {}
        return document

    @classmethod
    def from_dict(cls, data: Any, path: str | Path | None = None) -> Self:
        """The typed record; InputError naming the file (`path`), the key and the value when it breaks its
        schema (types and ranges) or a typed key has the wrong type."""
        require_valid(data, "review", path, "the review record")
        try:
            return cls.from_json(data)
        except InputError as exc:
            raise InputError(f"the review record: {exc.message}", path) from exc
