"""Reader review in the scene: "Mark as reviewed" freezes a copy and records who changed what.

`mark_reviewed` takes the reader's working copy (status "draft"), and

1. writes its tumour mask on the T2WI grid to `<folder>/tumor.nii.gz` and the engine's review
   record beside it (`CervicalAILib.review.record.mark_reviewed`: reviewer, UTC time, SHA-256 of the
   mask, SEG algorithm type, and the edit metrics against the automatic contour - Dice, HD95,
   volume change);
2. adds a NEW segmentation node "<T2WI> tumour (reviewed by <name>)" with status "reviewed",
   the same record as node attributes and a content hash of its mask. The working copy stays
   editable; the reviewed copy is never changed by CervicalAI (a new automatic run, or another
   review, makes new nodes), and an edit made to it by hand is detected (CervicalAIHubLib.reviewed.review_state).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from CervicalAIHubLib import scene as N
from CervicalAIHubLib.reviewed import record_attributes
from CervicalAIHubLib.segmentation import create_tumour_segmentation, mask_sha256, tumour_mask
from CervicalAILib.contracts.review import ReviewRecord
from CervicalAILib.contracts.segmentation import MASK_FILE
from CervicalAILib.core.errors import InputError
from CervicalAILib.io.images import write_image
from CervicalAILib.review import record as engine_review


@dataclass
class ReviewResult:
    reviewed: Any  # the new, frozen vtkMRMLSegmentationNode
    record: ReviewRecord
    mask_path: Path

    def summary(self) -> str:
        metrics = self.record.edit_metrics
        if metrics is None:
            return f"Reviewed by {self.record.reviewer} at {self.record.reviewed_at} (drawn by hand: no automatic contour)"
        return f"Reviewed by {self.record.reviewer} at {self.record.reviewed_at}: " + metrics.summary()


def mark_reviewed(
    scene,
    working_node,
    reviewer: str,
    out_folder: str | Path,
    now: _dt.datetime | None = None,
) -> ReviewResult:
    """Freeze the reader's version of the tumour as a new reviewed node (see module doc).

    working_node: the draft (or an automatic segmentation reviewed unchanged). out_folder: a new
    or empty folder for tumor.nii.gz and its review record; nothing there is overwritten.
    """
    if working_node is None or not working_node.IsA("vtkMRMLSegmentationNode"):
        raise InputError("select the segmentation to mark as reviewed")
    status = N.status_of(working_node)
    if status == N.STATUS_REVIEWED:
        raise InputError(
            f"segmentation {working_node.GetName()!r} is already a reviewed copy; edit its working copy "
            "(or make a new one) and mark that as reviewed"
        )
    if not reviewer or not reviewer.strip():
        raise InputError("enter the reviewer's name before marking the segmentation as reviewed")
    t2 = working_node.GetNodeReference(N.REFERENCE_ROLE["T2W"])
    if t2 is None:
        raise InputError(f"segmentation {working_node.GetName()!r} does not reference its T2WI volume")
    grid = N.grid_image(t2)
    reviewed_mask = tumour_mask(working_node, grid)

    automatic_node = working_node if status == N.STATUS_AUTOMATIC else working_node.GetNodeReference(N.REFERENCE_AUTOMATIC)
    automatic_mask = tumour_mask(automatic_node, grid) if automatic_node is not None else None
    automatic_model = automatic_node.GetAttribute(N.MODEL) if automatic_node is not None else None

    out_folder = Path(out_folder)
    mask_path = out_folder / MASK_FILE
    if mask_path.exists():
        raise InputError(f"{mask_path} exists: a review is written to a new folder, never over another one")
    write_image(reviewed_mask, mask_path)
    record = engine_review.mark_reviewed(mask_path, reviewer, automatic_mask, automatic_model or None, now)

    reviewed = create_tumour_segmentation(
        scene, reviewed_mask, t2, f"{t2.GetName()} tumour (reviewed by {record.reviewer})", N.STATUS_REVIEWED
    )
    N.copy_role_references(working_node, reviewed)
    if automatic_node is not None:
        reviewed.SetNodeReferenceID(N.REFERENCE_AUTOMATIC, automatic_node.GetID())
    _inherit(working_node, reviewed)
    N.set_attributes(reviewed, record_attributes(record, mask_path))
    N.set_attributes(reviewed, {N.MASK_SHA256: mask_sha256(reviewed_mask)})
    working_node.SetNodeReferenceID(N.REFERENCE_LAST_REVIEWED, reviewed.GetID())
    return ReviewResult(reviewed, record, mask_path)


def new_working_copy(scene, source_node) -> Any:
    """A new editable draft from any CervicalAI segmentation (e.g. to correct a reviewed copy again)."""
    status = N.status_of(source_node)
    if status not in (N.STATUS_AUTOMATIC, N.STATUS_DRAFT, N.STATUS_REVIEWED):
        raise InputError(f"segmentation {source_node.GetName()!r} was not made by CervicalAI")
    t2 = source_node.GetNodeReference(N.REFERENCE_ROLE["T2W"])
    if t2 is None:
        raise InputError(f"segmentation {source_node.GetName()!r} does not reference its T2WI volume")
    mask = tumour_mask(source_node, N.grid_image(t2))
    draft = create_tumour_segmentation(scene, mask, t2, f"{t2.GetName()} tumour (review)", N.STATUS_DRAFT)
    N.copy_role_references(source_node, draft)
    automatic = source_node if status == N.STATUS_AUTOMATIC else source_node.GetNodeReference(N.REFERENCE_AUTOMATIC)
    if automatic is not None:
        draft.SetNodeReferenceID(N.REFERENCE_AUTOMATIC, automatic.GetID())
    _inherit(source_node, draft)
    return draft


def _inherit(source, target) -> None:
    """Copy the run's attributes (folders, model, flagged slices) and the probability reference."""
    for name in N.INHERITED:
        target.SetAttribute(name, source.GetAttribute(name) or "")
    probability = source.GetNodeReference(N.REFERENCE_PROBABILITY)
    if probability is not None:
        target.SetNodeReferenceID(N.REFERENCE_PROBABILITY, probability.GetID())
