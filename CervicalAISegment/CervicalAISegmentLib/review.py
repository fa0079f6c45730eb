"""Reader review in the scene: "Mark as reviewed" freezes a copy and records who changed what.

`mark_reviewed` takes the reader's working copy (status "draft"), and

1. writes its tumour mask on the T2WI grid to `<folder>/tumor.nii.gz` and the engine's review
   record beside it (`CervicalAILib.review.record.mark_reviewed`: reviewer, UTC time, SHA-256 of the
   mask, SEG algorithm type, and the edit metrics against the automatic contour - Dice, HD95,
   volume change);
2. adds a NEW segmentation node "<T2WI> tumour (reviewed by <name>)" with status "reviewed",
   the same record as node attributes and a content hash of its mask. The working copy stays
   editable; the reviewed copy is never changed by CervicalAI (a new automatic run, or another
   review, makes new nodes), and an edit made to it by hand is detected (`review_state`).
"""

from __future__ import annotations

import datetime as _dt
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from CervicalAILib.core import atomic
from CervicalAILib.core.errors import InputError
from CervicalAILib.review import record as engine_review
from CervicalAISegmentLib import nodes as N
from CervicalAISegmentLib.segmentation import MASK_FILE, create_tumour_segmentation, mask_sha256, tumour_mask

REVIEWER = N.PREFIX + "Reviewer"
REVIEWED_AT = N.PREFIX + "ReviewedAt"
ORIGIN = N.PREFIX + "Origin"  # automatic / edited / manual (DICOM SEG algorithm type)
ALGORITHM_TYPE = N.PREFIX + "AlgorithmType"
REVIEW_MASK_PATH = N.PREFIX + "ReviewMaskPath"
REVIEW_RECORD_PATH = N.PREFIX + "ReviewRecordPath"
AUTOMATIC_MODEL = N.PREFIX + "AutomaticModel"
# Edit metrics (CervicalAILib.io.measurements.edit_metrics) as attributes: key in the record -> attribute.
METRIC_ATTRIBUTES = {
    "dice": N.PREFIX + "Dice",
    "hd95_mm": N.PREFIX + "HD95mm",
    "automatic_volume_ml": N.PREFIX + "AutomaticVolumeMl",
    "reviewed_volume_ml": N.PREFIX + "ReviewedVolumeMl",
    "volume_change_ml": N.PREFIX + "VolumeChangeMl",
    "volume_change_percent": N.PREFIX + "VolumeChangePercent",
}
# What review_state() answers.
EDITED_AFTER_REVIEW = "edited after review"
NOT_CERVICALAI = "not a CervicalAI segmentation"


@dataclass
class ReviewResult:
    reviewed: Any  # the new, frozen vtkMRMLSegmentationNode
    record: engine_review.ReviewRecord
    mask_path: Path

    def summary(self) -> str:
        metrics = self.record.edit_metrics
        if not metrics:
            return f"Reviewed by {self.record.reviewer} at {self.record.reviewed_at} (drawn by hand: no automatic contour)"
        return f"Reviewed by {self.record.reviewer} at {self.record.reviewed_at}: " + format_metrics(metrics)


def format_metrics(metrics: dict[str, Any]) -> str:
    """'Dice 0.91, HD95 2.3 mm, volume 10.2 -> 11.0 mL (+7.8%)' for the edit metrics."""
    parts = [f"Dice {metrics['dice']:.3f}"]
    parts.append(f"HD95 {metrics['hd95_mm']:.1f} mm" if metrics.get("hd95_mm") is not None else "HD95 n/a")
    volume = f"volume {metrics['automatic_volume_ml']:.2f} -> {metrics['reviewed_volume_ml']:.2f} mL"
    if metrics.get("volume_change_percent") is not None:
        volume += f" ({metrics['volume_change_percent']:+.1f}%)"
    parts.append(volume)
    return ", ".join(parts)


# Verdicts of the content-hash check, by what the hash depends on (see _hash_inputs): the widgets ask
# for the review state on every parameter change (each keystroke in the reviewer's name), and hashing
# a clinical-size mask takes tens of milliseconds (Testing/benchmarks/results/slicer.md).
_VERDICTS: OrderedDict[tuple, bool] = OrderedDict()
_VERDICTS_KEPT = 64


def review_state(node) -> str:
    """"automatic", "draft", "reviewed", "edited after review" (a reviewed copy whose mask no
    longer matches its recorded content hash) or "not a CervicalAI segmentation"."""
    status = N.status_of(node)
    if status not in (N.STATUS_AUTOMATIC, N.STATUS_DRAFT, N.STATUS_REVIEWED):
        return NOT_CERVICALAI
    if status == N.STATUS_REVIEWED and not _mask_matches_record(node):
        return EDITED_AFTER_REVIEW
    return status


def _mask_matches_record(node) -> bool:
    """Whether the reviewed copy's mask still has the content hash recorded when it was frozen."""
    key = _hash_inputs(node)
    if key is not None and key in _VERDICTS:
        _VERDICTS.move_to_end(key)
        return _VERDICTS[key]
    try:
        matches = mask_sha256(tumour_mask(node)) == node.GetAttribute(N.MASK_SHA256)
    except InputError:
        matches = False
    if key is not None:
        _VERDICTS[key] = matches
        while len(_VERDICTS) > _VERDICTS_KEPT:
            _VERDICTS.popitem(last=False)
    return matches


def _hash_inputs(node) -> tuple | None:
    """Everything the mask's content hash depends on, cheap to read: the node's, its segmentation's
    and each segment's labelmap modification times (VTK's are global and never repeat), the
    recorded hash, and the T2WI grid the mask is sampled on (with parent transforms). None when
    it cannot be read (then the hash is computed)."""
    import slicer
    import vtk

    try:
        segmentation = node.GetSegmentation()
        labelmap_name = slicer.vtkSegmentationConverter.GetSegmentationBinaryLabelmapRepresentationName()
        segments = []
        for index in range(segmentation.GetNumberOfSegments()):
            representation = segmentation.GetNthSegment(index).GetRepresentation(labelmap_name)
            segments.append((segmentation.GetNthSegmentID(index),
                             representation.GetMTime() if representation is not None else 0))  # fmt: skip
        t2 = node.GetNodeReference(N.REFERENCE_ROLE["T2W"])
        grid = (tuple(N.world_ijk_to_ras(t2).ravel()), N.volume_size(t2)) if t2 is not None else None
        parent, to_world = node.GetParentTransformNode(), None
        if parent is not None:
            if not parent.IsTransformToWorldLinear():
                return None
            matrix = vtk.vtkMatrix4x4()
            parent.GetMatrixTransformToWorld(matrix)
            to_world = tuple(matrix.GetElement(row, column) for row in range(4) for column in range(4))
        return (node.GetID(), node.GetMTime(), segmentation.GetMTime(), tuple(segments), node.GetAttribute(N.MASK_SHA256),
                grid, to_world)  # fmt: skip
    except (AttributeError, InputError):
        return None


def is_reviewed(node) -> bool:
    return node is not None and review_state(node) == N.STATUS_REVIEWED


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
    atomic.write_image(reviewed_mask, mask_path)
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


def record_attributes(record: engine_review.ReviewRecord, mask_path: Path) -> dict[str, Any]:
    values: dict[str, Any] = {
        REVIEWER: record.reviewer,
        REVIEWED_AT: record.reviewed_at,
        ORIGIN: record.origin,
        ALGORITHM_TYPE: record.algorithm_type,
        AUTOMATIC_MODEL: record.automatic_model,
        REVIEW_MASK_PATH: str(mask_path.resolve()),
        REVIEW_RECORD_PATH: str(engine_review.record_path(mask_path).resolve()),
    }
    for key, attribute in METRIC_ATTRIBUTES.items():
        value = record.edit_metrics.get(key)
        values[attribute] = float(value) if value is not None else None
    return values


def record_from_attributes(node) -> engine_review.ReviewRecord:
    """The review record a reviewed node carries (reviewer, time, origin, edit metrics)."""
    metrics = {}
    if node.GetAttribute(METRIC_ATTRIBUTES["dice"]):
        metrics = {key: N.float_attribute(node, attribute) for key, attribute in METRIC_ATTRIBUTES.items()}
    origin = node.GetAttribute(ORIGIN) or "manual"
    if origin not in engine_review.ORIGINS:
        raise InputError(f"segmentation {node.GetName()!r} has an unknown review origin {origin!r}")
    return engine_review.ReviewRecord(
        reviewed=True,
        origin=origin,
        reviewer=node.GetAttribute(REVIEWER) or None,
        reviewed_at=node.GetAttribute(REVIEWED_AT) or None,
        automatic_model=node.GetAttribute(AUTOMATIC_MODEL) or None,
        edit_metrics=metrics,
    )


def export_tumour_mask(node, out_folder: str | Path, reference_image: sitk.Image | None = None) -> tuple[Path, bool]:
    """Write the node's tumour mask to `<out_folder>/tumor.nii.gz` for the engine, on the grid of
    `reference_image` (default: the T2WI the node references, else its own reference geometry).

    For an intact reviewed copy the review record is written beside it (from the node's
    attributes, with the new file's SHA-256), so `cervicalai predict` sees a reviewed mask.
    Returns (mask path, reviewed?). A reviewed copy edited after review is exported as unreviewed.
    """
    out_folder = Path(out_folder)
    mask_path = out_folder / MASK_FILE
    if mask_path.exists():
        raise InputError(f"{mask_path} exists: masks are exported to a new folder")
    state = review_state(node)
    mask = tumour_mask(node, reference_image)
    if not sitk.GetArrayViewFromImage(mask).any():
        raise InputError(f"segmentation {node.GetName()!r} has no tumour voxels")
    atomic.write_image(mask, mask_path)
    reviewed = state == N.STATUS_REVIEWED
    if reviewed:
        record = record_from_attributes(node)
        from CervicalAILib.core.hashing import sha256_file

        record.mask_sha256 = sha256_file(mask_path)
        atomic.write_json(engine_review.record_path(mask_path), record.to_dict())
    return mask_path, reviewed


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


EXPORTED_TO = N.PREFIX + "ExportedTo"


def export_reviewed_case(node, out_dir: str | Path, clinical: dict[str, Any] | None = None) -> Path:
    """Export an intact reviewed segmentation with its volumes as an annotated case folder:

        <out_dir>/T2W.nii.gz ... (the referenced volumes, each on its own grid)
        <out_dir>/labels/tumor.nii.gz              (the reviewed mask, T2WI grid)
        <out_dir>/labels/tumor.nii.gz.review.json  (reviewer, time, edit metrics, SEG algorithm type)
        <out_dir>/clinical.json                    (when given)

    Refuses an unreviewed or edited-after-review segmentation and an existing non-empty folder.
    """
    from CervicalAILib.core.hashing import sha256_file
    from CervicalAISegmentLib.volumes import export_case_folder

    state = review_state(node)
    if state != N.STATUS_REVIEWED:
        raise InputError(f"segmentation {node.GetName()!r} is {state}, not reviewed: only reviewed masks are exported")
    mask = tumour_mask(node)
    out_dir = Path(out_dir)
    export_case_folder(N.role_references(node), out_dir, labels={"tumor": mask}, clinical=clinical)
    label_path = out_dir / "labels" / MASK_FILE
    record = record_from_attributes(node)
    record.mask_sha256 = sha256_file(label_path)
    atomic.write_json(engine_review.record_path(label_path), record.to_dict())
    node.SetAttribute(EXPORTED_TO, str(out_dir.resolve()))
    return out_dir
