"""Bring every sequence of a study onto the T2WI grid and write the result as a case folder.

The T2WI is the reference (it is where the tumour is contoured). DWI, ADC and CE-T1WI are
rigidly registered onto it and resampled onto its voxel grid; the T2WI itself is not touched.

ADC maps are computed by the scanner from the DWI acquisition, so the ADC and the DWI share one
position and get one transform. When both exist the ADC is the one registered and its transform
is applied to the high-b DWI: a high-b image shows little besides the tumour and noise, and on the
real ProstateX study its registration to the T2WI wandered 6-16 mm / 5-7 degrees depending on the
random sampling seed, while the ADC's stayed within 1 mm / 2 degrees of the scanner geometry
(the two share the scanner geometry exactly, so one of them had to be wrong). A lone DWI is
registered by itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import SimpleITK as sitk

from CervicalAILib import __version__
from CervicalAILib.contracts.case_folder import (
    CASE_FILE,
    REGISTRATION_FILE,
    TRANSFORMS_DIR,
    CaseManifest,
    Grid,
)
from CervicalAILib.contracts.case_identity import case_record
from CervicalAILib.core import atomic
from CervicalAILib.core.errors import InputError, OutputExistsError
from CervicalAILib.core.progress import ProgressCallback, no_progress, sub_progress
from CervicalAILib.io.case import REQUIRED_ROLE, ROLES, Case, write_case
from CervicalAILib.io.geometry import orientation_label, overlap_fraction, resample_to_reference, same_grid
from CervicalAILib.registration.rigid import DEFAULT_SEED, RegistrationResult, register_rigid, transform_text

# Below this fraction of T2WI voxels covered by a sequence (after registration) it is refused.
MIN_OVERLAP = 0.10


def grid_summary(image: sitk.Image) -> dict[str, Any]:
    return {
        "size": list(image.GetSize()),
        "spacing_mm": [round(s, 6) for s in image.GetSpacing()],
        "origin_mm": [round(o, 6) for o in image.GetOrigin()],
        "direction": [round(d, 8) for d in image.GetDirection()],
        "orientation": orientation_label(image),
    }


def register_to_t2(
    images: dict[str, sitk.Image],
    progress: ProgressCallback | None = None,
    *,
    max_seconds: float = 60.0,
    seed: int = DEFAULT_SEED,
    min_overlap: float = MIN_OVERLAP,
    **rigid_options: Any,
) -> tuple[dict[str, sitk.Image], dict[str, RegistrationResult]]:
    """Register DWI/ADC/CE-T1WI onto the T2WI; return (images on the T2W grid, results per role).

    images: role -> volume, roles from io.case.ROLES; "T2W" is required and returned unchanged.
    The others are resampled with linear interpolation onto the T2WI grid as float32 (0 outside
    their field of view). The DWI takes the ADC's transform when both are given on one grid (its
    result's `settings["transform_from"]` says "ADC"; see the module note). max_seconds bounds
    each registration.
    Raises InputError for a missing T2WI, an unknown role, or a sequence that covers less than
    `min_overlap` of the T2WI after registration. `rigid_options` go to `register_rigid`.
    """
    progress = progress or no_progress
    unknown = sorted(set(images) - set(ROLES))
    if unknown:
        raise InputError(f"unknown sequence role(s) {unknown}; known: {', '.join(ROLES)}")
    if REQUIRED_ROLE not in images:
        raise InputError(f"no {REQUIRED_ROLE} image: the T2WI is the reference grid for co-registration")
    fixed = images[REQUIRED_ROLE]
    # the ADC before the DWI, so that the DWI can reuse its transform: one acquisition, one grid
    # (a DWI and an ADC on different grids are not taken for one acquisition: both registered)
    order = [role for role in ("ADC", "DWI", "CET1") if role in images]
    shared = "ADC" in images and "DWI" in images and same_grid(images["ADC"], images["DWI"])
    to_register = [role for role in order if not (role == "DWI" and shared)]
    results: dict[str, RegistrationResult] = {}
    resampled: dict[str, sitk.Image] = {REQUIRED_ROLE: fixed}
    for number, role in enumerate(order):
        moving = images[role]
        if role in to_register:
            step = sub_progress(progress, number / max(len(order), 1), (number + 1) / max(len(order), 1))
            step(0.0, f"registering {role} onto T2W")
            try:
                result = register_rigid(
                    fixed, moving, max_seconds=max_seconds, seed=seed, progress=step, **rigid_options
                )
            except InputError as exc:
                raise InputError(f"{role} onto T2W: {exc}") from exc
        else:
            source = results["ADC"]
            result = RegistrationResult(
                transform=sitk.Euler3DTransform(source.transform),
                metric_value=float("nan"),
                initial_metric_value=float("nan"),
                iterations=0,
                seconds=0.0,
                converged=source.converged,
                stop_reason="transform of the ADC applied (the ADC is computed from this DWI acquisition)",
                initializer=source.initializer,
                settings={"transform_from": "ADC"},
                warnings=list(source.warnings),
            )
        covered = overlap_fraction(moving, fixed, result.transform)
        if covered < min_overlap:
            raise InputError(
                f"{role} does not overlap the T2W image after registration: it covers {covered:.0%} of the "
                f"T2W volume (at least {min_overlap:.0%} needed); is it from the same study and region?"
            )
        result.settings["overlap_fraction"] = round(covered, 4)
        results[role] = result
        resampled[role] = resample_to_reference(
            moving, fixed, result.transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32
        )
        progress((number + 1) / max(len(order), 1), f"{role} resampled onto the T2W grid")
    progress(1.0, "co-registration done")
    return resampled, results


def register_study_to_case(
    study: Any,
    out_dir: str | Path,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    **register_options: Any,
) -> Path:
    """Co-register a study's sequences onto its T2WI and write them as a case folder.

    `study` is an `io.study.Study` (has `.roles_present()`) or an `io.case.Case` (has `.roles`);
    both have `.image(role)`. Labels and clinical.json are carried over from a case folder (a
    Case, or a Study's `.case`). Writes `out_dir/` with T2W.nii.gz (unchanged), the other sequences
    on the T2W grid, `registration.json` (source grids, every transform with its parameters,
    metric, iterations, seconds) and `transforms/<ROLE>.tfm` (ITK transform files, loadable in
    3D Slicer).
    Refuses to replace a non-empty `out_dir` unless `overwrite`.
    """
    progress = progress or no_progress
    out_dir = Path(out_dir)
    # fail before minutes of work, not after
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise OutputExistsError(f"{out_dir}: output folder exists and is not empty (use --overwrite to replace it)")
    if hasattr(study, "roles_present"):
        roles = list(study.roles_present())
    elif hasattr(study, "roles"):
        roles = list(study.roles)
    else:
        raise InputError(f"cannot register {type(study).__name__}: expected a study or a case folder")
    roles = [role for role in ROLES if role in roles]
    if REQUIRED_ROLE not in roles:
        raise InputError(
            f"study has no {REQUIRED_ROLE} series (found: {', '.join(roles) or 'none'}); "
            "the T2WI is the reference for co-registration", getattr(study, "path", None)
        )
    progress(0.0, "reading sequences")
    images = {role: study.image(role) for role in roles}
    resampled, results = register_to_t2(images, sub_progress(progress, 0.05, 0.9), **register_options)

    fixed = images[REQUIRED_ROLE]
    # labels and clinical.json come from a case folder (a Study loaded from one keeps it as .case)
    source_case = study if isinstance(study, Case) else getattr(study, "case", None)
    labels: dict[str, sitk.Image] = {}
    for name in sorted(source_case.label_paths if source_case is not None else {}):
        label = source_case.label(name)
        if not same_grid(label, fixed):  # the contract puts labels on the T2W grid; repair if not
            label = resample_to_reference(label, fixed, None, sitk.sitkNearestNeighbor)
        labels[name] = label
    record = {
        "source": str(getattr(study, "path", "")),
        # the case the transforms were computed on (segment and predict check it: provenance.py)
        "case": case_record(getattr(study, "case_id", None) or Path(str(getattr(study, "path", "case"))).name, images),
        "reference": REQUIRED_ROLE,
        "reference_grid": grid_summary(fixed),
        "software": {"cervicalai": __version__, "SimpleITK": sitk.Version_VersionString()},
        "sequences": {
            role: {"source_grid": grid_summary(images[role]), **results[role].to_dict()} for role in results
        },
    }
    # the folder says it is on the T2WI grid, and from which native images (contracts/case_folder.py)
    manifest = CaseManifest(Grid.T2W, str(Path(record["source"]).resolve()) if record["source"] else None,
                            {role: image["voxels_sha256"] for role, image in record["case"]["images"].items()})
    extra_files: dict[str, str] = {REGISTRATION_FILE: atomic.to_json(record), CASE_FILE: atomic.to_json(manifest.to_dict())}
    for role, result in results.items():
        extra_files[f"{TRANSFORMS_DIR}/{role}.tfm"] = transform_text(result.transform)
    progress(0.92, "writing the case folder")
    write_case(
        out_dir,
        resampled,
        labels=labels or None,
        clinical=source_case.clinical if source_case is not None else None,
        extra_files=extra_files,
        overwrite=overwrite,
    )
    progress(1.0, f"case folder written: {out_dir}")
    return out_dir
