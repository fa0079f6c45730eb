"""A worklist case in an MRML scene, for the web review app (no trame here; real MRML).

`load_case` adds the case's volumes (every sequence on the T2WI grid, see
`worklist.images_on_t2_grid`), the tumour segmentation the reader edits, the probability map and
the organs of the automatic segmentation when it has them (hidden); `current_mask` reads the
reader's tumour back on the T2WI grid, exactly as the Segment module does for Mark as reviewed
(`io.mrml.mask_from_segmentation_node` on the T2WI). The reader starts from, in this order: their
working copy (autosaved edits), their newest reviewed copy, the automatic contour, an empty segment.

The MRML classes come from the `slicer` package (the slicer-core wheel under trame-slicer);
everything else is the engine's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from CervicalAILib.contracts.terminology import TUMOUR_TERMINOLOGY
from CervicalAILib.core.errors import InputError
from CervicalAILib.io.images import read_image
from CervicalAILib.io.mrml import (
    mask_from_segmentation_node,
    segmentation_node_from_mask,
    volume_node_from_image,
)
from CervicalAILib.review.worklist import ReaderWorklist, flagged_slices, images_on_t2_grid
from CervicalAILib.segmentation.outputs import organ_label_names

TUMOUR_SEGMENT_NAME = "Cervical tumour"  # as the Segment module names it
TUMOUR_COLOR = (0.89, 0.10, 0.11)
PROBABILITY_SCALE = 255.0  # tumor_probability.nii.gz is uint8, 255 = 1.0
PROBABILITY_THRESHOLD = 0.1  # lower probabilities are transparent in the foreground layer
# Colour tables for the probability map, first found wins (Slicer's file-based one needs its share folder).
PROBABILITY_COLORS = ("vtkMRMLColorTableNodeFileColdToHotRainbow.txt", "vtkMRMLColorTableNodeRainbow")


@dataclass
class LoadedCase:
    case_id: str
    grid: sitk.Image  # the T2WI: the grid of every mask
    volumes: dict[str, Any]  # role -> vtkMRMLScalarVolumeNode (all on the T2WI grid)
    tumour: Any  # vtkMRMLSegmentationNode the reader edits
    tumour_segment_id: str
    started_from: str  # "working copy", "reviewed-N", "automatic contour" or "empty"
    probability: Any | None = None
    organs: Any | None = None
    flagged: list[dict[str, Any]] = field(default_factory=list)
    focus_ras: list[float] | None = None  # where the views open: the largest tumour cross-section
    summary: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    nodes: list[Any] = field(default_factory=list)  # every node added for the case (removed on unload)


def _set_tumour_segment(node) -> str:
    segmentation = node.GetSegmentation()
    segment_id = segmentation.GetNthSegmentID(0)
    segment = segmentation.GetSegment(segment_id)
    if hasattr(segment, "SetTerminology"):  # slicer-core 5.10+; the segment works without it
        segment.SetTerminology(TUMOUR_TERMINOLOGY)
    segment.SetName(TUMOUR_SEGMENT_NAME)
    segment.SetColor(*TUMOUR_COLOR)
    return segment_id


def starting_mask(reader: ReaderWorklist, case_id: str, grid: sitk.Image) -> tuple[sitk.Image, str]:
    """The mask the reader starts from (`ReaderWorklist.starting_mask_path`) on the T2WI grid."""
    path, what = reader.starting_mask_path(case_id)
    if path is None:
        empty = sitk.Image(grid.GetSize(), sitk.sitkUInt8)
        empty.CopyInformation(grid)
        return empty, what
    mask = sitk.Cast(read_image(path) > 0, sitk.sitkUInt8)
    if mask.GetSize() != grid.GetSize():
        raise InputError(f"{what} is not on the T2WI grid of case {case_id!r}", path)
    mask.CopyInformation(grid)
    return mask, what


def load_case(scene, reader: ReaderWorklist, case_id: str) -> LoadedCase:
    """Add the case to the scene (see the module doc); nothing of another case is touched."""
    case = reader.worklist.case(case_id)
    images, notes = images_on_t2_grid(case)
    grid = images["T2W"]
    loaded_nodes: list[Any] = []
    try:
        volumes = {}
        for role, image in images.items():
            node = volume_node_from_image(scene, image, f"{case.case_id} {role}")
            loaded_nodes.append(node)
            volumes[role] = node
        mask, started_from = starting_mask(reader, case_id, grid)
        tumour = segmentation_node_from_mask(
            scene, mask, f"{case.case_id} tumour ({reader.reader_name})", {1: TUMOUR_SEGMENT_NAME},
            reference_volume_node=volumes["T2W"], colors={1: TUMOUR_COLOR},
        )
        loaded_nodes.append(tumour)
        segment_id = _set_tumour_segment(tumour)
        summary = case.segmentation_summary()
        loaded = LoadedCase(case.case_id, grid, volumes, tumour, segment_id, started_from, summary=summary,
                            notes=notes, nodes=loaded_nodes)
        if case.segmentation is not None:
            probability_path = case.segmentation / ((summary.get("files") or {}).get("probability") or "tumor_probability.nii.gz")
            if probability_path.is_file():
                loaded.probability = _probability_node(scene, probability_path, grid, case.case_id)
                loaded_nodes.append(loaded.probability)
            organs_file = (summary.get("files") or {}).get("organs")
            if organs_file:
                loaded.organs = _organs_node(scene, case.segmentation / organs_file, summary, volumes["T2W"], case.case_id)
                loaded_nodes.append(loaded.organs)
        # the slices to check first are placed on the automatic contour (what the network was unsure of)
        automatic = read_image(case.automatic_mask_path) if case.automatic_mask_path is not None else None
        loaded.flagged = flagged_slices(case, automatic)
        loaded.focus_ras = largest_section_ras(mask) or (loaded.flagged[0]["ras"] if loaded.flagged else None)
        return loaded
    except BaseException:
        for node in loaded_nodes:
            scene.RemoveNode(node)
        raise


def largest_section_ras(mask: sitk.Image) -> list[float] | None:
    """RAS (mm) of the centre of the mask's largest slice (T2WI slices); None for an empty mask."""
    array = sitk.GetArrayViewFromImage(mask) > 0
    areas = array.sum(axis=(1, 2))
    if not areas.any():
        return None
    k = int(np.argmax(areas))
    rows, columns = np.nonzero(array[k])
    x, y, z = mask.TransformContinuousIndexToPhysicalPoint((float(columns.mean()), float(rows.mean()), float(k)))
    return [-x, -y, z]


def _probability_node(scene, path: Path, grid: sitk.Image, case_id: str):
    probability = read_image(path)
    if probability.GetSize() != grid.GetSize():
        raise InputError("probability map is not on the T2WI grid", path)
    scaled = sitk.Cast(probability, sitk.sitkFloat32) / PROBABILITY_SCALE
    scaled.CopyInformation(grid)
    node = volume_node_from_image(scene, scaled, f"{case_id} tumour probability")
    display = node.GetDisplayNode()
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(0.0, 1.0)
    display.SetApplyThreshold(1)
    display.SetLowerThreshold(PROBABILITY_THRESHOLD)
    display.SetUpperThreshold(1.0)
    for color_id in PROBABILITY_COLORS:
        if scene.GetNodeByID(color_id) is not None:
            display.SetAndObserveColorNodeID(color_id)
            break
    return node


def _organs_node(scene, path: Path, summary: dict[str, Any], t2_node, case_id: str):
    if not path.is_file():
        raise InputError("organ labels map listed in segmentation.json is missing", path)
    labels = read_image(path)
    names = organ_label_names(summary, path.parent)
    node = segmentation_node_from_mask(scene, labels, f"{case_id} organs", names or None, reference_volume_node=t2_node)
    node.GetDisplayNode().SetVisibility(False)  # context only: hidden until the reader shows it
    return node


def unload_case(scene, loaded: LoadedCase | None) -> None:
    if loaded is None:
        return
    for node in loaded.nodes:
        if scene.IsNodePresent(node):
            scene.RemoveNode(node)


def current_mask(loaded: LoadedCase) -> sitk.Image:
    """The reader's tumour (0/1 uint8) on the T2WI grid: the tumour segment, or, when the reader
    removed it, every segment of the working segmentation (as the Segment module does)."""
    segmentation = loaded.tumour.GetSegmentation()
    ids = [loaded.tumour_segment_id] if segmentation.GetSegment(loaded.tumour_segment_id) is not None else None
    if ids is None and segmentation.GetNumberOfSegments() == 0:
        empty = sitk.Image(loaded.grid.GetSize(), sitk.sitkUInt8)
        empty.CopyInformation(loaded.grid)
        return empty
    mask = mask_from_segmentation_node(loaded.tumour, loaded.grid, ids)
    return sitk.Cast(mask > 0, sitk.sitkUInt8)


def summary_lines(loaded: LoadedCase) -> list[str]:
    """What the case panel says about the automatic contour."""
    summary = loaded.summary
    if not summary:
        return ["No automatic contour: draw the tumour with Paint or Draw."]
    lines = []
    if summary.get("tumor_found"):
        lines.append(f"Automatic contour: {summary['volume_ml']:.1f} mL, maximum 3D diameter "
                     f"{summary['max_diameter_mm']:.0f} mm, confidence {summary['confidence']:.2f}")
    else:
        lines.append("The network found no tumour: draw it if there is one.")
    model = (summary.get("model") or {}).get("label")
    if model:
        lines.append(f"Model {model}")
    lines += [f"Warning: {w}" for w in summary.get("warnings") or []]
    return lines
