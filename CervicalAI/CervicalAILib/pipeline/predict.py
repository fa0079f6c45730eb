"""`cervicalai predict`: one patient's images + reviewed tumour mask + clinical values -> readout.

Steps (each timed in `seconds`):
1. inputs: the study (case folder or DICOM), the tumour mask on the T2WI grid (checked: not empty,
   inside the image, on the T2WI grid or resampled onto it with a warning), its review record,
   the clinical values (validated; c_LNM derived from the node's short axis when not given);
2. masks per sequence: features are computed on each sequence's own grid, the mask carried there
   by the registration transform (from `study register`/segmentation, or registered now);
3. model-driven features: only the radiomics features and deep-feature encoders that the risk
   models use (values identical to a full extraction);
4. scores (ComBat for the patient's centre, Rad_score, DL_score, DLRC probability, nomogram points)
   for the LNM model and, when present, the stage-group model; nomogram.png/svg;
5. staging readout (measured size class, node assessment, predicted stage group);
6. readout.json written atomically with everything used, warnings and model versions.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from CervicalAILib import RESEARCH_USE_STATEMENT, __version__
from CervicalAILib.bundles.defaults import default_bundle_path
from CervicalAILib.contracts.case_folder import ROLE_TITLES, require_native_grids
from CervicalAILib.contracts.clinical import FIELDS as CLINICAL_FIELDS
from CervicalAILib.contracts.clinical import validate_clinical
from CervicalAILib.contracts.feature_names import is_deep, role_of
from CervicalAILib.core import atomic
from CervicalAILib.core.errors import BundleError, InputError
from CervicalAILib.core.hashing import sha256_file
from CervicalAILib.core.progress import ProgressCallback, no_progress
from CervicalAILib.features.plan import EncoderRef, FeaturePlan, FeatureRequest
from CervicalAILib.io import measurements as measure
from CervicalAILib.io.geometry import label_fraction_inside, resample_to_reference, same_grid
from CervicalAILib.io.images import read_image
from CervicalAILib.registration.masks import read_transforms, sequence_masks
from CervicalAILib.registration.rule import resolve_transforms, stored_in_use
from CervicalAILib.review.record import read_review
from CervicalAILib.scoring.risk_model import RiskModel, load_risk_model
from CervicalAILib.scoring.staging import C_LNM_SHORT_AXIS_MM
from CervicalAILib.segmentation.outputs import no_anatomy_sentence

log = logging.getLogger(__name__)

READOUT_SCHEMA = "cervicalai.readout/1"
READOUT_FILE = "readout.json"
OUTPUT_FILES = [READOUT_FILE, "nomogram.png", "nomogram.svg"]  # what `predict --overwrite` may replace
# Keys a clinical.json may hold besides the clinical fields without a warning (bookkeeping, not inputs).
BOOKKEEPING_KEYS = {"case_id", "patient_id", "pseudonym"}
MIN_MASK_VOXELS = 10  # fewer voxels cannot carry texture; pyradiomics refuses such regions too
MIN_TUMOUR_INSIDE = 0.999  # as the radiomics extraction: a mask cut by the image border is refused


@dataclass
class ReadoutInputs:
    """What a readout needs; `images` maps roles to each sequence on its own acquisition grid."""

    images: dict[str, sitk.Image]
    mask: sitk.Image
    clinical: dict[str, Any]
    case_id: str
    center: str | None = None
    image_records: dict[str, dict[str, Any]] = field(default_factory=dict)  # role -> path, sha256, series
    mask_path: Path | None = None
    transforms: dict[str, sitk.Transform] = field(default_factory=dict)
    segmentation_summary: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)  # found while reading the inputs (provenance, unused keys)
    clinical_path: Path | None = None  # the file the clinical values came from (named in their errors)


# --------------------------------------------------------------------------- inputs


def check_mask(mask: sitk.Image, t2: sitk.Image, warnings: list[str], where: str = "tumour mask",
               path: str | Path | None = None) -> sitk.Image:
    """The mask as uint8 0/1 on the T2WI grid; InputError (naming `path`) when it cannot describe a tumour there."""
    if mask.GetDimension() != 3:
        raise InputError(f"the {where} must be a 3D image, got {mask.GetDimension()}D", path)
    if not same_grid(mask, t2):
        inside = label_fraction_inside(mask, t2)
        if inside == 0.0:
            raise InputError(f"the {where} does not overlap the T2WI (different position in space)", path)
        if inside < MIN_TUMOUR_INSIDE:
            # a tumour cut at the image border would be scored as a smaller tumour
            raise InputError(f"{100 * (1 - inside):.1f}% of the {where} lies outside the T2WI: the readout would "
                             "describe a truncated tumour (check that the mask belongs to this study)", path)
        warnings.append(f"the {where} is not on the T2WI grid: resampled onto it (nearest neighbour)")
        mask = resample_to_reference(mask, t2, interpolator=sitk.sitkNearestNeighbor, pixel_type=sitk.sitkUInt8)
    mask = sitk.Cast(mask != 0, sitk.sitkUInt8)
    count = int(np.count_nonzero(sitk.GetArrayViewFromImage(mask)))
    if count == 0:
        raise InputError(f"the {where} is empty (no tumour voxel on the T2WI)", path)
    if count < MIN_MASK_VOXELS:
        raise InputError(
            f"the {where} has only {count} voxel(s); at least {MIN_MASK_VOXELS} are needed for radiomics and deep features",
            path)
    return mask


def check_clinical_keys(values: dict[str, Any], used: set[str], warnings: list[str]) -> None:
    """InputError for a key that looks like a misspelt clinical field (its value would be ignored and the
    reader told it is missing); a warning listing the other keys no model uses."""
    import difflib

    known = sorted(used)
    unused = []
    for key in values:
        if key in used or key in BOOKKEEPING_KEYS:
            continue
        close = difflib.get_close_matches(str(key).lower(), known, n=1, cutoff=0.8)
        if close and (close[0] not in values or str(key).lower() == close[0]):
            raise InputError(f"clinical value {key!r} is not a known field: did you mean {close[0]!r}? (known fields: "
                             f"{', '.join(known)})")
        unused.append(str(key))
    if unused:
        warnings.append(f"clinical value(s) not used by any model and left out of the readout: {', '.join(unused)}")


def derive_clinical(values: dict[str, Any]) -> dict[str, Any]:
    """Validated clinical values; c_lnm from the short axis (seed 004: >= 10 mm) when not given."""
    clean = validate_clinical(values)
    short = clean.get("ln_short_axis_mm")
    if clean.get("c_lnm") is None and short is not None:
        clean["c_lnm"] = int(short >= C_LNM_SHORT_AXIS_MM)
    elif clean.get("c_lnm") is not None:
        clean["c_lnm"] = int(clean["c_lnm"])  # validate_clinical parsed it as yes/no
        if short is not None and clean["c_lnm"] != int(short >= C_LNM_SHORT_AXIS_MM):
            raise InputError(
                f"clinical values disagree: c_lnm={clean['c_lnm']} but ln_short_axis_mm={short:g} mm "
                "(c_LNM means a short axis >= 10 mm)"
            )
    return clean


def load_inputs(
    case: str | Path,
    mask_path: str | Path,
    clinical: dict[str, Any] | str | Path,
    transforms_dir: str | Path | None = None,
    center: str | None = None,
) -> ReadoutInputs:
    """Read the study, mask, clinical values and (optional) registration transforms from disk."""

    from CervicalAILib.contracts.case_identity import check_case, read_record
    from CervicalAILib.contracts.case_identity import image_record as provenance_record
    from CervicalAILib.io.mask_checks import tumour_mask
    from CervicalAILib.study.load import load_study, require_role

    case = Path(case)
    require_native_grids(case)
    study = load_study(case)
    require_role(study, "T2W", "the tumour mask is defined on the T2WI grid")
    images = {role: study.image(role) for role in study.roles_present()}
    image_records = {role: image_record(study.series_for(role)) for role in images}
    warnings: list[str] = []
    clinical_path = None
    if isinstance(clinical, (str, Path)):
        clinical_path = Path(clinical)
        clinical = read_clinical_file(clinical)
    mask_path = Path(mask_path)
    mask = tumour_mask(read_image(mask_path), mask_path)
    case_id = case.name if case.is_dir() else case.stem
    # whose mask is it? segmentation.json beside an automatic mask, or the case folder a labels/ mask is in
    record, record_path = read_record(mask_path.parent)
    if record is None and mask_path.parent.name == "labels" and (mask_path.parent.parent / "T2W.nii.gz").is_file():
        mask_case = mask_path.parent.parent
        if mask_case.resolve() != case.resolve():
            record = {"case_id": mask_case.name, "images": {"T2W": provenance_record(read_image(mask_case / "T2W.nii.gz"))}}
            record_path = mask_path
        else:
            record, record_path = {"case_id": case_id, "images": {}}, mask_path  # the case's own label
    check_case(record, record_path, images, f"the tumour mask {mask_path.name}", case_id, warnings=warnings)
    transforms_source = Path(transforms_dir) if transforms_dir else case
    if transforms_dir:
        if not transforms_source.is_dir():
            raise InputError("--transforms folder not found" if not transforms_source.exists()
                             else "--transforms must be a folder (the output of study register or segment)",
                             transforms_source)
        if not (transforms_source / "transforms").is_dir() or not any((transforms_source / "transforms").glob("*.tfm")):
            raise InputError("holds no registration transforms (transforms/<ROLE>.tfm, written by `cervicalai study "
                             "register` or `cervicalai segment`)", transforms_source)
    transforms = read_transforms(transforms_source)
    if transforms:
        record, record_path = read_record(transforms_source)
        if record is None and not transforms_dir:
            record, record_path = {"case_id": case_id, "images": {}}, None  # the case folder's own transforms
        # the sequences a transform will carry the mask onto (those on the T2WI grid need none) must be the
        # images it was computed for
        check_case(record, record_path, images, "the registration transforms", case_id,
                   roles=stored_in_use(images, transforms),
                   warnings=warnings)
    segmentation_summary = None
    seg_json = mask_path.parent / "segmentation.json"
    if seg_json.is_file():  # validated against its schema by read_record above
        from CervicalAILib.core.json_input import read_json

        segmentation_summary = read_json(seg_json, "segmentation summary")
    require_contour_where_no_cervix(mask_path, segmentation_summary)
    if center is None:
        center = (clinical or {}).get("center")
    if center is not None:
        try:
            center = validate_clinical({"center": center})["center"]
        except InputError as exc:
            raise InputError(exc.message, clinical_path) from exc
    return ReadoutInputs(
        images=images,
        mask=mask,
        clinical=dict(clinical or {}),
        case_id=case_id,
        center=None if center is None else str(center),
        image_records=image_records,
        mask_path=mask_path,
        transforms=transforms,
        segmentation_summary=segmentation_summary,
        warnings=warnings,
        clinical_path=clinical_path,
    )


def require_contour_where_no_cervix(mask_path: Path, segmentation_summary: dict[str, Any] | None) -> None:
    """InputError when the automatic segmentation beside the mask recognised no cervix or uterus
    (its anatomy gate) and the mask has no valid review record: a risk is then computed only from
    a contour a reader drew or confirmed, never from one nobody checked."""
    sentence = no_anatomy_sentence(segmentation_summary)
    if sentence is not None and not read_review(mask_path).reviewed:
        raise InputError(
            f"{sentence} (segmentation.json beside the "
            "mask): predict scores only a reviewed contour here - draw or check the tumour in the Segment module "
            "and mark it as reviewed", mask_path,
        )


def read_clinical_file(path: str | Path) -> dict[str, Any]:
    """clinical.json as a dict; InputError naming the file when it is missing, not strict JSON (duplicate
    keys, NaN) or not an object."""
    from CervicalAILib.core.json_input import read_json

    clinical_path = Path(path)
    clinical = read_json(clinical_path, "clinical values file")
    if not isinstance(clinical, dict):
        raise InputError(f"must hold a JSON object of clinical values, not a JSON {type(clinical).__name__}",
                         clinical_path)
    return clinical


def image_record(series) -> dict[str, Any]:
    """Where a sequence came from, absolute and hashed: the image file, or the DICOM series folder
    with its SeriesInstanceUID and one SHA-256 over its files' SHA-256s (in file-name order)."""
    import hashlib

    record: dict[str, Any] = {"path": str(Path(series.path).resolve()), "source": series.source}
    if series.source == "dicom":
        files = sorted({str(frame.path) for volume in series.volumes for frame in volume.frames})
        digest = hashlib.sha256("\n".join(sha256_file(f) for f in files).encode()).hexdigest()
        record.update({"sha256": digest, "sha256_of": "the series' files' SHA-256s, one per line, in file-name order",
                       "series_uid": series.uid, "series_number": series.number, "n_files": len(files)})
        if series.b_value is not None:
            record["b_value"] = series.b_value
    else:
        record["sha256"] = sha256_file(series.path)
    return record


# --------------------------------------------------------------------------- bundles


def choose_lnm_model(model: RiskModel, roles: set[str], chosen_by_user: bool) -> tuple[RiskModel, str | None]:
    """The LNM model for a study with these sequences, and why when it is not `model`.

    When the study lacks a sequence the default (full) model needs (CE-T1WI: ESUR makes contrast
    optional) and the shipped model without contrast (`lnm-no-contrast`) can score it, that model is
    used, and the sentence says so. A model the user chose is always kept (its scores that need the
    missing sequence are then unavailable)."""
    missing = [r for r in model.required_sequences if r not in roles]
    if not missing or chosen_by_user:
        return model, None
    try:
        variant = load_risk_model(default_bundle_path("lnm-no-contrast"))
    except BundleError as exc:
        log.info("no LNM model without contrast: %s", exc)
        return model, None
    if variant.endpoint != model.endpoint or any(r not in roles for r in variant.required_sequences):
        return model, None
    return variant, (f"the study has no {', '.join(ROLE_TITLES.get(r, r) for r in missing)}: the LNM risk comes from "
                     f"{variant.label}, the model without contrast "
                     f"({' + '.join(ROLE_TITLES.get(r, r) for r in variant.required_sequences)}), instead of {model.label}")


def load_models(lnm_bundle: str | Path | None, stage_bundle: str | Path | None, use_stage: bool = True):
    """The LNM risk model (required) and the stage-group model (optional; default when shipped)."""
    lnm = load_risk_model(lnm_bundle or default_bundle_path("lnm"))
    stage = None
    if stage_bundle is not None:
        stage = load_risk_model(stage_bundle)
    elif use_stage:
        try:
            stage = load_risk_model(default_bundle_path("stage_group"))
        except BundleError as exc:
            log.info("no stage-group model: %s", exc)
    return lnm, stage


# --------------------------------------------------------------------------- features


def feature_request(model: RiskModel, roles_present: set[str] | list[str]) -> FeatureRequest:
    """What `model` asks of the feature plan: its features, its radiomics settings for the sequences the
    case has (a bundle without settings for one of them is a BundleError), its encoders."""
    roles = {role_of(name) for name in model.required_features if not is_deep(name)}
    return FeatureRequest(
        label=model.label,
        names=tuple(model.required_features),
        radiomics_settings={role: model.radiomics_settings(role) for role in sorted(roles) if role in roles_present},
        encoders=tuple(EncoderRef(e.get("family"), e.get("name"), e.get("version"), e.get("sha256")) for e in model.encoders),
    )


def compute_features(
    inputs: ReadoutInputs,
    models: list[RiskModel],
    masks: dict[str, Any],
    warnings: list[str],
    device: str = "cpu",
) -> list[dict[str, float]]:
    """Model-driven radiomics and deep features, one dict per model (in `models` order), by one
    `FeaturePlan` (features/plan.py): each model's features with its own radiomics settings and
    encoder; one extraction per sequence and settings, one run per encoder. A sequence the case
    lacks is skipped: the model then says which score is unavailable (nothing is imputed)."""
    requests = [feature_request(model, set(inputs.images)) for model in models]
    plan = FeaturePlan.for_models(requests, set(inputs.images))
    values = plan.apply(inputs.images, masks, warnings=warnings, device=device)
    return [values.for_request(request) for request in requests]


# --------------------------------------------------------------------------- readout


def validated_performance(model: RiskModel) -> list[dict[str, Any]]:
    """The model's figures per cohort from its bundle: n, events, AUC of the DLRC probability, and
    the figures at its operating point when the bundle has them (one flat row per cohort)."""
    metrics = model.manifest.get("metrics") or {}
    rows = []
    for cohort, aucs in (metrics.get("auc") or {}).items():
        row: dict[str, Any] = {
            "cohort": cohort,
            "n": (metrics.get("n") or {}).get(cohort),
            "events": (metrics.get("events") or {}).get(cohort),
            "auc": aucs.get("dlrc_probability") if isinstance(aucs, dict) else aucs,
        }
        at_cutoff = (metrics.get("at_cutoff") or {}).get(cohort) or {}
        for key in ("sensitivity", "specificity", "ppv", "npv", "accuracy"):
            if key in at_cutoff:
                row[key] = at_cutoff[key]
        rows.append(row)
    return rows


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


def predict_case(
    inputs: ReadoutInputs,
    out_dir: str | Path | None = None,
    lnm_bundle: str | Path | None = None,
    stage_bundle: str | Path | None = None,
    use_stage: bool = True,
    device: str = "cpu",
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Compute the readout; with `out_dir`, write readout.json and nomogram.png/svg atomically."""
    from CervicalAILib.scoring.nomogram import render_nomogram
    from CervicalAILib.scoring.patient import score_patient
    from CervicalAILib.scoring.staging import staging_readout

    progress = progress or no_progress
    seconds: dict[str, float] = {}
    warnings: list[str] = []
    start = time.perf_counter()

    progress(0.02, "checking inputs")
    if "T2W" not in inputs.images:
        raise InputError("no T2WI given; the tumour mask is defined on the T2WI grid")
    for role, image in inputs.images.items():
        if not np.all(np.isfinite(sitk.GetArrayViewFromImage(image))):
            raise InputError(f"the {role} image contains NaN or infinite voxel values")
    warnings.extend(inputs.warnings)
    mask = check_mask(inputs.mask, inputs.images["T2W"], warnings, path=inputs.mask_path)
    try:
        clinical = derive_clinical(inputs.clinical)
    except InputError as exc:  # name the file the values came from
        raise InputError(exc.message, inputs.clinical_path) if exc.path is None else exc from exc
    review = read_review(inputs.mask_path).to_dict() if inputs.mask_path else {"reviewed": False, "origin": "automatic"}
    if not review["reviewed"]:
        warnings.append(
            "the tumour mask has not been marked as reviewed: the readout uses an unreviewed contour"
            if review.get("origin") != "edited"
            else "the tumour mask was edited after its review: review it again"
        )
    lnm_model, stage_model = load_models(lnm_bundle, stage_bundle, use_stage)
    lnm_model, lnm_model_note = choose_lnm_model(lnm_model, set(inputs.images), chosen_by_user=lnm_bundle is not None)
    models = [m for m in (lnm_model, stage_model) if m is not None]
    # the readout keeps the reader's clinical inputs and what the models use, nothing else
    # (a synthetic case's clinical.json also holds the pathology truth, which must not leak in)
    wanted = set(CLINICAL_FIELDS) | {"c_lnm"} | {t["name"] for m in models for t in m.clinical_inputs}
    try:
        check_clinical_keys(inputs.clinical, wanted, warnings)
    except InputError as exc:
        raise InputError(exc.message, inputs.clinical_path) if exc.path is None else exc from exc
    clinical = {k: v for k, v in clinical.items() if k in wanted}
    seconds["inputs"] = time.perf_counter() - start

    # ---- masks on each sequence's own grid; registration only when no transform is known
    t0 = time.perf_counter()
    needed_roles = sorted({r for m in models for r in m.required_sequences} | {"T2W"})
    missing_roles = [r for r in needed_roles if r not in inputs.images]
    for role in missing_roles:
        warnings.append(f"the {role} sequence is missing: scores that need it are unavailable (nothing is imputed)")
    roles = [r for r in needed_roles if r in inputs.images]
    progress(0.05, "registration onto the T2WI (for the sequences without a known transform)")
    transforms = resolve_transforms(inputs.images, roles, inputs.transforms)
    if transforms.registered:
        seconds["registration"] = time.perf_counter() - t0
        t0 = time.perf_counter()
    masks = sequence_masks({r: inputs.images[r] for r in roles}, mask, transforms.by_role, warnings=warnings)
    seconds["masks"] = time.perf_counter() - t0

    # ---- features the models use
    progress(0.25, "radiomics and deep features")
    t0 = time.perf_counter()
    features_by_model = compute_features(inputs, models, masks, warnings, device=device)
    seconds["features"] = time.perf_counter() - t0

    # ---- scores
    progress(0.8, "scores and nomogram")
    t0 = time.perf_counter()
    lnm = score_patient(lnm_model, features_by_model[0], clinical, inputs.center)
    stage = score_patient(stage_model, features_by_model[1], clinical, inputs.center) if stage_model is not None else None
    radiomics_values = {k: v for k, v in features_by_model[0].items() if not is_deep(k)}
    deep_values = {k: v for k, v in features_by_model[0].items() if is_deep(k)}
    for result in (lnm, stage):
        if result is not None:
            warnings.extend(w for w in result["warnings"] + result["unavailable"] if w not in warnings)
    seconds["scores"] = time.perf_counter() - t0

    max_diameter = measure.max_diameter_mm(mask)
    segmentation = {
        "volume_ml": measure.volume_ml(mask),
        "max_diameter_mm": max_diameter,
        "largest_slice_index": measure.largest_slice_index(mask),
    }
    if inputs.segmentation_summary:
        # the automatic segmentation's own record, when its segmentation.json is beside the mask
        auto = inputs.segmentation_summary
        segmentation["confidence"] = auto.get("confidence")
        segmentation["flagged_slices"] = auto.get("flagged_slices", [])
        segmentation["automatic_model"] = (auto.get("model") or {}).get("label") if isinstance(auto.get("model"), dict) else auto.get("model")
        ood = auto.get("ood")
        if isinstance(ood, dict) and ood.get("available") and isinstance(ood.get("score"), int | float):
            # how unlike the segmentation network's training images the study is (above 1: unlike them)
            segmentation["ood_score"] = float(ood["score"])
            if ood.get("unusual"):
                warnings.append(f"automatic segmentation: {ood.get('message') or 'the study looks unlike its training images'}"
                                f" (out-of-distribution score {float(ood['score']):.2f})")
    stage_probability = stage["probability"] if stage else None
    staging = staging_readout(
        max_diameter,
        clinical,
        stage_group_probability=stage_probability,
        stage_group_model=stage_model.label if stage_model else None,
        stage_group_cutoff=stage["cutoff"] if stage else 0.5,
    )
    if stage is not None and stage_probability is None:
        staging["predicted"] = {"stage_group_chemoradiotherapy_probability": None, "text": "; ".join(stage["unavailable"])}

    readout: dict[str, Any] = {
        "schema": READOUT_SCHEMA,
        "case_id": inputs.case_id,
        "created": _now(),
        "tool": {"name": "cervicalai", "version": __version__},
        "inputs": {
            "images": {role: inputs.image_records.get(role, {"path": None, "sha256": None}) for role in inputs.images},
            "mask": {"path": str(Path(inputs.mask_path).resolve()) if inputs.mask_path else None,
                     "sha256": _sha_or_none(inputs.mask_path),
                     "grid": "T2W", "per_sequence": {r: m.source for r, m in masks.items()}},
            "center": inputs.center,
        },
        "review": review,
        "segmentation": segmentation,
        "features": {
            # the LNM model's inputs; every model's own inputs (own settings/encoder) under by_model
            "radiomics": radiomics_values,
            "deep": deep_values,
            "harmonised": {name: item["harmonised"] for name, item in lnm["features"].items()},
            "by_model": {m.label: values for m, values in zip(models, features_by_model)},
        },
        "rad_score": lnm["rad_score"],
        "dl_score": lnm["dl_score"],
        "clinical": clinical,
        "nomogram": None,
        "lnm_probability": lnm["probability"],
        "lnm": {
            "probability": lnm["probability"],
            "cutoff": lnm["cutoff"],
            "positive": lnm["above_cutoff"],
            "cutoff_source": "training Youden index",
            "model": lnm_model.label,
            "model_note": lnm_model_note,
            "validated": validated_performance(lnm_model),
            "scores": lnm["scores"],
            "harmonisation": lnm["harmonisation"],
        },
        "stage_group": stage,
        "staging": staging,
        "models": {
            "lnm": lnm_model.bundle.summary() if lnm_model.bundle else {"label": lnm_model.label},
            "stage_group": stage_model.bundle.summary() if stage_model and stage_model.bundle else None,
            "encoders": [e for m in models for e in m.encoders],
        },
        "warnings": warnings,
        "seconds": seconds,
        "statement": RESEARCH_USE_STATEMENT,
    }
    if lnm["nomogram"] is not None:
        readout["nomogram"] = {**lnm["nomogram"], "image": "nomogram.png"}

    if out_dir is not None:
        progress(0.9, "writing the readout")
        t0 = time.perf_counter()
        with atomic.atomic_directory(out_dir, overwrite=overwrite, owned=OUTPUT_FILES) as tmp:
            if lnm["nomogram"] is not None:
                # no case id in the picture: a PNG cannot be searched and scrubbed like a text (report --pseudonym)
                title = f"{lnm['outcome_label']} {100 * lnm['probability']:.0f}%"
                for suffix in ("png", "svg"):
                    render_nomogram(lnm_model.nomogram, tmp / f"nomogram.{suffix}", patient=lnm["nomogram"]["values"], title=title)
            seconds["writing"] = time.perf_counter() - t0
            seconds["total"] = time.perf_counter() - start
            (tmp / READOUT_FILE).write_text(atomic.to_json(readout), encoding="utf-8")
    else:
        seconds["total"] = time.perf_counter() - start
    progress(1.0, "readout done")
    return readout


def _sha_or_none(path: Path | None) -> str | None:
    return sha256_file(path) if path is not None and Path(path).is_file() else None
