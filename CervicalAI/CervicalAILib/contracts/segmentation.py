"""segmentation.json, typed: what `cervicalai segment` (and the Segment module) write beside tumor.nii.gz.

    summary = SegmentationSummary.from_dict(document, path)   # InputError naming the file, the key and the value
    summary.confidence, summary.flagged_slices[0].slice, summary.ood.score, ...
    summary.to_dict() == document                             # the same JSON, key for key and in its order

The JSON Schema is contracts/schemas/segmentation.schema.json (copy in docs/schemas/); docs/segmentation.md
describes the file. Parts read by no other stage (per-slice statistics, post-processing counts, device,
geometry, timings) stay plain JSON here. The output folder's file names are defined here once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from CervicalAILib.contracts.records import Record
from CervicalAILib.contracts.schemas import require_valid
from CervicalAILib.core.errors import InputError

MASK_FILE = "tumor.nii.gz"
PROBABILITY_FILE = "tumor_probability.nii.gz"
SEGMENTATION_SUMMARY = "segmentation.json"


@dataclass(frozen=True, kw_only=True)
class SliceConfidence(Record):
    """flagged_slices[]: a T2WI slice (0-based) to check first, and its confidence."""

    slice: int
    confidence: float | None = None


@dataclass(frozen=True, kw_only=True)
class SegmentationModel(Record):
    name: str | None = None
    version: str | None = None
    label: str | None = None
    path: str | None = None
    training_data: str | None = None
    source: str | None = None  # "shipped" or "user-supplied"
    bundle_json_sha256: str | None = None


@dataclass(frozen=True, kw_only=True)
class AnatomyGate(Record):
    """Whether the network recognised a cervix or uterus (no tumour contour is made without one)."""

    applied: bool | None = None
    anatomy_found: bool | None = None
    message: str | None = None


@dataclass(frozen=True, kw_only=True)
class OODReport(Record):
    """How unlike the network's training images the study is (score above 1: unlike them)."""

    available: bool | None = None
    score: float | None = None
    unusual: bool | None = None
    message: str | None = None
    reason: str | None = None  # why it is not available


@dataclass(frozen=True, kw_only=True)
class SegmentationSummary(Record):
    """segmentation.json (segmentation/finish.py builds it; outputs.py adds `files`, the CLI `input`/`registration`)."""

    tumor_found: bool | None = None
    status: str | None = None
    message: str | None = None
    volume_ml: float | None = None
    max_diameter_mm: float | None = None
    largest_slice_index: int | None = None
    confidence: float | None = None
    certainty: float | None = None
    flip_agreement: float | None = None
    flagged_slices: list[SliceConfidence] | None = None
    model: SegmentationModel | None = None
    sequences_used: list[str] | None = None
    sequences_available: list[str] | None = None
    fallback: str | None = None
    anatomy_gate: AnatomyGate | None = None
    ood: OODReport | None = None
    case: dict[str, Any] | None = None  # the case the segmentation was made on (contracts/case_identity.py)
    warnings: list[str] | None = None
    files: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, data: Any, path: str | Path | None = None) -> Self:
        """The typed summary; InputError naming the file (`path`), the key and the value when it breaks its
        schema (types and ranges) or a typed key has the wrong type (an edited summary carries no values further)."""
        require_valid(data, "segmentation", path, "the segmentation summary")
        try:
            return cls.from_json(data)
        except InputError as exc:
            raise InputError(f"the segmentation summary: {exc.message}", path) from exc

    @property
    def anatomy_found(self) -> bool:
        """False only when the anatomy gate ran and found no cervix or uterus."""
        return self.anatomy_gate is None or self.anatomy_gate.anatomy_found is not False
