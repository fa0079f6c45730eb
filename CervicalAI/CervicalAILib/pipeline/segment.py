"""Segmentation of one patient: the study onto the T2WI grid, the network, the outputs with their provenance.

    segmentation = segment_patient(path, bundle=None, device="cpu")      # `cervicalai segment`
    write_patient_segmentation(segmentation, out_dir)

Stages: `load_images` -> `SegmentationInputs` (every sequence on the T2WI grid; the transforms follow the
one rule of `registration.rule`: same grid, stored, the ADC's for the DWI, registered now) ->
`segment_case` (segmentation/inference.py) -> `PatientSegmentation` (the result, the transforms written
beside the mask so that `predict` carries the reviewed mask back onto each sequence's own grid, and the
record of the case the mask was made on).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from CervicalAILib.bundles.catalog import bundle_source
from CervicalAILib.contracts.case_folder import REQUIRED_ROLE, ROLES, TRANSFORMS_DIR, Grid, read_manifest
from CervicalAILib.contracts.case_identity import case_record, check_case, read_record
from CervicalAILib.core.progress import ProgressCallback, no_progress, sub_progress
from CervicalAILib.io.case import read_transforms
from CervicalAILib.registration.resample import onto_t2_grid
from CervicalAILib.registration.rule import TransformSource, resolve_transforms, stored_in_use
from CervicalAILib.segmentation.finish import SegmentationResult
from CervicalAILib.segmentation.inference import segment_case
from CervicalAILib.segmentation.outputs import write_segmentation
from CervicalAILib.study.load import load_study, require_role

REGISTRATION_METHOD = {  # the registration record of segmentation.json, per role
    TransformSource.REGISTERED: "rigid registration onto the T2WI (Mattes MI)",
    TransformSource.STORED: "stored transform",
}


@dataclass
class SegmentationInputs:
    """The study as the network reads it: every sequence on the T2WI grid."""

    case_id: str
    images: dict[str, sitk.Image]  # role -> image on the T2WI grid (T2WI first)
    originals: dict[str, sitk.Image]  # role -> image as read, on its own grid
    registration: dict[str, dict[str, Any]]  # role -> how it came onto the T2WI grid (segmentation.json)
    transforms: dict[str, sitk.Transform]  # T2WI -> role, written beside the mask for predict


@dataclass
class PatientSegmentation:
    """A segmentation and what is written with it (segmentation.json's input, registration and case)."""

    result: SegmentationResult
    transforms: dict[str, sitk.Transform]
    extra: dict[str, Any]

    @property
    def anatomy_recognised(self) -> bool:
        return self.result.anatomy_recognised


def load_images(path: Path, t2_only: bool = False, progress: ProgressCallback | None = None) -> SegmentationInputs:
    """The study on the T2WI grid, the registration records, and the transforms (T2WI -> role).

    Sequences already on the T2WI grid (a case folder written by `cervicalai study register`) are
    used as they are, with the transforms stored beside them carried into the output; only the
    others are registered.
    """
    study = load_study(path)
    require_role(study, REQUIRED_ROLE, "the tumour is segmented on the T2WI")
    roles = [role for role in ROLES if role in study.roles_present()]
    if t2_only:
        roles = [REQUIRED_ROLE]
    images = {role: study.image(role) for role in roles}
    known = read_transforms(path) if Path(path).is_dir() else {}
    if known:
        record, record_path = read_record(path)
        check_case(record, record_path, images, f"the transforms in {Path(path) / TRANSFORMS_DIR}", study.case_id,
                   roles=stored_in_use(images, known))
    transforms = resolve_transforms(images, roles, known, progress=progress)
    records: dict[str, dict[str, Any]] = {}
    for role in roles[1:]:
        source = transforms.source[role]
        if source is TransformSource.SAME_GRID:
            records[role] = {"method": "already on the T2WI grid"}
            continue
        how = REGISTRATION_METHOD[TransformSource.REGISTERED if role in transforms.registered else TransformSource.STORED]
        parameters = transforms.by_role[role].GetParameters()
        records[role] = {"method": how, "parameters": [None if not math.isfinite(p) else p for p in parameters]}
    # a `study register` output keeps its stored transforms (they move the native sequences) for predict
    kept = {role: t for role, t in known.items() if role in roles}
    return SegmentationInputs(study.case_id, onto_t2_grid(images, roles, transforms), images, records,
                              {**kept, **transforms.by_role})


def segment_patient(
    path: Path,
    *,
    bundle: str | Path | None = None,
    nnunet_model: str | Path | None = None,
    device: str = "cpu",
    t2_only: bool = False,
    progress: ProgressCallback | None = None,
) -> PatientSegmentation:
    """Segment the study at `path` (case folder or DICOM study, native or on the T2WI grid)."""
    progress = progress or no_progress
    start = time.perf_counter()
    inputs = load_images(path, t2_only, sub_progress(progress, 0.0, 0.3))
    registration_seconds = time.perf_counter() - start
    result = segment_case(inputs.images, bundle=bundle, device=device, progress=sub_progress(progress, 0.3, 1.0),
                          nnunet_model=nnunet_model)
    result.summary["seconds"]["registration"] = round(registration_seconds, 3)
    if result.summary["model"].get("backend") != "nnunetv2":  # an ONNX bundle: shipped or user-supplied
        result.summary["model"].update(bundle_source(result.summary["model"]["path"]))
    record = case_record(inputs.case_id, inputs.originals)
    if Path(path).is_dir() and read_manifest(path).grid is Grid.T2W:
        # a `study register` output: its transforms move the native sequences, which its own record names
        native, _ = read_record(path)
        moved = {r: image for r, image in ((native or {}).get("images") or {}).items()
                 if r in inputs.transforms and r != REQUIRED_ROLE}
        record["images"].update(moved)
    extra = {
        "input": str(path),
        "registration": inputs.registration,
        # the case this mask (and its transforms) was made on: predict and export check it (provenance.py)
        "case": record,
    }
    return PatientSegmentation(result, inputs.transforms, extra)


def write_patient_segmentation(segmentation: PatientSegmentation, out_dir: Path, *, overwrite: bool = False) -> Path:
    """tumor.nii.gz, tumor_probability.nii.gz, segmentation.json (+ organs, transforms/) into `out_dir`, atomically."""
    return write_segmentation(segmentation.result, out_dir, overwrite=overwrite, extra=segmentation.extra,
                              transforms=segmentation.transforms)
