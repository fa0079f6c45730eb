"""A reviewed segmentation in the scene: is it still as reviewed, its review record, its exports.

The Segment module makes reviewed copies (CervicalAISegmentLib.review.mark_reviewed); the hub's
workflow and export, and the Predict module's inputs, read them through here: `review_state` (a
reviewed copy whose mask no longer matches its recorded content hash is "edited after review"),
the record as node attributes, the tumour mask for the engine with its record, the reviewed case.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from CervicalAIHubLib import scene as N
from CervicalAIHubLib.segmentation import mask_sha256, tumour_mask
from CervicalAIHubLib.volumes import export_case_folder
from CervicalAILib.contracts.review import ORIGINS, EditMetrics, ReviewRecord, record_path
from CervicalAILib.contracts.segmentation import MASK_FILE
from CervicalAILib.core import atomic
from CervicalAILib.core.errors import InputError
from CervicalAILib.core.hashing import sha256_file
from CervicalAILib.io.images import write_image

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
        return N.NOT_CERVICALAI
    if status == N.STATUS_REVIEWED and not _mask_matches_record(node):
        return N.EDITED_AFTER_REVIEW
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


def latest_reviewed(scene) -> Any:
    """The newest intact reviewed segmentation of the scene (None when there is none)."""
    reviewed = [node for node in N.segmentations_of(scene, N.STATUS_REVIEWED) if is_reviewed(node)]
    return reviewed[-1] if reviewed else None


def record_attributes(record: ReviewRecord, mask_path: Path) -> dict[str, Any]:
    """The review record as node attributes (record_from_attributes reads them back)."""
    values: dict[str, Any] = {
        N.REVIEWER: record.reviewer,
        N.REVIEWED_AT: record.reviewed_at,
        N.ORIGIN: record.origin,
        N.ALGORITHM_TYPE: record.algorithm_type,
        N.AUTOMATIC_MODEL: record.automatic_model,
        N.REVIEW_MASK_PATH: str(mask_path.resolve()),
        N.REVIEW_RECORD_PATH: str(record_path(mask_path).resolve()),
    }
    for key, attribute in N.METRIC_ATTRIBUTES.items():
        value = getattr(record.edit_metrics, key) if record.edit_metrics is not None else None
        values[attribute] = float(value) if value is not None else None
    return values


def record_from_attributes(node) -> ReviewRecord:
    """The review record a reviewed node carries (reviewer, time, origin, edit metrics)."""
    metrics = None
    if node.GetAttribute(N.METRIC_ATTRIBUTES["dice"]):
        values = {key: N.float_attribute(node, attribute) for key, attribute in N.METRIC_ATTRIBUTES.items()}
        metrics = EditMetrics.from_json(values, f"segmentation {node.GetName()!r} edit metrics")
    origin = node.GetAttribute(N.ORIGIN) or "manual"
    if origin not in ORIGINS:
        raise InputError(f"segmentation {node.GetName()!r} has an unknown review origin {origin!r}")
    return ReviewRecord(
        reviewed=True,
        origin=origin,
        reviewer=node.GetAttribute(N.REVIEWER) or None,
        reviewed_at=node.GetAttribute(N.REVIEWED_AT) or None,
        automatic_model=node.GetAttribute(N.AUTOMATIC_MODEL) or None,
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
    write_image(mask, mask_path)
    reviewed = state == N.STATUS_REVIEWED
    if reviewed:
        record = replace(record_from_attributes(node), mask_sha256=sha256_file(mask_path))
        atomic.write_json(record_path(mask_path), record.to_dict())
    return mask_path, reviewed


def export_reviewed_case(node, out_dir: str | Path, clinical: dict[str, Any] | None = None) -> Path:
    """Export an intact reviewed segmentation with its volumes as an annotated case folder:

        <out_dir>/T2W.nii.gz ... (the referenced volumes, each on its own grid)
        <out_dir>/labels/tumor.nii.gz              (the reviewed mask, T2WI grid)
        <out_dir>/labels/tumor.nii.gz.review.json  (reviewer, time, edit metrics, SEG algorithm type)
        <out_dir>/clinical.json                    (when given)

    Refuses an unreviewed or edited-after-review segmentation and an existing non-empty folder.
    """
    state = review_state(node)
    if state != N.STATUS_REVIEWED:
        raise InputError(f"segmentation {node.GetName()!r} is {state}, not reviewed: only reviewed masks are exported")
    mask = tumour_mask(node)
    out_dir = Path(out_dir)
    export_case_folder(N.role_references(node), out_dir, labels={"tumor": mask}, clinical=clinical)
    label_path = out_dir / "labels" / MASK_FILE
    record = replace(record_from_attributes(node), mask_sha256=sha256_file(label_path))
    atomic.write_json(record_path(label_path), record.to_dict())
    node.SetAttribute(N.EXPORTED_TO, str(out_dir.resolve()))
    return out_dir
