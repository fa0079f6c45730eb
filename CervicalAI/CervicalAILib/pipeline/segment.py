"""The study as segmentation reads it: every sequence on the T2WI grid, with the transforms that put it there.

`cervicalai segment` (and the benchmarks) call `load_images`; the transforms follow the one rule of
`registration.rule` (same grid, stored, the ADC's for the DWI, registered now) and are written beside
the mask, so that `predict` carries the reviewed mask back onto each sequence's own grid with them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from CervicalAILib.contracts.case_folder import REQUIRED_ROLE, ROLES, TRANSFORMS_DIR
from CervicalAILib.contracts.case_identity import check_case, read_record
from CervicalAILib.core.progress import ProgressCallback
from CervicalAILib.registration.masks import read_transforms
from CervicalAILib.registration.resample import onto_t2_grid
from CervicalAILib.registration.rule import TransformSource, resolve_transforms, stored_in_use
from CervicalAILib.study.load import load_study, require_role

REGISTRATION_METHOD = {  # the registration record of segmentation.json, per role
    TransformSource.REGISTERED: "rigid registration onto the T2WI (Mattes MI)",
    TransformSource.STORED: "stored transform",
}


def load_images(
    path: Path, t2_only: bool = False, progress: ProgressCallback | None = None, originals: dict | None = None,
) -> tuple[dict[str, sitk.Image], dict[str, dict[str, Any]], dict[str, sitk.Transform]]:
    """Images of the study on the T2WI grid, the registration records, and the transforms (T2WI -> role).

    Sequences already on the T2WI grid (a case folder written by `cervicalai study register`) are
    used as they are, with the transforms stored beside them carried into the output; only the
    others are registered.
    originals: when given, filled with the study's images as read (own grids) and "_case_id".
    """
    study = load_study(path)
    require_role(study, REQUIRED_ROLE, "the tumour is segmented on the T2WI")
    roles = [role for role in ROLES if role in study.roles_present()]
    if t2_only:
        roles = [REQUIRED_ROLE]
    images = {role: study.image(role) for role in roles}
    if originals is not None:
        originals.update(images)
        originals["_case_id"] = study.case_id
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
    return onto_t2_grid(images, roles, transforms), records, {**kept, **transforms.by_role}
