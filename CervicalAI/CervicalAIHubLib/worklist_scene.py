"""A worklist case in Slicer's scene for the Segment module (MRML logic; tested with slicer-core).

`load_case` brings the case's automatic result into the scene the way the Segment module does
after its own run (automatic node, draft, probability map, flagged slices), then, when the reader
has a working copy or a reviewed copy, puts that mask in the draft instead, so the reader goes on
where they stopped (in Slicer or in the browser). `reader_mask` gives the draft's tumour back on
the T2WI grid for the worklist's Mark as reviewed and working copy.
"""

from __future__ import annotations

from typing import Any

import SimpleITK as sitk

from CervicalAIHubLib import scene as N
from CervicalAIHubLib.segmentation import create_tumour_segmentation, import_segmentation_result, tumour_mask
from CervicalAIHubLib.worklist_panel import CaseToLoad
from CervicalAILib.core.errors import InputError
from CervicalAILib.io.images import read_image


def load_case(scene, to_load: CaseToLoad, role_nodes: dict[str, Any]) -> Any:
    """Add the case's segmentation nodes for its volumes (`role_nodes`, loaded by the hub);
    returns the draft the reader edits."""
    t2 = role_nodes.get("T2W")
    if t2 is None:
        raise InputError(f"case {to_load.case_id!r}: its T2WI volume is not loaded")
    grid = N.grid_image(t2)
    automatic = None
    if to_load.segmentation is not None:
        imported = import_segmentation_result(scene, to_load.segmentation, t2, role_nodes, case_folder=to_load.folder,
                                              transforms_folder=to_load.segmentation)
        draft, automatic = imported.draft, imported.automatic
    else:
        empty = sitk.Image(grid.GetSize(), sitk.sitkUInt8)
        empty.CopyInformation(grid)
        draft = create_tumour_segmentation(scene, empty, t2, f"{t2.GetName()} tumour (review)", N.STATUS_DRAFT)
        N.set_role_references(draft, role_nodes)
        draft.SetAttribute(N.CASE_FOLDER, str(to_load.folder))
    if to_load.start_mask is None:
        return draft
    mask = read_image(to_load.start_mask)
    if mask.GetSize() != grid.GetSize():
        raise InputError(f"the {to_load.started_from} is not on the grid of the T2WI volume {t2.GetName()!r}",
                         to_load.start_mask)
    mask.CopyInformation(grid)
    resumed = create_tumour_segmentation(scene, mask, t2, f"{t2.GetName()} tumour (review, {to_load.started_from})",
                                         N.STATUS_DRAFT)
    N.copy_role_references(draft, resumed)
    for name in N.INHERITED:
        resumed.SetAttribute(name, draft.GetAttribute(name) or "")
    if automatic is not None:
        resumed.SetNodeReferenceID(N.REFERENCE_AUTOMATIC, automatic.GetID())
    probability = draft.GetNodeReference(N.REFERENCE_PROBABILITY)
    if probability is not None:
        resumed.SetNodeReferenceID(N.REFERENCE_PROBABILITY, probability.GetID())
    scene.RemoveNode(draft)
    return resumed


def reader_mask(draft) -> sitk.Image:
    """The draft's tumour (0/1) on its T2WI grid, as the Segment module's Mark as reviewed takes it."""
    t2 = draft.GetNodeReference(N.REFERENCE_ROLE["T2W"]) if draft is not None else None
    if t2 is None:
        raise InputError("select the case's working segmentation (it references its T2WI)")
    return tumour_mask(draft, N.grid_image(t2))
