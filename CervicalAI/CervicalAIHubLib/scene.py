"""The scene vocabulary of all three modules: node attributes, statuses, references, grids.

Everything CervicalAI records on MRML nodes is a node attribute with the prefix "CervicalAI."
(saved with the scene) or a node reference with the prefix "CervicalAI" (kept when nodes are
renamed). The names and values never change: scenes saved by earlier versions must still read.
Only MRML classes are used (testable with the slicer-core wheel); slicer and vtk are imported
inside the functions, like the engine's geometry bridge.
"""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any

import numpy as np
import SimpleITK as sitk

from CervicalAILib.core.errors import InputError
from CervicalAILib.io.case import ROLES
from CervicalAILib.io.geometry import LPS_TO_RAS

PREFIX = "CervicalAI."
# What a node is in the CervicalAI workflow.
STATUS = PREFIX + "Status"
STATUS_AUTOMATIC = "automatic"  # the network's contour, kept unchanged (hidden, reference for the edit metrics)
STATUS_DRAFT = "draft"  # the reader's working copy, edited in the Segment Editor
STATUS_REVIEWED = "reviewed"  # frozen copy made by "Mark as reviewed"
STATUS_PROBABILITY = "probability"  # the network's tumour probability map (volume)
STATUS_ORGANS = "organs"  # the network's anatomical structures (segmentation, hidden: context for the reader)
STATUS_READOUT = "readout"  # table of a readout (Predict)
# The sequence role of a volume (T2W, DWI, ADC, CET1), set when CervicalAI loads a study.
ROLE = PREFIX + "Role"
# The case folder CervicalAI loaded a volume from (a `study register` output is on the T2WI grid: the readout
# then uses the native study it names, with the folder's transforms; CervicalAIHubLib.volumes.readout_folders).
LOADED_FROM = PREFIX + "LoadedFrom"
# Where the inputs and outputs of a run are on disk.
CASE_FOLDER = PREFIX + "CaseFolder"  # the input case folder (each sequence on its own grid)
TRANSFORMS_FOLDER = PREFIX + "TransformsFolder"  # `study register` output: transforms/<ROLE>.tfm onto the T2WI
RESULT_FOLDER = PREFIX + "ResultFolder"  # output folder of `cervicalai segment`
MODEL = PREFIX + "Model"  # "name@version" of the segmentation model
CONFIDENCE = PREFIX + "Confidence"
CREATED_AT = PREFIX + "CreatedAt"
TUMOUR_SEGMENT_ID = PREFIX + "TumourSegmentID"
FLAGGED_SLICES = PREFIX + "FlaggedSlices"  # JSON list of the low-confidence slices and where they are
MASK_SHA256 = PREFIX + "MaskSHA256"  # content hash of the frozen mask (automatic and reviewed nodes)
# Node references (name -> node): the volumes a segmentation was made from and its automatic original.
REFERENCE_ROLE = {role: f"CervicalAI{role}" for role in ROLES}
REFERENCE_AUTOMATIC = "CervicalAIAutomatic"
REFERENCE_LAST_REVIEWED = "CervicalAILastReviewed"
REFERENCE_PROBABILITY = "CervicalAIProbability"
# Attributes a working or reviewed copy inherits from the segmentation it was made from.
INHERITED = (CASE_FOLDER, TRANSFORMS_FOLDER, RESULT_FOLDER, MODEL, CONFIDENCE, FLAGGED_SLICES)
# The review record on a reviewed copy (CervicalAIHubLib.reviewed; made by CervicalAISegmentLib.review).
REVIEWER = PREFIX + "Reviewer"
REVIEWED_AT = PREFIX + "ReviewedAt"
ORIGIN = PREFIX + "Origin"  # automatic / edited / manual (DICOM SEG algorithm type)
ALGORITHM_TYPE = PREFIX + "AlgorithmType"
REVIEW_MASK_PATH = PREFIX + "ReviewMaskPath"
REVIEW_RECORD_PATH = PREFIX + "ReviewRecordPath"
AUTOMATIC_MODEL = PREFIX + "AutomaticModel"
# Edit metrics (CervicalAILib.io.measurements.edit_metrics) as attributes: key in the record -> attribute.
METRIC_ATTRIBUTES = {
    "dice": PREFIX + "Dice",
    "hd95_mm": PREFIX + "HD95mm",
    "automatic_volume_ml": PREFIX + "AutomaticVolumeMl",
    "reviewed_volume_ml": PREFIX + "ReviewedVolumeMl",
    "volume_change_ml": PREFIX + "VolumeChangeMl",
    "volume_change_percent": PREFIX + "VolumeChangePercent",
}
# The Predict module's clinical form for a case (JSON: field -> value), on the case's T2WI volume:
# the hub's export writes it as the case folder's clinical.json.
CLINICAL_VALUES = PREFIX + "ClinicalValues"
EXPORTED_TO = PREFIX + "ExportedTo"  # the case folder a reviewed copy was exported to (hub, step 5)
# What CervicalAIHubLib.reviewed.review_state answers besides the statuses.
EDITED_AFTER_REVIEW = "edited after review"
NOT_CERVICALAI = "not a CervicalAI segmentation"


def now_utc(now: _dt.datetime | None = None) -> _dt.datetime:
    return (now or _dt.datetime.now(_dt.UTC)).replace(microsecond=0)


def nodes_by_class(scene, class_name: str) -> list[Any]:
    """The scene's nodes of a class, oldest first, as a list.

    `vtkMRMLScene.GetNodesByClass` returns a new collection that the caller owns (as in C++):
    without `UnRegister` it is never freed, and neither are the nodes it holds, so a scene closed
    after the hub's workflow refresh would keep its volumes in memory. Slicer's own
    `slicer.util.getNodesByClass` releases it the same way.
    """
    collection = scene.GetNodesByClass(class_name)
    collection.UnRegister(None)  # the Python wrapper keeps the collection alive while it is used here
    return [collection.GetItemAsObject(index) for index in range(collection.GetNumberOfItems())]


def status_of(node) -> str:
    """The CervicalAI status attribute of a node ("" for nodes CervicalAI did not make)."""
    return (node.GetAttribute(STATUS) or "") if node is not None else ""


def segmentations_of(scene, status: str | None = None) -> list[Any]:
    """CervicalAI segmentation nodes in the scene (optionally with one status), oldest first."""
    return [node for node in nodes_by_class(scene, "vtkMRMLSegmentationNode")
            if status_of(node) and (status is None or status_of(node) == status)]  # fmt: skip


def set_attributes(node, values: dict[str, Any]) -> None:
    """Set node attributes; None becomes "" and floats are written with 6 significant digits."""
    for name, value in values.items():
        if value is None:
            text = ""
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, float):
            text = f"{value:.6g}"
        else:
            text = str(value)
        node.SetAttribute(name, text)


def float_attribute(node, name: str) -> float | None:
    text = node.GetAttribute(name)
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def clinical_values_from_json(text: str) -> dict[str, Any]:
    """The clinical form's values stored as JSON (the Predict module's parameter node, CLINICAL_VALUES)."""
    if not text:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"stored clinical values are not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise InputError("stored clinical values must be a JSON object")
    return data


def clinical_values(volume_node) -> dict[str, Any]:
    """The clinical values recorded for a case on its T2WI volume (CLINICAL_VALUES), without the empty
    fields; {} when there are none."""
    try:
        values = clinical_values_from_json(volume_node.GetAttribute(CLINICAL_VALUES) if volume_node is not None else "")
    except InputError as exc:
        raise InputError(f"volume {volume_node.GetName()!r}: {exc}") from exc
    return {name: value for name, value in values.items() if value is not None}


def record_clinical_values(segmentation, text: str, t2=None) -> Any:
    """Record the clinical form (JSON) with the case of `segmentation`: on the T2WI it references, else
    on `t2` (a segmentation CervicalAI did not make). Returns the volume written to (None: no T2WI)."""
    referenced = segmentation.GetNodeReference(REFERENCE_ROLE["T2W"]) if segmentation is not None else None
    volume = referenced or t2
    if volume is not None:
        volume.SetAttribute(CLINICAL_VALUES, text or "")
    return volume


def set_role_references(node, role_nodes: dict[str, Any]) -> None:
    """Reference the input volumes (role -> volume node) from `node`."""
    for role, volume in role_nodes.items():
        if role not in REFERENCE_ROLE:
            raise InputError(f"unknown sequence role {role!r} (roles: {', '.join(ROLES)})")
        if volume is not None:
            node.SetNodeReferenceID(REFERENCE_ROLE[role], volume.GetID())


def role_references(node) -> dict[str, Any]:
    """role -> referenced volume node, for the roles `node` references."""
    found = {}
    for role, reference in REFERENCE_ROLE.items():
        volume = node.GetNodeReference(reference)
        if volume is not None:
            found[role] = volume
    return found


def copy_role_references(source, target) -> None:
    set_role_references(target, role_references(source))


def unique_name(scene, name: str) -> str:
    """`name`, or `name 2`, `name 3`, ... when a node of that name exists."""
    if not scene.GetFirstNodeByName(name):
        return name
    number = 2
    while scene.GetFirstNodeByName(f"{name} {number}"):
        number += 1
    return f"{name} {number}"


# --- geometry ------------------------------------------------------------------------------------

def _matrix(vtk_matrix) -> np.ndarray:
    return np.array([[vtk_matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def world_ijk_to_ras(volume_node) -> np.ndarray:
    """4x4 matrix from voxel index (i, j, k) to world RAS, parent transforms included.

    A non-linear parent transform is refused (as by the geometry bridge).
    """
    import vtk

    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    ijk_to_ras = _matrix(matrix)
    parent = volume_node.GetParentTransformNode()
    if parent is not None:
        if not parent.IsTransformToWorldLinear():
            raise InputError(
                f"volume {volume_node.GetName()!r} is under a non-linear transform ({parent.GetName()!r}); harden it first"
            )
        to_world = vtk.vtkMatrix4x4()
        parent.GetMatrixTransformToWorld(to_world)
        ijk_to_ras = _matrix(to_world) @ ijk_to_ras
    return ijk_to_ras


def volume_size(volume_node) -> tuple[int, int, int]:
    image_data = volume_node.GetImageData() if volume_node is not None else None
    if image_data is None:
        raise InputError(f"volume {volume_node.GetName() if volume_node else None!r} has no voxel data")
    extent = image_data.GetExtent()
    size = tuple(extent[2 * axis + 1] - extent[2 * axis] + 1 for axis in range(3))
    if min(size) <= 0:
        raise InputError(f"volume {volume_node.GetName()!r} is empty")
    return size  # type: ignore[return-value]


def grid_image(volume_node) -> sitk.Image:
    """An empty uint8 image on the volume's world voxel grid (LPS): the grid, without copying voxels."""
    size = volume_size(volume_node)
    ijk_to_lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ world_ijk_to_ras(volume_node)
    columns = ijk_to_lps[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)
    image = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple(float(d) for d in (columns / spacing).ravel()))
    image.SetOrigin(tuple(float(o) for o in ijk_to_lps[:3, 3]))
    return image


def lps_direction(volume_node) -> np.ndarray:
    """3x3 LPS direction cosines (columns: i, j, k axes) of a volume node, parent transforms included."""
    columns = world_ijk_to_ras(volume_node)[:3, :3]
    return LPS_TO_RAS @ (columns / np.linalg.norm(columns, axis=0))


def slice_center_ras(volume_node, k: int, weights: np.ndarray | None = None) -> np.ndarray:
    """World RAS point of slice `k` of a volume: the weighted centroid of `weights` ([j, i] array,
    e.g. the tumour mask of that slice) when it has any weight, else the centre of the slice."""
    size = volume_size(volume_node)
    if not 0 <= int(k) < size[2]:
        raise InputError(f"slice {k} is outside volume {volume_node.GetName()!r} (slices 0-{size[2] - 1})")
    i, j = (size[0] - 1) / 2.0, (size[1] - 1) / 2.0
    if weights is not None:
        weights = np.asarray(weights, dtype=float)
        if weights.shape != (size[1], size[0]):
            raise InputError(f"slice weights have shape {weights.shape}, expected {(size[1], size[0])} ([j, i])")
        total = weights.sum()
        if total > 0:
            jj, ii = np.indices(weights.shape)
            i, j = float((ii * weights).sum() / total), float((jj * weights).sum() / total)
    return (world_ijk_to_ras(volume_node) @ np.array([i, j, float(k), 1.0]))[:3]


# --- subject hierarchy ---------------------------------------------------------------------------

def place_beside(scene, node, anchor) -> None:
    """Put `node` in the same subject-hierarchy folder (e.g. the patient's study) as `anchor`.

    In the application every node gets a hierarchy item when it is added; without the
    application (slicer-core) the item is created here.
    """
    import slicer

    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    if hierarchy is None or anchor is None:
        return
    anchor_item = hierarchy.GetItemByDataNode(anchor)
    if not anchor_item:
        return  # the anchor is not in the hierarchy: nothing to follow
    parent = hierarchy.GetItemParent(anchor_item)
    item = hierarchy.GetItemByDataNode(node)
    if item:
        hierarchy.SetItemParent(item, parent)
    else:
        hierarchy.CreateItem(parent, node)
