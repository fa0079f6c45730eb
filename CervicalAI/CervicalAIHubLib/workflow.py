"""The clinical workflow in order, and how far the current scene is along it.

    1 Load study    a case folder or DICOM folder (roles recognised, sequences co-registered), or
                    the DICOM database
    2 Segment       automatic tumour contour (CervicalAISegment)
    3 Review        correct in the Segment Editor, "Mark as reviewed" (CervicalAISegment)
    4 Predict       clinical form, readout with nomogram and staging (CervicalAIPredict)
    5 Export        the reviewed case as an annotated case folder

The state is read from the scene (node attributes CervicalAI records), so it is right after a
scene is saved and reopened.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from CervicalAIHubLib import scene as N
from CervicalAIHubLib.reviewed import review_state
from CervicalAIHubLib.volumes import candidate_volumes
from CervicalAILib.core.background import Step, engine_command
from CervicalAILib.core.errors import InputError
from CervicalAILib.io.case import ROLES, find_role_file, is_case_folder


@dataclass(frozen=True)
class WorkflowStep:
    key: str
    title: str
    module: str  # the Slicer module that does it ("" = the hub itself)
    help: str


STEPS: tuple[WorkflowStep, ...] = (
    WorkflowStep("load", "1. Load study", "", "Load the patient's MRI: a case folder or DICOM folder, or the DICOM database."),
    WorkflowStep("segment", "2. Segment", "CervicalAISegment", "Automatic contour of the primary tumour on the T2WI."),
    WorkflowStep("review", "3. Review", "CervicalAISegment", "Correct the contour in the Segment Editor and mark it as reviewed."),
    WorkflowStep("predict", "4. Predict", "CervicalAIPredict", "Clinical values, LNM risk with nomogram, staging readout."),
    WorkflowStep("export", "5. Export", "", "Save the reviewed case (volumes, mask, review record) as a case folder."),
)


@dataclass
class StepState:
    done: bool
    detail: str


def workflow_state(scene) -> dict[str, StepState]:
    """Each step's state in `scene`: done or not, and what was found."""
    volumes = candidate_volumes(scene)
    state = {"load": StepState(bool(volumes), f"{len(volumes)} volume(s) loaded" if volumes else "no volume loaded")}
    automatic = N.segmentations_of(scene, N.STATUS_AUTOMATIC)
    state["segment"] = StepState(bool(automatic), f"{len(automatic)} automatic segmentation(s)" if automatic else "not segmented")
    reviewed = [node for node in N.segmentations_of(scene, N.STATUS_REVIEWED) if review_state(node) == N.STATUS_REVIEWED]
    state["review"] = StepState(
        bool(reviewed), f"reviewed: {reviewed[-1].GetName()}" if reviewed else "no reviewed segmentation"
    )
    tables = [node for node in N.nodes_by_class(scene, "vtkMRMLTableNode") if node.GetAttribute(N.STATUS) == N.STATUS_READOUT]
    state["predict"] = StepState(bool(tables), f"readout: {tables[-1].GetName()}" if tables else "no readout")
    exported = [node for node in reviewed if node.GetAttribute(N.EXPORTED_TO)]
    state["export"] = StepState(
        bool(exported), f"exported to {exported[-1].GetAttribute(N.EXPORTED_TO)}" if exported else "not exported"
    )
    return state


def next_step(state: dict[str, StepState]) -> WorkflowStep | None:
    """The first step not done yet (None when all are done)."""
    return next((step for step in STEPS if not state[step.key].done), None)


# --- loading a study from a folder -------------------------------------------------------------------

def case_volume_files(case_folder: str | os.PathLike) -> dict[str, Path]:
    """role -> image file of a case folder (T2W required)."""
    folder = Path(case_folder)
    if not is_case_folder(folder):
        raise InputError("not a case folder (no T2W image: T2W.nii.gz, .nrrd, ...)", folder)
    return {role: path for role in ROLES if (path := find_role_file(folder, role)) is not None}


def study_load_step(python: str | os.PathLike, study_folder: str | os.PathLike, out_case: str | os.PathLike) -> Step:
    """`cervicalai study register`: recognise the roles of a DICOM (or image-file) folder and
    co-register its sequences onto the T2WI, as a case folder to load."""
    folder = Path(study_folder)
    if not folder.is_dir():
        raise InputError("study folder not found", folder)
    return Step(engine_command(python, "study", "register", folder, "--out", out_case), "reading the study")


def mark_loaded(node, role: str, case_folder: str | os.PathLike | None = None) -> None:
    """Record the role CervicalAI loaded a volume as (the Segment module assigns it from this), and the case
    folder it came from (the readout finds a registered folder's native study through it)."""
    if role not in ROLES:
        raise InputError(f"unknown sequence role {role!r} (roles: {', '.join(ROLES)})")
    node.SetAttribute(N.ROLE, role)
    node.SetAttribute(N.LOADED_FROM, str(Path(case_folder).resolve()) if case_folder else "")
