"""The result of `cervicalai segment` in the scene: segmentation nodes, probability map, flagged slices.

Shared by the Segment module (after its Apply) and the hub's review worklist (a cohort's automatic results).

Each run adds new nodes and never changes existing ones (a reviewed segmentation in particular
is never overwritten by a new automatic run):

- "<T2WI> tumour (automatic)": the network's contour, unchanged and hidden; the reference the
  reader's edits are measured against (status "automatic");
- "<T2WI> tumour (review)": the reader's working copy for the Segment Editor (status "draft");
- "<T2WI> tumour probability": the network's probability (0-1) as a scalar volume.

Both segmentations reference the T2WI as their geometry (the Segment Editor paints on its
grid), carry the standard terminology of a primary neoplasm of the cervix (SNOMED CT codes in
Slicer's terminology entry format), and reference the input volumes by role.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from CervicalAIHubLib import scene as N
from CervicalAILib.contracts.segmentation import MASK_FILE, PROBABILITY_FILE, SEGMENTATION_SUMMARY

# the tumour's SNOMED CT terminology as Slicer's entry string, defined once in the engine (the same
# codes as the DICOM SEG and .seg.nrrd exports): re-exported here for the modules and tests
from CervicalAILib.contracts.terminology import TUMOUR_TERMINOLOGY
from CervicalAILib.core.errors import InputError
from CervicalAILib.io.geometry import same_grid
from CervicalAILib.io.images import read_image
from CervicalAILib.io.mrml import (
    mask_from_segmentation_node,
    segmentation_node_from_mask,
    volume_node_from_image,
)
from CervicalAILib.segmentation.outputs import no_anatomy_sentence, organ_label_names

TUMOUR_SEGMENT_NAME = "Cervical tumour"
TUMOUR_COLOR = (0.89, 0.10, 0.11)
PROBABILITY_SCALE = 255.0  # the probability file is uint8, 255 = 1.0


@dataclass
class FlaggedSlice:
    """A T2WI slice the network is least sure about, and where to look (world RAS, mm)."""

    slice: int
    confidence: float
    ras: tuple[float, float, float]

    @property
    def label(self) -> str:
        """How the list shows it: slices numbered from 1, as in Slicer's slice views."""
        return f"slice {self.slice + 1}: confidence {self.confidence:.2f}"

    def to_dict(self) -> dict[str, Any]:
        return {"slice": self.slice, "confidence": self.confidence, "ras": list(self.ras)}


@dataclass
class SegmentationImport:
    automatic: Any  # vtkMRMLSegmentationNode, frozen
    draft: Any  # vtkMRMLSegmentationNode, for the Segment Editor
    probability: Any | None  # vtkMRMLScalarVolumeNode (0-1)
    summary: dict[str, Any]
    flagged: list[FlaggedSlice] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    organs: Any | None = None  # vtkMRMLSegmentationNode, one segment per structure, hidden


def mask_sha256(mask: sitk.Image) -> str:
    """Content hash of a binary mask on its grid (voxels and geometry), to detect later edits."""
    array = (sitk.GetArrayViewFromImage(mask) > 0).astype(np.uint8)
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(array).tobytes())
    geometry = [*mask.GetSize(), *mask.GetSpacing(), *mask.GetOrigin(), *mask.GetDirection()]
    digest.update(",".join(f"{value:.4f}" for value in geometry).encode())
    return digest.hexdigest()


def set_segment_terminology(segment, entry: str) -> None:
    """Store a terminology entry on a vtkSegment as Slicer does, in the tag named by
    `GetTerminologyEntryTagName()`: works on every Slicer (SetTerminology exists from 5.10 only)."""
    segment.SetTag(segment.GetTerminologyEntryTagName(), entry)


def segment_terminology(segment) -> str:
    """A vtkSegment's terminology entry ("" when it has none); GetTerminology exists from 5.10 only."""
    import vtk

    value = vtk.reference("")
    return str(value) if segment.GetTag(segment.GetTerminologyEntryTagName(), value) else ""


def set_tumour_terminology(segment) -> None:
    set_segment_terminology(segment, TUMOUR_TERMINOLOGY)
    segment.SetName(TUMOUR_SEGMENT_NAME)
    segment.SetColor(*TUMOUR_COLOR)


def tumour_segment_id(node) -> str | None:
    """The tumour segment: the one recorded by CervicalAI, else the first with the tumour terminology
    or name; None if the segmentation has none."""
    segmentation = node.GetSegmentation()
    recorded = node.GetAttribute(N.TUMOUR_SEGMENT_ID)
    if recorded and segmentation.GetSegment(recorded) is not None:
        return recorded
    for index in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(index)
        if segment_terminology(segment) == TUMOUR_TERMINOLOGY or segment.GetName() == TUMOUR_SEGMENT_NAME:
            return segmentation.GetNthSegmentID(index)
    return None


def tumour_mask(node, reference_image: sitk.Image | None = None) -> sitk.Image:
    """Binary (0/1) uint8 mask of the tumour segment on `reference_image`'s grid (default: the T2WI
    the node references, else its reference geometry). Without a recognised tumour segment, the
    union of all segments (a reader may have repainted the tumour as a new segment)."""
    if reference_image is None:
        t2 = node.GetNodeReference(N.REFERENCE_ROLE["T2W"])
        reference_image = N.grid_image(t2) if t2 is not None else None
    segment_id = tumour_segment_id(node)
    mask = mask_from_segmentation_node(node, reference_image, [segment_id] if segment_id else None)
    return sitk.Cast(mask > 0, sitk.sitkUInt8)


def create_tumour_segmentation(scene, mask: sitk.Image, t2_node, name: str, status: str) -> Any:
    """A segmentation node with one tumour segment (terminology set) on the T2WI grid."""
    node = segmentation_node_from_mask(
        scene, sitk.Cast(mask > 0, sitk.sitkUInt8), N.unique_name(scene, name), {1: TUMOUR_SEGMENT_NAME},
        reference_volume_node=t2_node, colors={1: TUMOUR_COLOR},
    )
    segmentation = node.GetSegmentation()
    segment_id = segmentation.GetNthSegmentID(0)
    set_tumour_terminology(segmentation.GetSegment(segment_id))
    N.set_attributes(node, {N.STATUS: status, N.TUMOUR_SEGMENT_ID: segment_id})
    N.set_role_references(node, {"T2W": t2_node})
    N.place_beside(scene, node, t2_node)
    return node


def read_result(result_dir: str | Path) -> tuple[sitk.Image, sitk.Image | None, dict[str, Any]]:
    """(mask, probability or None, summary) of a `cervicalai segment` output folder."""
    result_dir = Path(result_dir)
    mask_path = result_dir / MASK_FILE
    summary_path = result_dir / SEGMENTATION_SUMMARY
    if not mask_path.is_file():
        gate = no_anatomy_message(result_dir)
        if gate:
            raise InputError(f"{gate}: no tumour contour was made", result_dir)
        raise InputError(f"no {MASK_FILE} in the segmentation output (did the segment command finish?)", result_dir)
    if not summary_path.is_file():
        raise InputError(f"no {SEGMENTATION_SUMMARY} in the segmentation output", result_dir)
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"segmentation summary is not valid JSON ({exc})", summary_path) from exc
    mask = read_image(mask_path)
    probability_path = result_dir / PROBABILITY_FILE
    probability = read_image(probability_path) if probability_path.is_file() else None
    return mask, probability, summary


def no_anatomy_message(result_dir: str | Path) -> str | None:
    """The anatomy gate's sentence ("no cervix or uterus recognised in this study") when the
    `cervicalai segment` output says the network found no cervix or uterus (the command then
    exits with status 3 and writes no tumour mask), else None."""
    summary_path = Path(result_dir) / SEGMENTATION_SUMMARY
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return no_anatomy_sentence(summary)


def flagged_slices(summary: dict[str, Any], t2_node, mask: sitk.Image, probability: sitk.Image | None = None) -> list[FlaggedSlice]:
    """The summary's low-confidence slices with the point to jump to: the tumour's centre in that
    slice, else the centre of the uncertain region (probability), else the slice centre."""
    mask_array = sitk.GetArrayViewFromImage(mask)
    probability_array = sitk.GetArrayViewFromImage(probability) if probability is not None else None
    flagged = []
    for entry in summary.get("flagged_slices") or []:
        k = int(entry["slice"])
        if not 0 <= k < mask_array.shape[0]:
            raise InputError(f"flagged slice {k} is outside the T2WI (slices 0-{mask_array.shape[0] - 1})")
        weights = (mask_array[k] > 0).astype(float)
        if not weights.any() and probability_array is not None:
            weights = probability_array[k].astype(float)
        ras = N.slice_center_ras(t2_node, k, weights)
        flagged.append(FlaggedSlice(k, float(entry["confidence"]), tuple(float(v) for v in ras)))
    return flagged


def import_segmentation_result(
    scene,
    result_dir: str | Path,
    t2_node,
    role_nodes: dict[str, Any] | None = None,
    case_folder: str | Path | None = None,
    transforms_folder: str | Path | None = None,
    now=None,
) -> SegmentationImport:
    """Bring a `cervicalai segment` output folder into the scene as new nodes (see module doc).

    t2_node: the T2WI volume the case was made from; the result must be on its grid.
    role_nodes: role -> input volume, referenced from the new nodes (Predict rebuilds the case
    from them). case_folder: the input case folder (each sequence on its own grid) and
    transforms_folder: the `study register` output with transforms/<ROLE>.tfm, both for Predict
    (features are computed on each sequence's own grid with the registration of this run).
    """
    mask, probability, summary = read_result(result_dir)
    grid = N.grid_image(t2_node)
    if not same_grid(mask, grid, tolerance=1e-3):
        raise InputError(
            f"the segmentation result is not on the grid of T2WI volume {t2_node.GetName()!r} "
            f"(result {mask.GetSize()}, volume {grid.GetSize()}): was another T2WI segmented?",
            Path(result_dir) / MASK_FILE,
        )
    mask.CopyInformation(grid)  # exact grid of the node (the file rounds the geometry)
    base = t2_node.GetName() or "T2W"
    references = {"T2W": t2_node, **(role_nodes or {})}
    model = (summary.get("model") or {}).get("label", "")
    common = {
        N.MODEL: model,
        N.CONFIDENCE: summary.get("confidence"),
        N.RESULT_FOLDER: str(Path(result_dir).resolve()),
        N.CASE_FOLDER: str(Path(case_folder).resolve()) if case_folder else "",
        N.TRANSFORMS_FOLDER: str(Path(transforms_folder).resolve()) if transforms_folder else "",
        N.CREATED_AT: N.now_utc(now).isoformat(),
    }

    automatic = create_tumour_segmentation(scene, mask, t2_node, f"{base} tumour (automatic)", N.STATUS_AUTOMATIC)
    N.set_attributes(automatic, {**common, N.MASK_SHA256: mask_sha256(mask)})
    N.set_role_references(automatic, references)
    display = automatic.GetDisplayNode()
    if display is not None:
        display.SetVisibility(False)  # the draft is what the reader sees and edits

    draft = create_tumour_segmentation(scene, mask, t2_node, f"{base} tumour (review)", N.STATUS_DRAFT)
    N.set_attributes(draft, common)
    N.set_role_references(draft, references)
    draft.SetNodeReferenceID(N.REFERENCE_AUTOMATIC, automatic.GetID())

    probability_node = None
    if probability is not None:
        if not same_grid(probability, grid, tolerance=1e-3):
            raise InputError(f"the probability map is not on the T2WI grid of {t2_node.GetName()!r}", result_dir)
        scaled = sitk.Cast(sitk.Cast(probability, sitk.sitkFloat32) / PROBABILITY_SCALE, sitk.sitkFloat32)
        scaled.CopyInformation(grid)
        probability_node = volume_node_from_image(scene, scaled, N.unique_name(scene, f"{base} tumour probability"))
        N.set_attributes(probability_node, {N.STATUS: N.STATUS_PROBABILITY, **common})
        _display_as_probability(scene, probability_node)
        N.place_beside(scene, probability_node, t2_node)
        for node in (automatic, draft):
            node.SetNodeReferenceID(N.REFERENCE_PROBABILITY, probability_node.GetID())

    organs_node = None
    organs_file = (summary.get("files") or {}).get("organs")
    if organs_file:  # a network that segments the anatomy too: its structures as separate, hidden segments
        organs_path = Path(result_dir) / str(organs_file)
        if not organs_path.is_file():
            raise InputError("organ labels map listed in segmentation.json is missing", organs_path)
        names = organ_label_names(summary, result_dir)
        organs_node = segmentation_node_from_mask(scene, read_image(organs_path), N.unique_name(scene, f"{base} organs"),
                                                  names or None, reference_volume_node=t2_node)
        N.set_attributes(organs_node, {N.STATUS: N.STATUS_ORGANS, **common})
        N.set_role_references(organs_node, {"T2W": t2_node})
        organs_node.GetDisplayNode().SetVisibility(False)  # context only: the tumour is what is reviewed
        N.place_beside(scene, organs_node, t2_node)

    flagged = flagged_slices(summary, t2_node, mask, probability)
    flagged_json = json.dumps([item.to_dict() for item in flagged])
    for node in (automatic, draft):
        node.SetAttribute(N.FLAGGED_SLICES, flagged_json)
    return SegmentationImport(automatic, draft, probability_node, summary, flagged, list(summary.get("warnings") or []),
                              organs_node)


def flagged_from_node(node) -> list[FlaggedSlice]:
    """The low-confidence slices recorded on a CervicalAI segmentation ([] when none)."""
    text = node.GetAttribute(N.FLAGGED_SLICES) if node is not None else None
    if not text:
        return []
    try:
        return [FlaggedSlice(int(e["slice"]), float(e["confidence"]), tuple(float(v) for v in e["ras"])) for e in json.loads(text)]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"segmentation {node.GetName()!r} has an unreadable flagged-slice list ({exc})") from exc


def _display_as_probability(scene, node) -> None:
    """Window 0-1 and a colour scale when the scene has one (Slicer's default colour tables)."""
    display = node.GetDisplayNode()
    if display is None:
        return
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(0.0, 1.0)
    for color_id in ("vtkMRMLColorTableNodeFileColdToHotRainbow.txt", "vtkMRMLColorTableNodeRainbow"):
        if scene.GetNodeByID(color_id) is not None:
            display.SetAndObserveColorNodeID(color_id)
            break
