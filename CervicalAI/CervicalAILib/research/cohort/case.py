"""One case of a cohort extraction: its images and labels, the tumour mask on each sequence's own grid, its features.

Per case and sequence the tumour mask is taken on the sequence's OWN acquisition grid
(`registration.masks.sequence_masks`): the case's own delineation `labels/tumor_<ROLE>` when it has
one, else the T2WI mask `labels/tumor` carried by the transform the registration rule decides
(`registration.rule`: `transforms/<ROLE>.tfm` written by `cervicalai study register`, the ADC's for
the DWI, else a rigid registration run on the fly). The features come from the same FeaturePlan
(features/plan.py) as the per-patient readout's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from CervicalAILib.contracts.case_folder import require_native_grids
from CervicalAILib.core.errors import InputError
from CervicalAILib.io.case import (
    LABELS_DIR,
    REQUIRED_ROLE,
    ROLES,
    find_role_file,
    is_case_folder,
    load_case,
    read_transforms,
)
from CervicalAILib.io.geometry import same_grid
from CervicalAILib.io.images import read_image
from CervicalAILib.registration.masks import sequence_masks
from CervicalAILib.registration.rule import Transforms, resolve_transforms
from CervicalAILib.research.cohort.config import ExtractionConfig
from CervicalAILib.study.load import load_study

# mask sources (registration.masks) plus the one this module adds
REGISTERED_ON_THE_FLY = "registered on the fly"


class CaseInputs:
    """Images and labels of one case: a NIfTI case folder, or a DICOM study (case/dicom/ or case/)
    with its labels in case/labels/."""

    def __init__(self, folder: Path, extra_labels: Sequence[str] = ()):
        self.folder = folder
        if is_case_folder(folder):
            require_native_grids(folder, "features", "list the native case folder {native} in the cohort")
            self._source = load_case(folder)
            self.roles = list(self._source.roles)
            self.label_paths = dict(self._source.label_paths)
        else:
            self._source = load_study(folder / "dicom" if (folder / "dicom").is_dir() else folder)
            self.roles = list(self._source.roles_present())
            self.label_paths = {}
            labels = folder / LABELS_DIR
            for name in ("tumor", *(f"tumor_{r}" for r in ROLES), *extra_labels):
                path = find_role_file(labels, name) if labels.is_dir() else None
                if path is not None:
                    self.label_paths[name] = path
        self._labels: dict[str, Any] = {}

    def image(self, role: str):
        return self._source.image(role)

    def label(self, name: str):
        if name not in self._labels:
            self._labels[name] = read_image(self.label_paths[name])
        return self._labels[name]


@dataclass


class CaseFeatures:
    """One case's features (name -> value; NaN where pyradiomics gave none) and how they were made."""

    case_id: str
    features: dict[str, float]
    masks: dict[str, str]  # role -> where its tumour mask came from
    warnings: list[str]
    timings: dict[str, float]  # CPU seconds per stage
    components: dict[str, dict[str, float]] = field(default_factory=dict)  # "radiomics:T2W" -> its features


def case_masks(case: CaseInputs, images: dict[str, Any], register: bool, warnings: list[str],
               mask_label: str | None = None) -> dict[str, Any]:
    """The tumour mask on each role's own grid (see module docstring); role -> SequenceMask.

    With `mask_label`, labels/<mask_label> (on the T2WI grid) is the mask of every sequence,
    carried by the transforms; the sequences' own labels are not used."""
    if mask_label is not None:
        if mask_label not in case.label_paths:
            found = ", ".join(sorted(case.label_paths)) or "none"
            raise InputError(f"no labels/{mask_label} mask in the case (labels: {found})", case.folder)
        t2_mask = case.label(mask_label)
        if not same_grid(t2_mask, case.image(REQUIRED_ROLE)):
            raise InputError(f"labels/{mask_label} is not on the T2WI grid", case.folder)
    else:
        t2_mask = case.label("tumor") if "tumor" in case.label_paths else None
    own = {}
    for role, image in (images.items() if mask_label is None else ()):
        name = f"tumor_{role}"
        if name in case.label_paths:
            label = case.label(name)
            if same_grid(label, image):
                own[role] = label
            else:
                warnings.append(f"{role}: labels/{name} is not on the {role} grid; not used")
    lacking = [r for r in images if r not in own]
    if lacking and t2_mask is None:
        raise InputError(f"no tumour mask for {', '.join(lacking)}: the case has neither labels/tumor (T2WI) nor "
                         f"labels/tumor_<ROLE> for {'/'.join(lacking)}", case.folder)
    # the readout's rule (registration.rule), for the sequences without their own delineation
    transforms = Transforms()
    if any(r != REQUIRED_ROLE for r in lacking):
        available = {REQUIRED_ROLE: case.image(REQUIRED_ROLE), **images}
        if "DWI" in lacking and "ADC" in case.roles and "ADC" not in available:
            available["ADC"] = case.image("ADC")  # the DWI takes the ADC's transform
        transforms = resolve_transforms(available, lacking, read_transforms(case.folder), register=register)
    masks = sequence_masks(images, t2_mask, transforms.by_role, own, warnings)
    for role in transforms.registered:
        masks[role].source = REGISTERED_ON_THE_FLY
    return masks


def extract_case(case_dir: str | Path, config: ExtractionConfig | dict[str, Any], threads: int | None = None) -> CaseFeatures:
    """Radiomics (and deep features) of one case folder for `config`'s roles; raises on failure.

    `config` is an ExtractionConfig or its `task_view()` (which may ask for some components only).
    `threads` limits onnxruntime's threads. `CaseFeatures.components` groups the values by component.
    """
    view = config.task_view() if isinstance(config, ExtractionConfig) else config
    folder = Path(case_dir)
    timings: dict[str, float] = {}
    warnings: list[str] = []
    clock = time.process_time()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.process_time()
        timings[name] = timings.get(name, 0.0) + now - clock
        clock = now

    case = CaseInputs(folder, extra_labels=[view["mask_label"]] if view.get("mask_label") else [])
    missing = [r for r in view["roles"] if r not in case.roles]
    if missing:
        raise InputError(f"case lacks the {', '.join(missing)} sequence(s) (has: {', '.join(case.roles) or 'none'})",
                         folder)
    images = {role: case.image(role) for role in view["roles"]}
    lap("load")
    masks = case_masks(case, images, view["register"], warnings, mask_label=view.get("mask_label"))
    lap("masks")
    components = view["plan"].apply(images, masks, warnings=warnings, threads=threads, lap=lap).by_component
    features = {name: value for values in components.values() for name, value in values.items()}
    return CaseFeatures(case_id=folder.name, features=features, masks={r: m.source for r, m in masks.items()},
                        warnings=list(dict.fromkeys(warnings)), timings=timings, components=components)
