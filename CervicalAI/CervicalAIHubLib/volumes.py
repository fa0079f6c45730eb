"""Which loaded volume is the T2WI, the DWI, the ADC map and the CE-T1WI.

The engine's study logic (`CervicalAILib.study.recognition` and `.roles`) decides what a series is and
which series plays each role; here it is applied to volume nodes already loaded in the scene:

1. a role CervicalAI itself recorded when it loaded the study (attribute "CervicalAI.Role");
2. the DICOM header of the node's files (Slicer's DICOM module records the instance UIDs;
   the caller turns them into file paths with the DICOM database) - description, sequence,
   b-values, image type, contrast agent, echo/repetition times;
3. the node name (a series description, or a case-folder file name such as "T2W" or "ADC").

Then each role goes to its best candidate with the engine's ranking (axial before oblique
before other planes; acquired before calculated DWI with the highest b-value; ADC on the DWI's
grid; ...). The user's choices are kept (`keep`), and only the remaining roles are filled.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from CervicalAIHubLib.scene import LOADED_FROM, ROLE, STATUS, lps_direction, nodes_by_class, volume_size
from CervicalAILib.contracts.case_folder import TRANSFORMS_DIR, Grid, read_manifest
from CervicalAILib.contracts.case_identity import voxels_sha256
from CervicalAILib.core.atomic import atomic_directory
from CervicalAILib.core.errors import InputError
from CervicalAILib.io.case import REQUIRED_ROLE, ROLES, find_role_file, write_case
from CervicalAILib.io.dicom.frames import SeriesHeader, read_frames
from CervicalAILib.io.dicom.tags import description_b_value
from CervicalAILib.io.geometry import orientation_label, same_grid
from CervicalAILib.io.images import read_image, write_image
from CervicalAILib.io.mrml import image_from_volume_node
from CervicalAILib.study.recognition import DIFFUSION_WORDS, OTHER, Recognition, recognise
from CervicalAILib.study.roles import assign_roles
from CervicalAILib.study.series import Series, Study, normalise_role

# DICOM files read per node to recognise it (first, middle and last slice: enough for b-values).
DICOM_FILES_PER_NODE = 3


@dataclass(eq=False)
class _NodeSeries(Series):
    """A study series standing for a volume node: geometry from the node, no voxels read."""

    node_size: tuple[int, ...] | None = None
    node_direction: tuple[float, ...] | None = None

    @property
    def size(self):  # type: ignore[override]
        return self.node_size

    @property
    def direction(self):  # type: ignore[override]
        return self.node_direction

    @property
    def usable(self) -> bool:  # type: ignore[override]
        return self.node_size is not None


@dataclass
class RoleAssignment:
    """role -> volume node (None when no candidate), with why each volume was read as it was."""

    roles: dict[str, Any]
    kinds: dict[str, Recognition] = field(default_factory=dict)  # node ID -> what it looks like
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def node(self, role: str):
        return self.roles.get(normalise_role(role))


def _name_recognition(name: str) -> Recognition:
    """What a node looks like from its name alone (a series description or a file name)."""
    stem = re.sub(r"\.(nii(\.gz)?|nrrd|nhdr|mha|mhd)$", "", name.strip(), flags=re.IGNORECASE)
    try:
        role = normalise_role(stem)
    except InputError:
        role = None
    if role and role != OTHER:
        return Recognition(role, f"node name '{name}' is the role name")
    b_value = description_b_value(stem)
    recognition = recognise(SeriesHeader(series_description=stem), [b_value] if b_value else [])
    if recognition.kind == OTHER:
        # a name is weaker evidence than DICOM tags: a diffusion keyword alone is accepted here
        for pattern in DIFFUSION_WORDS:
            match = re.search(pattern, stem.lower())
            if match:
                return Recognition("DWI", f"'{match.group(0).strip()}' in node name")
    if recognition.kind == "DWI" and b_value and "b-values in the headers" in recognition.reason:
        recognition.reason = f"b={b_value:g} in node name"  # the b-value came from the name, not a header
    else:
        recognition.reason = f"from node name: {recognition.reason}"
    return recognition


def _dicom_recognition(files: Sequence[Path]) -> tuple[Recognition, SeriesHeader] | None:
    """What a series looks like from (a few of) its DICOM files; None if none can be read."""
    frames = []
    chosen = list(files)
    if len(chosen) > DICOM_FILES_PER_NODE:
        chosen = [chosen[0], chosen[len(chosen) // 2], chosen[-1]]
    for path in chosen:
        try:
            frames += read_frames(Path(path))
        except (OSError, ValueError):
            continue
    if not frames:
        return None
    header = frames[0].header
    b_values = sorted({frame.b_value for frame in frames if frame.b_value is not None})
    return recognise(header, b_values), header


def recognise_volume_node(node, dicom_files: Sequence[Path] | None = None) -> tuple[Recognition, SeriesHeader | None]:
    """What a volume node looks like (kind T2W/DWI/ADC/CET1/T1W/other and why)."""
    recorded = node.GetAttribute(ROLE)
    if recorded:
        try:
            role = normalise_role(recorded)
            return Recognition(role, f"loaded by CervicalAI as {role}"), None
        except InputError:
            pass
    if dicom_files:
        found = _dicom_recognition(dicom_files)
        if found is not None:
            recognition, header = found
            recognition.reason = f"DICOM header: {recognition.reason}"
            return recognition, header
    return _name_recognition(node.GetName() or ""), None


def candidate_volumes(scene) -> list[Any]:
    """Scalar volumes a user could pick as a sequence (not labelmaps, not CervicalAI outputs)."""
    nodes = []
    for node in nodes_by_class(scene, "vtkMRMLScalarVolumeNode"):
        if node.IsA("vtkMRMLLabelMapVolumeNode") or node.GetAttribute(STATUS):
            continue
        if node.GetHideFromEditors() or node.GetImageData() is None:
            continue
        nodes.append(node)
    return nodes


def assign_volume_roles(
    nodes: Iterable[Any],
    dicom_files_of: Callable[[Any], Sequence[Path] | None] | None = None,
    keep: dict[str, Any] | None = None,
) -> RoleAssignment:
    """Give each role (T2W, DWI, ADC, CET1) its best volume node.

    dicom_files_of(node): the node's DICOM files (or None), e.g. from Slicer's DICOM database.
    keep: role -> node chosen by the user; kept as is, and the other roles are filled around it.
    """
    nodes = list(nodes)
    keep = {normalise_role(role): node for role, node in (keep or {}).items() if node is not None}
    by_id: dict[str, Any] = {}
    series: list[Series] = []
    kinds: dict[str, Recognition] = {}
    for number, node in enumerate(nodes):
        files = dicom_files_of(node) if dicom_files_of else None
        recognition, header = recognise_volume_node(node, files)
        kinds[node.GetID()] = recognition
        try:
            size = volume_size(node)
            direction = tuple(float(v) for v in lps_direction(node).ravel())
        except InputError:
            size, direction = None, None
        by_id[node.GetID()] = node
        series.append(
            _NodeSeries(
                key=node.GetID(), uid=node.GetID(),
                number=header.series_number if header and header.series_number is not None else number,
                description=node.GetName() or "", source="file", path=Path(node.GetName() or node.GetID()),
                kind=recognition.kind, reason=recognition.reason, is_calculated=recognition.is_calculated,
                fat_suppressed=recognition.fat_suppressed, derived=recognition.derived,
                modality=header.modality if header else "", header=header,
                node_size=size, node_direction=direction,
            )
        )
    study = Study(path=Path("scene"), source="files", series=series)
    overrides = {node.GetID(): role for role, node in keep.items() if node.GetID() in by_id}
    assign_roles(study, overrides)
    roles: dict[str, Any] = {role: None for role in ROLES}
    for item in study.series:
        if item.role in ROLES:
            roles[item.role] = by_id[item.key]
    for role, node in keep.items():  # a kept node that is not in `nodes` is still the user's choice
        roles[role] = node
    notes = [note.replace("--role SERIES=", "the selector of ") for note in study.notes]
    return RoleAssignment(roles=roles, kinds=kinds, notes=notes, problems=list(study.problems))


def describe_node(node, assignment: RoleAssignment) -> str:
    """One line for the user: what the volume looks like and why, and its plane."""
    recognition = assignment.kinds.get(node.GetID())
    try:
        plane = orientation_label(lps_direction(node))
    except InputError:
        plane = "no voxels"
    if recognition is None:
        return f"{node.GetName()}: {plane}"
    return f"{node.GetName()}: looks like {recognition.kind} ({recognition.reason}); {plane}"


def export_case_folder(
    role_nodes: dict[str, Any],
    out_dir: str | Path,
    labels: dict[str, Any] | None = None,
    clinical: dict[str, Any] | None = None,
    overwrite: bool = False,
    compress: bool = True,
) -> Path:
    """Write the role volumes (and label images) as a case folder for the engine.

    role_nodes: role -> volume node (None entries are skipped); the T2WI is required. Each
    volume keeps its own grid (the engine co-registers); a linear parent transform is applied.
    labels: name -> SimpleITK label image (e.g. {"tumor": reviewed mask}).
    compress: False writes uncompressed `<role>.nii` (the engine reads both): for the temporary
    input of Apply, written while Slicer waits, gzip would take about a second per large volume.
    """
    chosen = {normalise_role(role): node for role, node in role_nodes.items() if node is not None}
    if REQUIRED_ROLE not in chosen:
        raise InputError("no T2-weighted volume selected: the tumour is segmented on the T2WI")
    seen: dict[str, str] = {}
    for role, node in chosen.items():
        if node.GetID() in seen:
            raise InputError(f"volume {node.GetName()!r} is selected as both {seen[node.GetID()]} and {role}")
        seen[node.GetID()] = role
    images = {role: image_from_volume_node(chosen[role]) for role in ROLES if role in chosen}
    for role, image in images.items():
        if image.GetNumberOfComponentsPerPixel() != 1:
            raise InputError(f"volume {chosen[role].GetName()!r} ({role}) has several components per voxel (colour?)")
    if compress:
        return write_case(out_dir, images, labels=labels, clinical=clinical, overwrite=overwrite)
    if labels or clinical is not None:
        raise InputError("an uncompressed export holds the images only (no labels or clinical values)")
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        for role, image in images.items():
            write_image(image, tmp / f"{role}.nii", compress=False)
    return Path(out_dir)


def readout_folders(role_nodes: dict[str, Any], input_case: str | Path,
                    registered: str | Path | None) -> tuple[Path, Path | None]:
    """(case folder, transforms folder) for the readout of a segmentation made from `role_nodes`.

    Features are computed on each sequence's own grid. Volumes CervicalAI loaded from a `study register`
    output (all from one folder, unchanged since: same grid and voxels as its files) are on the T2WI grid,
    so their export `input_case` is too: the readout then uses the native study that folder was made from,
    with that folder's transforms. Otherwise the exported `input_case` is native, with the Apply run's own
    registration `registered` (None with a T2WI alone).
    """
    exported = (Path(input_case), Path(registered) if registered else None)
    loaded_from = {node.GetAttribute(LOADED_FROM) or "" for node in role_nodes.values() if node is not None}
    if len(loaded_from) != 1 or "" in loaded_from or not (folder := Path(loaded_from.pop())).is_dir():
        return exported
    manifest = read_manifest(folder)
    if manifest.grid is not Grid.T2W or not manifest.native_source or not Path(manifest.native_source).exists():
        return exported
    if not (folder / TRANSFORMS_DIR).is_dir():
        return exported
    for role, node in role_nodes.items():
        if node is None:
            continue
        loaded, sent = find_role_file(folder, role), find_role_file(Path(input_case), role)
        if loaded is None or sent is None:
            return exported
        a, b = read_image(loaded), read_image(sent)
        if not same_grid(a, b) or voxels_sha256(a) != voxels_sha256(b):
            return exported  # changed in Slicer since it was loaded: the reader's volumes are what counts
    return Path(manifest.native_source), folder
