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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from CervicalAILib import RESEARCH_USE_STATEMENT, __version__
from CervicalAILib.bundles.defaults import default_bundle_path
from CervicalAILib.contracts.case_folder import ROLE_TITLES
from CervicalAILib.contracts.clinical import FIELDS as CLINICAL_FIELDS
from CervicalAILib.contracts.feature_names import is_deep, role_of
from CervicalAILib.contracts.readout import (
    NOMOGRAM_IMAGE,
    READOUT_FILE,
    READOUT_SCHEMA,
    Readout,
    validated_rows,
)
from CervicalAILib.contracts.readout_text import ood_warning
from CervicalAILib.core import atomic
from CervicalAILib.core.errors import BundleError, InputError
from CervicalAILib.core.hashing import sha256_file
from CervicalAILib.core.progress import ProgressCallback, no_progress
from CervicalAILib.features.plan import EncoderRef, FeaturePlan, FeatureRequest
from CervicalAILib.io import measurements as measure
from CervicalAILib.pipeline.inputs import (
    ReadoutInputs,
    check_clinical_keys,
    check_mask,
    derive_clinical,
)
from CervicalAILib.registration.masks import SequenceMask, sequence_masks
from CervicalAILib.registration.rule import resolve_transforms
from CervicalAILib.review.record import read_review
from CervicalAILib.scoring.nomogram import render_nomogram
from CervicalAILib.scoring.patient import score_patient
from CervicalAILib.scoring.risk_model import RiskModel, load_risk_model
from CervicalAILib.scoring.staging import staging_readout

log = logging.getLogger(__name__)

OUTPUT_FILES = [READOUT_FILE, "nomogram.png", "nomogram.svg"]  # what `predict --overwrite` may replace
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


@dataclass
class RiskModels:
    """The risk models a readout uses: the LNM model (for this study's sequences) and the stage-group model."""

    lnm: RiskModel
    stage_group: RiskModel | None = None
    lnm_note: str | None = None  # why the LNM model is not the one asked for (the study lacks a sequence)

    @classmethod
    def load(cls, lnm_bundle: str | Path | None = None, stage_bundle: str | Path | None = None, use_stage: bool = True,
             roles_present: set[str] | None = None) -> RiskModels:
        lnm, stage = load_models(lnm_bundle, stage_bundle, use_stage)
        lnm, note = choose_lnm_model(lnm, set(roles_present or ()), chosen_by_user=lnm_bundle is not None)
        return cls(lnm, stage, note)

    @property
    def in_use(self) -> list[RiskModel]:
        return [m for m in (self.lnm, self.stage_group) if m is not None]


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


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


@dataclass
class CheckedInputs:
    """The readout's inputs after their checks: the mask (uint8 on the T2WI grid), the clinical values
    (validated, c_LNM derived), the mask's review record, the warnings so far."""

    mask: sitk.Image
    clinical: dict[str, Any]
    review: dict[str, Any]
    warnings: list[str]


def check_inputs(inputs: ReadoutInputs) -> CheckedInputs:
    """InputError (naming the file) for images with NaN, a mask that cannot describe a tumour on the T2WI,
    clinical values that are wrong or contradict each other; warnings for an unreviewed contour."""
    warnings: list[str] = []
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
    return CheckedInputs(mask, clinical, review, warnings)


def clinical_for_models(inputs: ReadoutInputs, checked: CheckedInputs, models: RiskModels) -> dict[str, Any]:
    """The reader's clinical inputs and what the models use, nothing else (a synthetic case's
    clinical.json also holds the pathology truth, which must not leak in); InputError for a misspelt key."""
    wanted = set(CLINICAL_FIELDS) | {"c_lnm"} | {t["name"] for m in models.in_use for t in m.clinical_inputs}
    try:
        check_clinical_keys(inputs.clinical, wanted, checked.warnings)
    except InputError as exc:
        raise InputError(exc.message, inputs.clinical_path) if exc.path is None else exc from exc
    return {k: v for k, v in checked.clinical.items() if k in wanted}


def roles_for_models(inputs: ReadoutInputs, models: RiskModels, warnings: list[str]) -> list[str]:
    """The sequences the models need that the study has (T2WI first); a missing one is a warning."""
    needed_roles = sorted({r for m in models.in_use for r in m.required_sequences} | {"T2W"})
    for role in needed_roles:
        if role not in inputs.images:
            warnings.append(f"the {role} sequence is missing: scores that need it are unavailable (nothing is imputed)")
    return [r for r in needed_roles if r in inputs.images]


@dataclass
class Scores:
    """score_patient's results (scoring/patient.py) for the LNM model and the stage-group model."""

    lnm: dict[str, Any]
    stage_group: dict[str, Any] | None


def score_models(models: RiskModels, features_by_model: list[dict[str, float]], clinical: dict[str, Any],
                 center: str | None, warnings: list[str]) -> Scores:
    lnm = score_patient(models.lnm, features_by_model[0], clinical, center)
    stage = (score_patient(models.stage_group, features_by_model[1], clinical, center)
             if models.stage_group is not None else None)
    for result in (lnm, stage):
        if result is not None:
            warnings.extend(w for w in result["warnings"] + result["unavailable"] if w not in warnings)
    return Scores(lnm, stage)


def segmentation_readout(inputs: ReadoutInputs, mask: sitk.Image, warnings: list[str]) -> dict[str, Any]:
    """The readout's segmentation section: the measured tumour, and the automatic segmentation's own
    record when its segmentation.json is beside the mask."""
    segmentation = {
        "volume_ml": measure.volume_ml(mask),
        "max_diameter_mm": measure.max_diameter_mm(mask),
        "largest_slice_index": measure.largest_slice_index(mask),
    }
    if inputs.segmentation_summary:
        auto = inputs.segmentation_summary
        segmentation["confidence"] = auto.get("confidence")
        segmentation["flagged_slices"] = auto.get("flagged_slices", [])
        segmentation["automatic_model"] = (auto.get("model") or {}).get("label") if isinstance(auto.get("model"), dict) else auto.get("model")
        ood = auto.get("ood")
        if isinstance(ood, dict) and ood.get("available") and isinstance(ood.get("score"), int | float):
            # how unlike the segmentation network's training images the study is (above 1: unlike them)
            segmentation["ood_score"] = float(ood["score"])
            if ood.get("unusual"):
                warnings.append(ood_warning(ood.get("message"), float(ood["score"])))
    return segmentation


def staging_for(max_diameter: float, clinical: dict[str, Any], models: RiskModels, scores: Scores) -> dict[str, Any]:
    """Measured size class, node assessment and the stage-group model's prediction."""
    stage = scores.stage_group
    stage_probability = stage["probability"] if stage else None
    staging = staging_readout(
        max_diameter,
        clinical,
        stage_group_probability=stage_probability,
        stage_group_model=models.stage_group.label if models.stage_group else None,
        stage_group_cutoff=stage["cutoff"] if stage else 0.5,
    )
    if stage is not None and stage_probability is None:
        staging["predicted"] = {"stage_group_chemoradiotherapy_probability": None, "text": "; ".join(stage["unavailable"])}
    return staging


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
    progress = progress or no_progress
    seconds: dict[str, float] = {}
    start = time.perf_counter()

    progress(0.02, "checking inputs")
    checked = check_inputs(inputs)
    warnings = checked.warnings
    models = RiskModels.load(lnm_bundle, stage_bundle, use_stage, roles_present=set(inputs.images))
    clinical = clinical_for_models(inputs, checked, models)
    seconds["inputs"] = time.perf_counter() - start

    # ---- masks on each sequence's own grid; registration only when no transform is known
    t0 = time.perf_counter()
    roles = roles_for_models(inputs, models, warnings)
    progress(0.05, "registration onto the T2WI (for the sequences without a known transform)")
    transforms = resolve_transforms(inputs.images, roles, inputs.transforms)  # the one rule (registration.rule)
    if transforms.registered:
        seconds["registration"] = time.perf_counter() - t0
        t0 = time.perf_counter()
    masks = sequence_masks({r: inputs.images[r] for r in roles}, checked.mask, transforms.by_role, warnings=warnings)
    seconds["masks"] = time.perf_counter() - t0

    # ---- features the models use
    progress(0.25, "radiomics and deep features")
    t0 = time.perf_counter()
    features_by_model = compute_features(inputs, models.in_use, masks, warnings, device=device)
    seconds["features"] = time.perf_counter() - t0

    # ---- scores
    progress(0.8, "scores and nomogram")
    t0 = time.perf_counter()
    scores = score_models(models, features_by_model, clinical, inputs.center, warnings)
    seconds["scores"] = time.perf_counter() - t0

    segmentation = segmentation_readout(inputs, checked.mask, warnings)
    staging = staging_for(segmentation["max_diameter_mm"], clinical, models, scores)
    readout = build_readout(inputs, checked, models, clinical, masks, features_by_model, scores, segmentation, staging,
                            warnings, seconds)
    if out_dir is not None:
        progress(0.9, "writing the readout")
        write_readout(readout, scores, models, out_dir, overwrite=overwrite, seconds=seconds, start=start)
    else:
        seconds["total"] = time.perf_counter() - start
    progress(1.0, "readout done")
    return readout


def build_readout(inputs: ReadoutInputs, checked: CheckedInputs, models: RiskModels, clinical: dict[str, Any],
                  masks: dict[str, SequenceMask], features_by_model: list[dict[str, float]], scores: Scores,
                  segmentation: dict[str, Any], staging: dict[str, Any], warnings: list[str],
                  seconds: dict[str, float]) -> dict[str, Any]:
    """readout.json's content (docs/readout.md)."""
    lnm, stage, lnm_model, stage_model = scores.lnm, scores.stage_group, models.lnm, models.stage_group
    radiomics_values = {k: v for k, v in features_by_model[0].items() if not is_deep(k)}
    deep_values = {k: v for k, v in features_by_model[0].items() if is_deep(k)}
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
        "review": checked.review,
        "segmentation": segmentation,
        "features": {
            # the LNM model's inputs; every model's own inputs (own settings/encoder) under by_model
            "radiomics": radiomics_values,
            "deep": deep_values,
            "harmonised": {name: item["harmonised"] for name, item in lnm["features"].items()},
            "by_model": {m.label: values for m, values in zip(models.in_use, features_by_model)},
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
            "model_note": models.lnm_note,
            "validated": validated_rows(lnm_model.manifest),
            "scores": lnm["scores"],
            "harmonisation": lnm["harmonisation"],
        },
        "stage_group": stage,
        "staging": staging,
        "models": {
            "lnm": lnm_model.bundle.summary() if lnm_model.bundle else {"label": lnm_model.label},
            "stage_group": stage_model.bundle.summary() if stage_model and stage_model.bundle else None,
            "encoders": [e for m in models.in_use for e in m.encoders],
        },
        "warnings": warnings,
        "seconds": seconds,
        "statement": RESEARCH_USE_STATEMENT,
    }
    if lnm["nomogram"] is not None:
        readout["nomogram"] = {**lnm["nomogram"], "image": NOMOGRAM_IMAGE}
    return readout


def write_readout(readout: dict[str, Any], scores: Scores, models: RiskModels, out_dir: str | Path, *,
                  overwrite: bool = False, seconds: dict[str, float] | None = None, start: float | None = None) -> Path:
    """readout.json and nomogram.png/svg into `out_dir`, atomically; `seconds` (the readout's own) gets
    the writing and total times (`start`: when the readout began)."""
    lnm = scores.lnm
    seconds = seconds if seconds is not None else {}
    t0 = time.perf_counter()
    with atomic.atomic_directory(out_dir, overwrite=overwrite, owned=OUTPUT_FILES) as tmp:
        if lnm["nomogram"] is not None:
            # no case id in the picture: a PNG cannot be searched and scrubbed like a text (report --pseudonym)
            title = f"{lnm['outcome_label']} {100 * lnm['probability']:.0f}%"
            for suffix in ("png", "svg"):
                render_nomogram(models.lnm.nomogram, tmp / f"nomogram.{suffix}", patient=lnm["nomogram"]["values"], title=title)
        seconds["writing"] = time.perf_counter() - t0
        seconds["total"] = time.perf_counter() - (start if start is not None else t0)
        (tmp / READOUT_FILE).write_text(atomic.to_json(Readout.from_dict(readout).to_dict()), encoding="utf-8")
    return Path(out_dir)


def _sha_or_none(path: Path | None) -> str | None:
    return sha256_file(path) if path is not None and Path(path).is_file() else None
