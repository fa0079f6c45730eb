"""The files `cervicalai predict` reads, made from the scene: case folder, tumour mask, clinical values.

The case folder is the one the Segment module's run exported (each sequence on its own grid),
with the registration that run computed (`--transforms`), both recorded on the segmentation;
when they are gone (e.g. a scene reopened after the temporary folder was cleared), the volumes
the segmentation references are exported again and `predict` registers them again. The mask is the segmentation's
tumour on the T2WI grid; for an intact reviewed copy its review record is written beside it,
so the readout says who reviewed it. An unreviewed mask is used only after the user agrees.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from CervicalAIHubLib import scene as N
from CervicalAIHubLib.reviewed import export_tumour_mask, review_state
from CervicalAIHubLib.volumes import export_case_folder
from CervicalAILib.contracts.segmentation import SEGMENTATION_SUMMARY
from CervicalAILib.core.errors import InputError
from CervicalAIPredictLib.form import write_clinical_json

CLINICAL_FILE = "clinical.json"


@dataclass
class PredictInputs:
    case_folder: Path
    mask_path: Path
    clinical_path: Path
    reviewed: bool
    transforms_folder: Path | None = None  # registration of the segmentation run (None: predict registers)
    warnings: list[str] = field(default_factory=list)


def review_warning(segmentation_node) -> str | None:
    """Why the segmentation should not be used as it is (None for an intact reviewed copy)."""
    if segmentation_node is None:
        return "no segmentation selected"
    state = review_state(segmentation_node)
    if state == N.STATUS_REVIEWED:
        return None
    if state == N.EDITED_AFTER_REVIEW:
        return (f"segmentation {segmentation_node.GetName()!r} was changed after it was reviewed: "
                "its review no longer applies; mark the corrected version as reviewed")  # fmt: skip
    if state == N.STATUS_AUTOMATIC or state == N.STATUS_DRAFT:
        return (f"segmentation {segmentation_node.GetName()!r} has not been reviewed: check and correct it "
                "in the Segment module and press 'Mark as reviewed'")  # fmt: skip
    return (f"segmentation {segmentation_node.GetName()!r} was not made or reviewed with CervicalAI: "
            "the readout will report an unreviewed mask")  # fmt: skip


def prepare_inputs(
    segmentation_node,
    work: str | Path,
    clinical_values: dict[str, Any],
    t2_node=None,
) -> PredictInputs:
    """Write the predict inputs into `work` (a new folder) and say where they are.

    t2_node: the T2WI, needed only for a segmentation CervicalAI did not make (it references none).
    """
    if segmentation_node is None:
        raise InputError("select the (reviewed) tumour segmentation")
    work = Path(work)
    warnings = []
    warning = review_warning(segmentation_node)
    if warning:
        warnings.append(warning)
    roles = N.role_references(segmentation_node)
    if "T2W" not in roles:
        if t2_node is None:
            raise InputError(f"segmentation {segmentation_node.GetName()!r} does not reference a T2WI: select one")
        roles["T2W"] = t2_node
    recorded = segmentation_node.GetAttribute(N.CASE_FOLDER)
    transforms = None
    # the recorded study: an exported case folder, or the native study (DICOM folder too) of a registered one
    if recorded and Path(recorded).is_dir():
        case_folder = Path(recorded)
        registered = segmentation_node.GetAttribute(N.TRANSFORMS_FOLDER)
        if registered and (Path(registered) / "transforms").is_dir():
            transforms = Path(registered)
    else:
        case_folder = export_case_folder(roles, work / "case", compress=False)
        if recorded:
            warnings.append(f"the case folder {recorded} is gone: the volumes were exported again and will be registered again")
    mask_path, reviewed = export_tumour_mask(segmentation_node, work / "mask", N.grid_image(roles["T2W"]))
    result = segmentation_node.GetAttribute(N.RESULT_FOLDER)
    if result and (Path(result) / SEGMENTATION_SUMMARY).is_file():
        # the automatic segmentation's summary beside the mask: the readout reports its confidence
        shutil.copyfile(Path(result) / SEGMENTATION_SUMMARY, mask_path.parent / SEGMENTATION_SUMMARY)
    clinical_path = write_clinical_json(work / CLINICAL_FILE, clinical_values)
    return PredictInputs(case_folder, mask_path, clinical_path, reviewed, transforms, warnings)
