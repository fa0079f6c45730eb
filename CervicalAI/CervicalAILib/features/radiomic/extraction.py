"""Radiomics extraction per sequence with pyradiomics: full, or driven by a model's feature list.

Both modes run the same steps as pyradiomics' `RadiomicsFeatureExtractor.execute`, built from
pyradiomics' own functions, in the same order and with the same settings:

    load (normalise, resample / crop to the mask's bounding box) -> check the mask -> shape
    -> for each enabled image type: filter -> crop to the mask -> feature classes

The full extraction computes every feature the settings enable and agrees with pyradiomics'
`execute` on the same input (to ~1e-12 relative: the image is cropped before resampling, see
`_load_image`; a test checks it). The model-driven extraction computes only the
image types, LoG sigmas, filtered images (e.g. one wavelet sub-band out of eight) and feature
classes that the requested names need, and enables only the requested features in each class.
Because every value comes from the same pyradiomics call on the same filtered image, the values
are identical (==) to the full extraction's; a test checks that too.

Filters that produce several images at once (the 8 wavelet sub-bands, the LBP3D levels and
kurtosis map) are run whole, since pyradiomics computes them in one pass; the savings come from
skipping the texture matrices of the images and classes nobody asked for.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from CervicalAILib.contracts.feature_names import RadiomicName, radiomic_name
from CervicalAILib.core.errors import InputError
from CervicalAILib.core.progress import ProgressCallback, no_progress, sub_progress
from CervicalAILib.features.radiomic.lbp3d import lbp3d_images
from CervicalAILib.features.radiomic.names import (
    SHAPE_CLASSES,
    image_names,
    image_type_key,
    log_image_name,
    parse_feature_name,
)
from CervicalAILib.features.radiomic.settings import (
    default_settings_path,
    load_settings,
    settings_sha256,
    validate_settings,
)
from CervicalAILib.io.case import ROLES
from CervicalAILib.io.geometry import label_fraction_inside, resample_to_reference, same_grid

logger = logging.getLogger(__name__)

# Fewer voxels than this (after resampling) leave texture matrices with a handful of entries:
# refuse rather than report numbers that mean nothing.
MIN_ROI_VOXELS = 10
# Voxels of image kept beyond the region pyradiomics resamples: the cubic B-spline prefilter's
# influence falls by 0.268 per voxel, to below double precision (~1e-16) after 28 voxels.
_BSPLINE_MARGIN = 28
# ADC in 1e-6 mm2/s is ~300-3000 inside a tumour; values this small mean 1e-3 mm2/s (or s/mm2).
ADC_UNIT_THRESHOLD = 20.0


@dataclass
class RadiomicsResult:
    """Feature values (plain floats, prefixed names), provenance for the readout, and warnings."""

    features: dict[str, float]
    provenance: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class _RolePlan:
    """What to compute for one sequence: shape features and, per image name, features per class.

    A feature list of None means "all that the settings enable" (pyradiomics' own default).
    """

    shape: dict[str, list[str] | None] = field(default_factory=dict)  # class ("shape") -> features
    images: dict[str, dict[str, list[str] | None]] = field(
        default_factory=dict
    )  # image name -> class -> features


def extract_features(
    images: Mapping[str, sitk.Image],
    mask: sitk.Image,
    settings: Mapping[str, dict | str | Path] | None = None,
    features: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, float]:
    """Radiomics features of the tumour `mask` on each sequence in `images` ({role: image}).

    `settings` maps a role to pyradiomics parameters (a dict, or the path of a YAML file);
    None uses the shipped defaults (`load_settings(role)`). With `features=None` every feature
    the settings enable is extracted for every role in `images`; with a list of prefixed names
    (e.g. a model's selected features) only those are computed and returned, in that order, with
    values identical to the full extraction's. See `extract` for provenance and warnings.
    """
    return extract(images, mask, settings=settings, features=features, progress=progress).features


def extract(
    images: Mapping[str, sitk.Image],
    mask: sitk.Image,
    settings: Mapping[str, dict | str | Path] | None = None,
    features: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
) -> RadiomicsResult:
    """Like `extract_features`, returning a RadiomicsResult with provenance and warnings too.

    The mask should be on each image's grid (label value 1). A mask on another grid that overlaps
    the image is resampled with nearest neighbour and a warning; one that lies (partly) outside
    the image is refused. Bad input raises InputError naming the sequence and the problem.
    """
    progress = progress or no_progress
    images = _check_images(images)
    if not isinstance(mask, sitk.Image):
        raise InputError(f"the tumour mask must be a SimpleITK image, got {type(mask).__name__}")

    if features is None:
        roles = [role for role in ROLES if role in images]
        requested: list[RadiomicName] | None = None
    else:
        requested = _parse_requested(features)
        roles = [role for role in ROLES if any(name.role == role for name in requested)]
        missing = [role for role in roles if role not in images]
        if missing:
            needing = [str(name) for name in requested if name.role in missing]
            raise InputError(
                f"the requested radiomics features need the {', '.join(missing)} image(s), which this case lacks "
                f"(case has: {', '.join(images) or 'none'}); e.g. {needing[0]}"
            )

    for role in roles:
        _check_finite(role, images[role])
    params_by_role = {role: _role_settings(role, settings) for role in roles}
    plans = {}
    for role in roles:
        params, _ = params_by_role[role]
        if requested is None:
            plans[role] = _full_plan(params)
        else:
            plans[role] = _model_plan(role, params, [name for name in requested if name.role == role])

    result = RadiomicsResult(features={}, provenance=_base_provenance(requested is None))
    for index, role in enumerate(roles):
        params, source = params_by_role[role]
        role_progress = sub_progress(progress, index / len(roles), (index + 1) / len(roles))
        values, role_provenance, role_warnings = _extract_role(
            role, images[role], mask, params, plans[role], role_progress
        )
        role_provenance["settings_source"] = source
        role_provenance["settings_sha256"] = settings_sha256(params)
        result.provenance["roles"][role] = role_provenance
        result.warnings.extend(role_warnings)
        result.features.update({radiomic_name(role, name): value for name, value in values.items()})
    progress(1.0, "radiomics done")

    if requested is not None:
        absent = [str(name) for name in requested if str(name) not in result.features]
        if absent:
            raise InputError(
                "pyradiomics could not compute the requested feature(s) "
                f"{', '.join(absent)} for this case (see warnings: {'; '.join(result.warnings) or 'none'})"
            )
        result.features = {str(name): result.features[str(name)] for name in requested}

    nan_names = [name for name, value in result.features.items() if not np.isfinite(value)]
    if nan_names:
        shown = ", ".join(nan_names[:5]) + (f" and {len(nan_names) - 5} more" if len(nan_names) > 5 else "")
        result.warnings.append(
            f"pyradiomics returned NaN/infinite values for {len(nan_names)} feature(s): {shown}"
        )
    for message in result.warnings:
        logger.warning(message)
    return result


# ----------------------------------------------------------------------------------------------
# input checks


def _check_images(images: Any) -> dict[str, sitk.Image]:
    if not isinstance(images, Mapping) or not images:
        raise InputError(
            "radiomics needs at least one image: a mapping {role: SimpleITK image}, e.g. {'T2W': image}"
        )
    checked = {}
    for role, image in images.items():
        if role not in ROLES:
            raise InputError(f"unknown sequence role {role!r} for radiomics (known: {', '.join(ROLES)})")
        if not isinstance(image, sitk.Image):
            raise InputError(f"the {role} image must be a SimpleITK image, got {type(image).__name__}")
        if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
            raise InputError(
                f"the {role} image must be a 3D scalar volume, got {image.GetDimension()}D with "
                f"{image.GetNumberOfComponentsPerPixel()} component(s) per voxel"
            )
        checked[role] = image
    return checked


def _check_finite(role: str, image: sitk.Image) -> None:
    """Refuse NaN/inf anywhere in the image: normalisation and filters would spread them over every voxel."""
    array = sitk.GetArrayViewFromImage(image)
    if np.issubdtype(array.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(array)))
        if bad:
            raise InputError(
                f"the {role} image contains {bad} NaN or infinite voxel(s); radiomics (normalisation, filters, "
                "texture) cannot be computed on it. Repair the image (e.g. set those voxels to 0) and retry"
            )


def _parse_requested(features: Sequence[str]) -> list[RadiomicName]:
    if isinstance(features, str) or not isinstance(features, Sequence):
        raise InputError(
            "features must be a list of radiomics feature names (or None for the full extraction)"
        )
    if len(features) == 0:
        raise InputError("features is an empty list: give the feature names to compute, or None for all")
    parsed = [parse_feature_name(name) for name in features]
    seen: set[str] = set()
    duplicates = [str(name) for name in parsed if str(name) in seen or seen.add(str(name))]
    if duplicates:
        raise InputError(f"radiomics feature(s) requested twice: {', '.join(duplicates)}")
    return parsed


def _role_settings(role: str, settings: Mapping[str, Any] | None) -> tuple[dict[str, Any], str]:
    """(pyradiomics parameters, where they came from) for one role."""
    if settings is None:
        return load_settings(role), f"default:{default_settings_path(role).name}"
    if not isinstance(settings, Mapping):
        raise InputError("settings must map a sequence role to pyradiomics parameters (dict or YAML path)")
    if role not in settings:
        raise InputError(
            f"no radiomics settings given for the {role} image (settings given for: {', '.join(settings) or 'none'})"
        )
    value = settings[role]
    if isinstance(value, (str, Path)):
        return load_settings(role, value), str(value)
    validate_settings(value, where=f"{role} radiomics settings")
    return copy.deepcopy(dict(value)), "given"


def _prepare_mask(
    role: str, image: sitk.Image, mask: sitk.Image, label: int
) -> tuple[sitk.Image, list[str], bool]:
    """The mask as an integer label map on the image's grid; (mask, warnings, resampled?)."""
    if mask.GetDimension() != 3 or mask.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"the tumour mask must be a 3D scalar label map, got {mask.GetDimension()}D with "
            f"{mask.GetNumberOfComponentsPerPixel()} component(s) per voxel"
        )
    array = sitk.GetArrayViewFromImage(mask)
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise InputError(
                "the tumour mask must be a label map of whole numbers; found fractional or NaN values"
            )
    if np.any(array < 0):
        raise InputError(
            "the tumour mask contains negative values; expected a label map (0 = background, 1 = tumour)"
        )
    _check_roi_size(np.count_nonzero(array == label), array, label, "")

    messages: list[str] = []
    resampled = False
    if not same_grid(image, mask):
        fraction = label_fraction_inside(mask, image, label)
        if fraction == 0.0:
            raise InputError(
                f"the tumour mask lies entirely outside the {role} image (mask and image do not overlap in space); "
                "check that the mask belongs to this case and sequence"
            )
        if fraction < 0.999:
            raise InputError(
                f"{100 * (1 - fraction):.1f}% of the tumour mask lies outside the {role} image; features would "
                "describe a truncated tumour. Use a mask that lies within the image"
            )
        messages.append(
            f"the tumour mask is not on the {role} image grid (size/spacing/origin/direction differ); "
            "it was resampled onto that grid with nearest neighbour"
        )
        mask = resample_to_reference(
            mask, image, interpolator=sitk.sitkNearestNeighbor, pixel_type=sitk.sitkUInt32
        )
        resampled = True
        array = sitk.GetArrayViewFromImage(mask)
        _check_roi_size(
            np.count_nonzero(array == label), array, label, f" after resampling onto the {role} grid"
        )
    else:
        # same grid within tolerance: take the image's exact geometry so pyradiomics' strict checks agree
        mask = sitk.Cast(mask, sitk.sitkUInt32)
        mask.CopyInformation(image)
    return mask, messages, resampled


def _check_roi_size(count: int, array: np.ndarray, label: int, when: str) -> None:
    if count == 0:
        others = [int(v) for v in np.unique(array) if v not in (0, label)]
        if others:
            raise InputError(
                f"the tumour mask{when} has no voxel with label {label} (labels present: {others[:10]}); "
                f"radiomics uses label {label} for the tumour"
            )
        raise InputError(f"the tumour mask{when} is empty (no voxel with label {label}); nothing to extract")
    if count == 1:
        raise InputError(
            f"the tumour mask{when} has a single voxel; pyradiomics cannot compute shape or texture on one voxel "
            f"(at least {MIN_ROI_VOXELS} voxels are needed)"
        )


# ----------------------------------------------------------------------------------------------
# planning


def _feature_classes() -> dict:
    from radiomics import getFeatureClasses  # pyradiomics

    return getFeatureClasses()


def _class_lists(params: dict[str, Any]) -> dict[str, list[str] | None]:
    """featureClass section as {class: explicit feature list, or None for all non-deprecated}."""
    return {name: (list(features) if features else None) for name, features in params["featureClass"].items()}


def _type_args(params: dict[str, Any], image_type: str) -> dict[str, Any]:
    """Effective settings for an image type, as pyradiomics builds them (global + custom)."""
    from radiomics import featureextractor  # pyradiomics

    args = featureextractor.RadiomicsFeatureExtractor._getDefaultSettings()
    args.update(params.get("setting") or {})
    args.update(params.get("voxelSetting") or {})
    args.update(params["imageType"].get(image_type) or {})
    return args


def _full_plan(params: dict[str, Any]) -> _RolePlan:
    plan = _RolePlan()
    classes = _class_lists(params)
    plan.shape = {name: features for name, features in classes.items() if name in SHAPE_CLASSES}
    texture = {name: features for name, features in classes.items() if name not in SHAPE_CLASSES}
    for image_type in params["imageType"]:
        for name in image_names(image_type, _type_args(params, image_type)):
            plan.images[name] = dict(texture)
    return plan


def _model_plan(role: str, params: dict[str, Any], requested: list[RadiomicName]) -> _RolePlan:
    plan = _RolePlan()
    classes = _class_lists(params)
    feature_classes = _feature_classes()
    for name in requested:
        image_type = image_type_key(name.image_type)
        if image_type not in params["imageType"]:
            raise InputError(
                f"radiomics feature {name}: the {role} settings do not enable the {image_type} image type "
                f"(enabled: {', '.join(params['imageType'])})"
            )
        produced = image_names(image_type, _type_args(params, image_type))
        if name.image_type not in produced:
            raise InputError(
                f"radiomics feature {name}: the {role} settings do not produce the image {name.image_type!r} "
                f"({image_type} gives: {', '.join(produced)})"
            )
        if name.feature_class not in classes:
            raise InputError(
                f"radiomics feature {name}: the {role} settings do not enable the {name.feature_class} feature class "
                f"(enabled: {', '.join(classes)})"
            )
        enabled = classes[name.feature_class]
        if enabled is None:
            deprecated = feature_classes[name.feature_class].getFeatureNames().get(name.feature, False)
            if deprecated:
                raise InputError(
                    f"radiomics feature {name}: {name.feature} is deprecated in pyradiomics and not part of the "
                    "full extraction; list it explicitly in the settings' featureClass section to use it"
                )
        elif name.feature not in enabled:
            raise InputError(
                f"radiomics feature {name}: not enabled by the {role} settings ({name.feature_class}: {enabled})"
            )
        if name.feature_class in SHAPE_CLASSES:
            plan.shape.setdefault(name.feature_class, []).append(name.feature)
        else:
            plan.images.setdefault(name.image_type, {}).setdefault(name.feature_class, []).append(
                name.feature
            )
    return plan


# ----------------------------------------------------------------------------------------------
# extraction of one sequence


# pyradiomics warnings that say nothing about the case (it repeats this one for every GLCM).
_BENIGN_PYRADIOMICS_MESSAGES = ("GLCM is symmetrical, therefore Sum Average = 2 * Joint Average",)


class _WarningCollector(logging.Handler):
    """Collects pyradiomics' own warnings and errors (e.g. a LoG sigma skipped) once each, for the result."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message not in self.messages and not message.startswith(_BENIGN_PYRADIOMICS_MESSAGES):
            self.messages.append(message)


@contextlib.contextmanager
def _pyradiomics_messages_collected() -> Iterator[_WarningCollector]:
    """Route pyradiomics' warnings into a collector instead of its own stderr handler, for one call."""
    import radiomics  # pyradiomics

    collector = _WarningCollector()
    radiomics_logger = logging.getLogger("radiomics")
    stderr_handler = getattr(radiomics, "handler", None)  # pyradiomics prints warnings to stderr itself
    previous_level = stderr_handler.level if stderr_handler is not None else None
    # pyradiomics sets its logger to DEBUG on import, so its INFO lines (one per filter and feature
    # class) would reach the application's handlers; only a --verbose (DEBUG) run wants them
    previous_logger_level = radiomics_logger.level
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        radiomics_logger.setLevel(logging.WARNING)
    radiomics_logger.addHandler(collector)
    if stderr_handler is not None:
        stderr_handler.setLevel(logging.CRITICAL + 1)
    try:
        yield collector
    finally:
        radiomics_logger.removeHandler(collector)
        radiomics_logger.setLevel(previous_logger_level)
        if stderr_handler is not None:
            stderr_handler.setLevel(previous_level)


def _extract_role(
    role: str,
    image: sitk.Image,
    mask: sitk.Image,
    params: dict[str, Any],
    plan: _RolePlan,
    progress: ProgressCallback,
) -> tuple[dict[str, float], dict[str, Any], list[str]]:
    from radiomics import featureextractor, imageoperations  # pyradiomics

    started = time.perf_counter()
    progress(0.0, f"radiomics {role}: preparing image and mask")
    settings = {
        **featureextractor.RadiomicsFeatureExtractor._getDefaultSettings(),
        **(params.get("setting") or {}),
        **(params.get("voxelSetting") or {}),
    }
    settings["additionalInfo"] = False
    label = int(settings.get("label", 1))

    mask, messages, mask_resampled = _prepare_mask(role, image, mask, label)
    roi_voxels = int(np.count_nonzero(sitk.GetArrayViewFromImage(mask) == label))
    if role == "ADC":
        messages.extend(_check_adc_units(image, mask, label))

    values: dict[str, float] = {}
    computed_images: list[str] = []
    with _pyradiomics_messages_collected() as collector:
        with warnings.catch_warnings():
            # pyradiomics uses numpy/scipy functions those libraries have deprecated; not the user's concern
            warnings.simplefilter("ignore", DeprecationWarning)
            # The settings are already validated: an extractor without parameters skips pyradiomics'
            # (slow) re-validation; only its computeShape (with our feature lists) is used.
            extractor = featureextractor.RadiomicsFeatureExtractor()
            if settings.get("geometryTolerance") is not None:  # what the extractor would set from params
                sitk.ProcessObject.SetGlobalDefaultCoordinateTolerance(settings["geometryTolerance"])
                sitk.ProcessObject.SetGlobalDefaultDirectionTolerance(settings["geometryTolerance"])
            try:
                image_p, mask_p, read_size = _load_image(image, mask, settings)
                bounding_box, corrected = imageoperations.checkMask(image_p, mask_p, **settings)
            except ValueError as exc:
                raise InputError(f"pyradiomics refused the tumour mask on the {role} image: {exc}") from exc
            if corrected is not None:
                mask_p = corrected
            resampled_voxels = int(np.count_nonzero(sitk.GetArrayViewFromImage(mask_p) == label))
            if resampled_voxels < MIN_ROI_VOXELS:
                raise InputError(
                    f"the tumour mask has {resampled_voxels} voxel(s) on the {role} radiomics grid (spacing "
                    f"{_rounded(image_p.GetSpacing())} mm); at least {MIN_ROI_VOXELS} are needed for meaningful "
                    "shape and texture features"
                )
            if settings.get("resegmentRange") is not None:
                try:
                    resegmented = imageoperations.resegmentMask(image_p, mask_p, **settings)
                    bounding_box, _ = imageoperations.checkMask(image_p, resegmented, **settings)
                except ValueError as exc:
                    raise InputError(
                        f"pyradiomics resegmentation of the {role} tumour mask failed: {exc}"
                    ) from exc
                if settings.get("resegmentShape", False):
                    mask_p = resegmented
            else:
                resegmented = None

            if plan.shape:
                extractor.enabledFeatures = dict(plan.shape)
                values.update(_as_floats(extractor.computeShape(image_p, mask_p, bounding_box, **settings)))
            if resegmented is not None:
                mask_p = resegmented

            total = max(1, len(plan.images))
            for image_type, custom in params["imageType"].items():
                args = {**settings, **(custom or {})}
                wanted = [name for name in image_names(image_type, args) if name in plan.images]
                if not wanted:
                    continue
                if image_type == "LoG":  # each sigma is its own filter run: only run the needed ones
                    args["sigma"] = [s for s in args.get("sigma", []) if log_image_name(s) in wanted]
                generator = _image_filter(image_type)(image_p, mask_p, **args)
                for filtered, image_name, kwargs in generator:
                    if image_name not in plan.images:
                        continue
                    progress(len(computed_images) / total, f"radiomics {role}: {image_name}")
                    cropped_image, cropped_mask = imageoperations.cropToTumorMask(
                        filtered, mask_p, bounding_box, padDistance=0
                    )
                    values.update(
                        _compute_classes(
                            cropped_image, cropped_mask, image_name, plan.images[image_name], kwargs
                        )
                    )
                    computed_images.append(image_name)

    messages.extend(f"pyradiomics ({role}): {message}" for message in collector.messages)
    provenance = {
        "image_size": list(image.GetSize()),
        "image_spacing": _rounded(image.GetSpacing()),
        "image_cropped_to": read_size,  # the part of the image read (the rest only enters normalisation)
        "radiomics_spacing": _rounded(image_p.GetSpacing()),
        "mask_resampled_to_image_grid": mask_resampled,
        "roi_voxels": roi_voxels,
        "roi_voxels_radiomics_grid": resampled_voxels,
        "images": computed_images,
        "n_features": len(values),
        "seconds": round(time.perf_counter() - started, 3),
    }
    progress(1.0, f"radiomics {role}: {len(values)} features")
    return values, provenance, messages


def _image_filter(image_type: str):
    """pyradiomics' filter function of an image type (`get<Type>Image`); LBP3D from `lbp3d`, which
    gives pyradiomics' values on every scipy (pyradiomics' own yields nothing on scipy 1.17)."""
    from radiomics import imageoperations  # pyradiomics

    return lbp3d_images if image_type == "LBP3D" else getattr(imageoperations, f"get{image_type}Image")


def _load_image(
    image: sitk.Image, mask: sitk.Image, settings: dict[str, Any]
) -> tuple[sitk.Image, sitk.Image, list[int]]:
    """pyradiomics' `loadImage` (normalise, then resample or pre-crop), done on less of the image.

    Same functions, same order as pyradiomics, without its three whole-image costs that
    dominate a model-driven extraction on a large T2WI:
    - normalisation: the mean and standard deviation come from the whole image (pyradiomics'
      semantics) but the shift and scale are applied only where the extraction reads;
    - B-spline resampling: pyradiomics resamples only the mask's bounding box (+ padDistance),
      on a grid defined by the mask (kept whole here, so the grid is pyradiomics' own), but its
      interpolator first prefilters the whole image. The image is cropped with _BSPLINE_MARGIN
      voxels beyond the sampled region, where the prefilter's boundary effect has decayed below
      double precision;
    - the mask's label check (`getMask`): done already by `_prepare_mask`.
    `mask` is a UInt32 label map on the image's grid. An image that is not normalised is cast to
    32-bit float: pyradiomics' B-spline resampling keeps the input pixel type, which would
    truncate (and for unsigned types wrap) interpolated integer intensities.

    The values agree with pyradiomics' own `execute()` on the float image to ~1e-12 relative,
    not bit for bit: with the image's origin moved by the crop, the grid's continuous indices
    round differently in the last bit (a test checks the agreement). Full and model-driven
    extractions crop identically, so they are identical to each other bit for bit.
    """
    from radiomics import imageoperations  # pyradiomics

    resample = settings.get("interpolator") is not None and settings.get("resampledPixelSpacing") is not None
    region = _read_region(image, mask, settings) if resample else None
    if settings.get("normalize", False):
        image = _normalise(image, region, settings)
    else:
        if region is not None:
            image = sitk.RegionOfInterest(image, *region)
        if image.GetPixelID() not in (sitk.sitkFloat32, sitk.sitkFloat64):
            image = sitk.Cast(image, sitk.sitkFloat32)
    read_size = list(image.GetSize())
    if resample:
        return (*imageoperations.resampleImage(image, mask, **settings), read_size)
    if settings.get("preCrop", False):
        bounding_box, corrected = imageoperations.checkMask(image, mask, **settings)
        if corrected is not None:
            mask = corrected
        return (*imageoperations.cropToTumorMask(image, mask, bounding_box, **settings), read_size)
    return image, mask, read_size


def _read_region(
    image: sitk.Image, mask: sitk.Image, settings: dict[str, Any]
) -> tuple[list[int], list[int]]:
    """(size, index) of the part of the image that resampling the tumour's bounding box reads."""
    inside = sitk.GetArrayViewFromImage(mask) == int(settings.get("label", 1))
    lower, upper = np.zeros(3, int), np.zeros(3, int)
    for axis, numpy_axis in enumerate((2, 1, 0)):  # (i, j, k) bounds of the tumour from the (z, y, x) array
        present = np.flatnonzero(inside.any(axis=tuple(a for a in range(3) if a != numpy_axis)))
        lower[axis], upper[axis] = present[0], present[-1]
    spacing = np.asarray(image.GetSpacing(), dtype=float)
    target = np.asarray(settings["resampledPixelSpacing"], dtype=float)
    target = np.where(target == 0, spacing, target)
    pad_mm = (int(settings.get("padDistance", 5)) + 2) * target  # pyradiomics' padding, a new voxel to spare
    margin = np.ceil(pad_mm / spacing).astype(int) + _BSPLINE_MARGIN
    start = np.maximum(lower - margin, 0)
    stop = np.minimum(upper + margin + 1, np.asarray(image.GetSize()))
    return [int(v) for v in stop - start], [int(v) for v in start]


def _normalise(
    image: sitk.Image, region: tuple[list[int], list[int]] | None, settings: dict[str, Any]
) -> sitk.Image:
    """pyradiomics' `normalizeImage` (sitk.Normalize, optional outlier clip, scale) on `region` only.

    sitk.Normalize is a StatisticsImageFilter over the whole image followed by a ShiftScale with
    shift -mean and scale 1/sigma into a double image; here the statistics are the same and the
    shift-scale runs on the region (same arithmetic, same double output).
    """
    statistics = sitk.StatisticsImageFilter()
    statistics.Execute(image)
    if region is not None:
        image = sitk.RegionOfInterest(image, *region)
    image = sitk.ShiftScale(
        sitk.Cast(image, sitk.sitkFloat64), -statistics.GetMean(), 1.0 / statistics.GetSigma()
    )
    outliers = settings.get("removeOutliers")
    if outliers is not None:  # as pyradiomics: clip at +-outliers standard deviations, before the scale
        array = sitk.GetArrayFromImage(image)
        array[array > outliers] = outliers
        array[array < -outliers] = -outliers
        clipped = sitk.GetImageFromArray(array)
        clipped.CopyInformation(image)
        image = clipped
    image *= settings.get("normalizeScale", 1)
    return image


def _compute_classes(
    image: sitk.Image, mask: sitk.Image, image_name: str, classes: dict[str, list[str] | None], kwargs: dict
) -> dict[str, float]:
    """pyradiomics' computeFeatures for one filtered image, with a feature list per class."""
    feature_classes = _feature_classes()
    values: dict[str, float] = {}
    for class_name, feature_list in classes.items():
        calculator = feature_classes[class_name](image, mask, **kwargs)
        for feature in feature_list or []:
            calculator.enableFeatureByName(feature)
        for feature, value in calculator.execute().items():
            values[f"{image_name}_{class_name}_{feature}"] = float(value)
    return values


def _as_floats(values: Mapping[str, Any]) -> dict[str, float]:
    return {name: float(value) for name, value in values.items()}


def _rounded(values: Sequence[float]) -> list[float]:
    return [round(float(v), 4) for v in values]


def _check_adc_units(image: sitk.Image, mask: sitk.Image, label: int) -> list[str]:
    inside = sitk.GetArrayViewFromImage(image)[sitk.GetArrayViewFromImage(mask) == label]
    if inside.size and float(np.percentile(inside, 95)) < ADC_UNIT_THRESHOLD:
        return [
            f"ADC values in the tumour are tiny (95th percentile {float(np.percentile(inside, 95)):.4g}); the ADC looks "
            "like 1e-3 mm2/s while the radiomics settings expect 1e-6 mm2/s (multiply by 1000), so bin widths and "
            "texture features will be wrong"
        ]
    return []


def _base_provenance(full: bool) -> dict[str, Any]:
    import radiomics  # pyradiomics

    return {
        "extractor": "pyradiomics",
        "pyradiomics_version": str(radiomics.__version__),
        "mode": "full" if full else "model-driven",
        "roles": {},
    }
