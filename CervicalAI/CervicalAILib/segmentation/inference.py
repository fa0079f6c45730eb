"""Tumour segmentation at run time: ONNX network + onnxruntime, no torch.

`segment_case(images)` takes the co-registered sequences (SimpleITK images in the T2WI's
physical space, normally on the T2WI grid), prepares them exactly as the bundle declares,
runs the network in overlapping patches with Gaussian blending, once on the image and once on
its left-right mirror (test-time augmentation), maps the probabilities back onto the T2WI grid,
turns the anatomical outputs (when the network has them; from the passes the bundle names) into organ masks
at the bundle's organ thresholds, applies the anatomy
gate (`anatomy.py`), post-processes the tumour into a mask, measures it, and scores how unlike
the training images the study is (`ood.py`, when the bundle has an OOD description). Every
stage is timed. A site's own nnU-Net model runs through `nnunet.py` and the same finishing steps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from CervicalAILib.bundles.defaults import default_bundle_path
from CervicalAILib.bundles.format import Bundle, load_bundle, manifest_number
from CervicalAILib.bundles.onnx import make_session
from CervicalAILib.contracts.label_table import TUMOR, canonical_name
from CervicalAILib.core.errors import BundleError, InputError
from CervicalAILib.core.progress import ProgressCallback, no_progress, sub_progress
from CervicalAILib.io.geometry import orientation_label, overlap_fraction, plane_tilt_deg, same_grid
from CervicalAILib.segmentation.anatomy import DEFAULT_ORGAN_MIN_ML, GateSettings, gate_available
from CervicalAILib.segmentation.finish import SegmentationResult, finish_segmentation, to_image
from CervicalAILib.segmentation.nnunet import segment_with_nnunet  # torch and nnunetv2 only inside it
from CervicalAILib.segmentation.ood import OodModel, not_available
from CervicalAILib.segmentation.preprocess import (
    check_preprocessing,
    foreground_mask,
    intensity_summary,
    prepare_inputs,
)
from CervicalAILib.segmentation.sliding_window import MIRRORED_PASSES_ZYX, fit_patch, sliding_window_predict

log = logging.getLogger(__name__)

# A sequence must cover at least this fraction of the T2WI body to be used.
MIN_SEQUENCE_COVERAGE = 0.3

# "original": the organs from the unmirrored pass; "mean": from the mean of it and the mirrored pass(es)
ORGAN_PASSES = ("original", "mean")

_SESSIONS: dict[tuple[str, str], SegmentationModel] = {}


class SegmentationModel:
    """A verified segmentation bundle with its onnxruntime session.

    `output_channels` maps each output's canonical name to its channel of the network's
    probability output: "tumor" (required; the contour the review, readout and exports use) and
    any anatomical structures ("cervix", "uterus", "bladder", ...). `ood` is the bundle's
    out-of-distribution description (None when it has none); `gate` the anatomy-gate settings
    (None when the network has no cervix/uterus output to check the tumour against).
    """

    def __init__(self, bundle: Bundle, device: str = "cpu"):
        if bundle.task != "segmentation":
            raise BundleError(f"{bundle.path}: bundle task is {bundle.task!r}, expected 'segmentation'")
        manifest = bundle.manifest
        for key in ("preprocessing", "network", "inference"):
            if key not in manifest:
                raise BundleError(f"{bundle.path}: segmentation bundle.json lacks {key!r}")
        self.bundle = bundle
        self.roles: list[str] = [entry["role"] for entry in manifest["inputs"]]
        if not self.roles or self.roles[0] != "T2W":
            raise BundleError(f"{bundle.path}: a segmentation bundle's first input must be T2W, found {self.roles}")
        self.output_channels = output_channels(manifest["outputs"], bundle.path)
        self.structures = [name for name in self.output_channels if name != TUMOR]
        self.preprocessing = manifest["preprocessing"]
        check_preprocessing(self.preprocessing, self.roles)
        self.inference = manifest["inference"]
        self.patch_size_zyx = [int(v) for v in self.inference["patch_size_xyz"]][::-1]
        # where the organ probabilities come from: the original pass ("original", bundles before 2.5.1) or the
        # mean of all passes ("mean"); the bundle's organ thresholds and gate volumes were set on that
        self.organ_passes = self.inference.get("organ_passes", "original")
        if self.organ_passes not in ORGAN_PASSES:
            raise BundleError(f"{bundle.path}: inference.organ_passes {self.organ_passes!r} is not one of "
                              f"{', '.join(ORGAN_PASSES)}")
        self.size_multiple_zyx = [int(v) for v in manifest["network"].get("size_multiple_xyz", [1, 1, 1])][::-1]
        if any(p % m for p, m in zip(self.patch_size_zyx, self.size_multiple_zyx, strict=True)):
            raise BundleError(f"{bundle.path}: inference patch size is not a multiple of the network's size multiple")
        self.postprocessing = manifest.get("postprocessing", {})
        # a voxel's organ needs this probability (one for all, or one per structure: the networks are
        # not equally confident of every organ); an organ smaller than organ_min_ml is not found
        self.organ_threshold = organ_thresholds(manifest, self.structures, bundle.path)
        self.organ_min_ml = manifest_number(manifest, "organ_min_ml", DEFAULT_ORGAN_MIN_ML, low=0.0, high=1000.0,
                                            what="a volume in mL (0 to 1000)", where=bundle.path, low_included=True)
        gate = GateSettings.from_manifest(manifest.get("anatomy_gate"), where=bundle.path)
        self.gate: GateSettings | None = gate if gate_available(self.structures, gate) else None
        self.ood: OodModel | None = None
        self.features_output: str | None = manifest["network"].get("features_output")
        if manifest.get("ood"):
            name = manifest["ood"].get("file", "ood.json")
            self.ood = OodModel.from_dict(bundle.read_json(name), f"{bundle.path / name}")
            if self.features_output not in (None, self.ood.output_name):
                raise BundleError(f"{bundle.path}: ood.json reads output {self.ood.output_name!r}, the network "
                                  f"declares {self.features_output!r}")
            self.features_output = self.ood.output_name
        onnx = make_session(bundle.file(manifest["network"]["file"]), device, what="segmentation network")
        self.session, self.provider, self.device_note = onnx.session, onnx.provider, onnx.device_note
        self.input_name = self.session.get_inputs()[0].name
        available = [output.name for output in self.session.get_outputs()]
        probability_name = manifest["network"].get("output_name") or available[0]
        wanted = [probability_name] + ([self.features_output] if self.features_output else [])
        missing = [name for name in wanted if name not in available]
        if missing:
            raise BundleError(f"{bundle.path}: the network has no output {', '.join(missing)} (it has {', '.join(available)})")
        self._outputs = wanted
        declared = self.session.get_outputs()[available.index(probability_name)].shape
        if len(declared) == 5 and isinstance(declared[1], int) and max(self.output_channels.values()) >= declared[1]:
            raise BundleError(f"{bundle.path}: bundle.json names output channels up to "
                              f"{max(self.output_channels.values())}, the network gives {declared[1]}")

    def predict_patch(self, patch: np.ndarray, features: list[np.ndarray] | None = None) -> np.ndarray:
        """Probabilities (1, K, z, y, x) of one patch; its bottleneck features appended to `features`."""
        results = self.session.run(self._outputs if features is not None else self._outputs[:1], {self.input_name: patch})
        if features is not None and len(results) > 1:
            features.append(np.asarray(results[1], dtype=np.float32).ravel())
        return results[0]

    def probabilities(
        self, volume: np.ndarray, flip_axes: tuple[int, ...] = (), progress=None, features: list | None = None
    ) -> np.ndarray:
        """Every output channel (K, z, y, x) on the working grid for one (optionally mirrored) pass."""
        if flip_axes:
            volume = np.ascontiguousarray(np.flip(volume, axis=tuple(a + 1 for a in flip_axes)))
        patch = fit_patch(self.patch_size_zyx, volume.shape[1:], self.size_multiple_zyx)
        output = sliding_window_predict(
            volume,
            lambda p: self.predict_patch(p, features),
            patch,
            overlap=float(self.inference.get("overlap", 0.25)),
            sigma_scale=float(self.inference.get("sigma_scale", 0.125)),
            progress=progress,
        )
        return np.flip(output, axis=tuple(a + 1 for a in flip_axes)) if flip_axes else output


def organ_thresholds(manifest: Mapping[str, Any], structures: list[str], where: Any) -> dict[str, float]:
    """Each structure's probability threshold from bundle.json's `organ_threshold`: a number for all
    (0.5 when absent) or an object naming every anatomical output, e.g. {"uterus": 0.3, "cervix": 0.45, ...}."""
    value = manifest.get("organ_threshold", 0.5)
    what = "a probability between 0 and 1"
    if not isinstance(value, Mapping):
        number = manifest_number(manifest, "organ_threshold", 0.5, low=0.0, high=1.0, what=what, where=where)
        return {name: number for name in structures}
    named = {canonical_name(str(name)): number for name, number in value.items()}
    unknown = sorted(set(named) - set(structures))
    missing = [name for name in structures if name not in named]
    if unknown or missing:
        raise BundleError(f"{where}: organ_threshold names {', '.join(unknown)}, which the network does not output"
                          if unknown else f"{where}: organ_threshold gives no threshold for {', '.join(missing)}")
    return {name: manifest_number(named, name, 0.5, low=0.0, high=1.0, what=what, where=where,
                                  name=f"organ_threshold of {name}") for name in structures}


def output_channels(outputs: Any, where: Any) -> dict[str, int]:
    """{canonical output name: channel} from a bundle's "outputs"; BundleError without a tumour output."""
    if isinstance(outputs, dict):
        outputs = [dict(entry, name=name) for name, entry in outputs.items()]
    channels: dict[str, int] = {}
    for index, entry in enumerate(outputs):
        name = canonical_name(entry.get("name", ""))
        if not name or name in channels:
            raise BundleError(f"{where}: bundle outputs need distinct names, found {entry.get('name')!r} twice or empty")
        channels[name] = int(entry.get("channel", index))
    if TUMOR not in channels:
        raise BundleError(f"{where}: a segmentation bundle needs an output named 'tumor', found {', '.join(channels)}")
    return channels


def load_model(bundle: Bundle | str | Path, device: str = "cpu") -> SegmentationModel:
    """Load (once per process) a segmentation bundle and its onnxruntime session."""
    if not isinstance(bundle, Bundle):
        bundle = load_bundle(bundle, task="segmentation")
    key = (str(Path(bundle.path).resolve()) + "|" + bundle.manifest["files"][bundle.manifest["network"]["file"]]["sha256"], device)
    if key not in _SESSIONS:
        _SESSIONS[key] = SegmentationModel(bundle, device)
    return _SESSIONS[key]


def _choose_model(
    images: Mapping[str, sitk.Image], bundle: Bundle | str | Path | None, device: str, warnings: list[str]
) -> tuple[SegmentationModel, str | None]:
    """The bundle to use and, when the T2WI-only fallback was taken, why."""
    if bundle is not None:
        model = load_model(bundle, device)
        missing = [role for role in model.roles if role not in images]
        if missing:
            raise InputError(
                f"model {model.bundle.label} needs {', '.join(model.roles)}; missing: {', '.join(missing)} "
                "(leave out --model to use the T2WI-only fallback automatically)"
            )
        return model, None
    model = load_model(default_bundle_path("segmentation"), device)
    missing = [role for role in model.roles if role not in images]
    if not missing:
        return model, None
    reason = (
        f"the multi-sequence model {model.bundle.label} needs {', '.join(model.roles)}; "
        f"missing {', '.join(missing)}: used the T2WI-only model instead"
    )
    log.warning(reason)
    warnings.append(reason)
    return load_model(default_bundle_path("segmentation-t2"), device), reason


def check_sequence_overlap(images: Mapping[str, sitk.Image], roles: list[str]) -> dict[str, float]:
    """Fraction of the T2WI body each other sequence covers; InputError below MIN_SEQUENCE_COVERAGE."""
    t2 = images["T2W"]
    body = foreground_mask(sitk.GetArrayViewFromImage(t2).astype(np.float32), 0.1, 99.0)
    coverage: dict[str, float] = {}
    for role in roles:
        if role == "T2W":
            continue
        image = images[role]
        if same_grid(image, t2):
            values = sitk.GetArrayViewFromImage(image)
            covered = float((values[body] != 0).mean()) if body.any() else 0.0
        else:
            covered = overlap_fraction(image, t2)
        coverage[role] = round(covered, 4)
        if covered < MIN_SEQUENCE_COVERAGE:
            raise InputError(
                f"the {role} image covers only {100 * covered:.0f}% of the T2WI field of view after registration "
                f"(at least {100 * MIN_SEQUENCE_COVERAGE:.0f}% needed): the sequences do not overlap - check the "
                "series assignment and the registration, or segment from the T2WI alone (--t2-only)"
            )
    return coverage


def range_warnings(images: Mapping[str, sitk.Image], roles: list[str], training_range: Mapping[str, Any]) -> list[str]:
    """Warnings for inputs outside the spacing, slice plane or intensity range the network was trained on."""
    warnings: list[str] = []
    if not training_range:
        return warnings
    factor = float(training_range.get("tolerance_factor", 1.5))
    spacing_range = training_range.get("t2w_spacing_mm")
    spacing = np.asarray(images["T2W"].GetSpacing(), dtype=float)
    if spacing_range:
        low, high = np.asarray(spacing_range["min"], float), np.asarray(spacing_range["max"], float)
        if np.any(spacing < low / factor) or np.any(spacing > high * factor):
            def text(values) -> str:
                return " x ".join(f"{float(v):.2f}" for v in values)

            warnings.append(
                f"T2W voxel spacing {text(spacing)} mm is far outside the training range "
                f"({text(low)} to {text(high)} mm): check the contour carefully"
            )
    tilt_range = training_range.get("t2w_tilt_deg")
    if tilt_range:  # e.g. a sagittal or coronal T2WI given where the network saw axial and oblique axial ones
        tilt, least, most = plane_tilt_deg(images["T2W"]), float(tilt_range["min"]), float(tilt_range["max"])
        if tilt > most + float(training_range.get("tilt_tolerance_deg", 10.0)):
            warnings.append(
                f"the T2W slice plane is {tilt:.0f} degrees from axial ({orientation_label(images['T2W'])}), beyond "
                f"the {least:.0f}-{most:.0f} degrees of the T2WIs the network was trained on: use the axial T2WI if "
                "the study has one, and check the contour carefully"
            )
    intensity_factor = float(training_range.get("intensity_tolerance_factor", 3.0))
    for role in roles:
        bounds = training_range.get("intensity_p99", {}).get(role)
        if not bounds:
            continue
        p99 = intensity_summary(images[role])["p99"]
        if p99 < bounds[0] / intensity_factor or p99 > bounds[1] * intensity_factor:
            warnings.append(
                f"{role} intensities (99th percentile {p99:.4g}) are far outside the training range "
                f"{bounds[0]:.4g}-{bounds[1]:.4g} (wrong units or an unusual scanner?): check the contour carefully"
            )
    return warnings


def lesion_box(probability: np.ndarray, patch_zyx: list[int], low: float = 0.1) -> tuple[slice, ...] | None:
    """Box around the voxels with probability >= `low`, grown by a quarter patch of context and
    to at least one patch per axis (within the volume); None when there are none."""
    hits = np.argwhere(probability >= low)
    if hits.size == 0:
        return None
    box = []
    for axis, (size, patch) in enumerate(zip(probability.shape, patch_zyx, strict=True)):
        start = int(hits[:, axis].min()) - patch // 4
        stop = int(hits[:, axis].max()) + 1 + patch // 4
        if stop - start < patch:  # grow symmetrically to one full patch of real image context
            extra = patch - (stop - start)
            start -= extra // 2
            stop += extra - extra // 2
        if start < 0:
            stop, start = stop - start, 0
        if stop > size:
            start, stop = max(start - (stop - size), 0), size
        box.append(slice(start, stop))
    return tuple(box)


def segment_case(
    images: Mapping[str, sitk.Image],
    bundle: Bundle | str | Path | None = None,
    device: str = "cpu",
    progress: ProgressCallback | None = None,
    nnunet_model: str | Path | None = None,
) -> SegmentationResult:
    """Segment the primary tumour (and the anatomy the network knows); outputs on the T2WI grid.

    `images` maps roles (T2W, ADC, DWI, CET1) to co-registered images. With `bundle=None`
    the default multi-sequence bundle is used, or the T2WI-only bundle when a sequence it needs
    is missing (said in `summary["warnings"]` and `summary["fallback"]`). `nnunet_model`: a
    site's own trained nnU-Net v2 model folder instead of a bundle (see `segmentation.nnunet`).
    """
    progress = progress or no_progress
    if "T2W" not in images:
        raise InputError(
            f"no T2W image among the inputs ({', '.join(images) or 'none'}): the tumour is segmented on the T2WI"
        )
    if nnunet_model is not None:
        if bundle is not None:
            raise InputError("give either a model bundle or an nnU-Net model folder, not both")
        return segment_with_nnunet(images, nnunet_model, device, progress)
    seconds: dict[str, float] = {}
    warnings: list[str] = []
    start = time.perf_counter()
    model, fallback = _choose_model(images, bundle, device, warnings)
    t2 = images["T2W"]
    coverage = check_sequence_overlap(images, model.roles)
    warnings += range_warnings(images, model.roles, model.bundle.manifest.get("training_range", {}))
    seconds["load_model"] = time.perf_counter() - start

    tick = time.perf_counter()
    progress(0.02, "preparing the sequences on the working grid")
    volume, grid = prepare_inputs(images, model.roles, model.preprocessing)
    seconds["preprocess"] = time.perf_counter() - tick

    tick = time.perf_counter()
    flips = [tuple(axes) for axes in model.inference.get("tta_flip_axes_zyx", MIRRORED_PASSES_ZYX)]
    features: list[np.ndarray] | None = [] if model.ood else None
    tumour_channel = model.output_channels[TUMOR]
    everything = model.probabilities(volume, (), sub_progress(progress, 0.05, 0.6), features)
    original = everything[tumour_channel]
    working_passes = [original]
    # the organs can be averaged over the passes too (the tumour's passes stay apart: their agreement is the
    # confidence); on 120 held-out cases, at 0.5, the default network's median Dice rose: uterus +0.011, vagina
    # +0.005, cervix +0.002
    organ_sum = everything.copy() if model.organ_passes == "mean" else None
    # the mirrored passes only need the lesion's neighbourhood: they run on a crop around it
    box = lesion_box(original, model.patch_size_zyx, low=0.1)
    for number, axes in enumerate(flips):
        step = sub_progress(progress, 0.6 + 0.25 * number / len(flips), 0.6 + 0.25 * (number + 1) / len(flips))
        if box is None:  # nothing suspicious: mirror the whole volume
            mirrored = model.probabilities(volume, axes, step)
            working_passes.append(mirrored[tumour_channel].copy())  # a copy: the other channels can go
            if organ_sum is not None:
                organ_sum += mirrored
            continue
        # outside the crop, the original pass stands in for the mirrored one (no full copy of every channel)
        crop = np.ascontiguousarray(volume[(slice(None), *box)])
        in_crop = model.probabilities(crop, axes, step)
        mirrored_tumour = original.copy()
        mirrored_tumour[box] = in_crop[tumour_channel]
        working_passes.append(mirrored_tumour)
        if organ_sum is not None:
            summed_in_crop = organ_sum[(slice(None), *box)] + in_crop
            organ_sum += everything
            organ_sum[(slice(None), *box)] = summed_in_crop
    organ_probabilities = everything if organ_sum is None else organ_sum / (len(flips) + 1)
    del organ_sum
    seconds["network"] = time.perf_counter() - tick

    tick = time.perf_counter()
    progress(0.88, "mapping the probabilities back onto the T2WI grid")
    passes = [_onto_t2(probability, grid, t2) for probability in working_passes]
    structures = {name: _onto_t2(organ_probabilities[channel], grid, t2)
                  for name, channel in model.output_channels.items() if name != TUMOR}
    del everything, organ_probabilities
    seconds["resample_to_t2"] = time.perf_counter() - tick

    ood = model.ood.report(features) if model.ood and features else not_available(
        f"the model bundle {model.bundle.label} has no out-of-distribution description (ood.json)")
    record = {
        "model": {
            "name": model.bundle.name,
            "version": model.bundle.version,
            "label": model.bundle.label,
            "path": str(model.bundle.path),
            "training_data": model.bundle.manifest["training_data"],
        },
        "device": {"requested": device, "provider": model.provider, "note": model.device_note},
        "sequences_used": list(model.roles),
        "sequences_available": [role for role in images],
        "fallback": fallback,
        "sequence_coverage": coverage,
    }
    return finish_segmentation(
        t2, passes, structures, record,
        postprocessing=model.postprocessing,
        organ_threshold=model.organ_threshold,
        organ_min_ml=model.organ_min_ml,
        flag_below=float(model.inference.get("flag_below", 0.75)),
        gate=model.gate,
        gate_missing=f"the model {model.bundle.label} has no cervix or uterus output to check the tumour against",
        ood=ood, warnings=warnings, seconds=seconds, start=start, progress=progress,
    )


def _onto_t2(probability: np.ndarray, grid: sitk.Image, t2: sitk.Image) -> np.ndarray:
    """A working-grid probability map resampled (linear) onto the T2WI grid, float32 (z, y, x)."""
    on_grid = to_image(np.ascontiguousarray(probability, dtype=np.float32), grid)
    resampled = sitk.Resample(on_grid, t2, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(resampled)
