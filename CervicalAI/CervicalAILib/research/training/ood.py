"""Building a bundle's out-of-distribution description (training side: onnx, scikit-learn).

1. `add_feature_output`: the exported ONNX graph gets a second output, "features" (1, C): the
   global average of its bottleneck tensor, found in the graph itself (the lowest-resolution,
   widest tensor an encoder node produces before the first up-sampling), so the same code
   serves a freshly trained network and the already shipped bundles.
2. `case_vectors`: each case is prepared exactly as at run time and run through the network;
   its vector is the mean of the per-patch features (`segmentation.ood.case_feature_vector`).
3. `fit_ood`: mean and Ledoit-Wolf shrunk inverse covariance of the fit cases' vectors; the
   threshold is the split-conformal quantile of the held-out calibration cases' Mahalanobis
   distances, so that a new case like them exceeds it with probability at most
   `false_alarm_rate`. Written as `ood.json` (plain numbers, no pickle).
"""

from __future__ import annotations

import json
import logging
import math
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from CervicalAILib.bundles.format import Bundle, load_bundle, write_bundle
from CervicalAILib.bundles.onnx import make_session
from CervicalAILib.core.errors import BundleError, InputError, OutputExistsError
from CervicalAILib.core.progress import ProgressCallback, no_progress, sub_progress
from CervicalAILib.io.case import load_case
from CervicalAILib.io.geometry import same_grid
from CervicalAILib.registration import register_to_t2
from CervicalAILib.research.training.dataset import dataset_provenance
from CervicalAILib.segmentation.inference import SegmentationModel
from CervicalAILib.segmentation.ood import OOD_SCHEMA, case_feature_vector
from CervicalAILib.segmentation.preprocess import prepare_inputs

log = logging.getLogger(__name__)

FEATURES_OUTPUT = "features"
OOD_FILE = "ood.json"
UPSAMPLING_OPS = ("ConvTranspose", "Resize", "Upsample")
NOT_ENCODER_OPS = ("Concat", "Shape", "Gather", "Unsqueeze", "Constant")


def bottleneck_tensor(model, in_channels: int, probe_zyx: Sequence[int]) -> tuple[str, int]:
    """(name, channels) of the network's bottleneck: among the tensors produced before the first
    up-sampling node, the one with the fewest spatial voxels, then the most channels, then the last."""
    import onnx
    from onnx import shape_inference

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    dims = probe.graph.input[0].type.tensor_type.shape.dim
    for dim, value in zip(dims, [1, in_channels, *probe_zyx], strict=True):
        dim.ClearField("dim_param")
        dim.dim_value = int(value)
    inferred = shape_inference.infer_shapes(probe)
    shapes = {
        info.name: [d.dim_value for d in info.type.tensor_type.shape.dim]
        for info in inferred.graph.value_info
    }
    best: tuple[tuple[int, int, int], str, int] | None = None
    for order, node in enumerate(inferred.graph.node):
        if node.op_type in UPSAMPLING_OPS:
            break
        if node.op_type in NOT_ENCODER_OPS:
            continue
        for output in node.output:
            shape = shapes.get(output)
            if not shape or len(shape) != 5 or any(d <= 0 for d in shape):
                continue
            key = (-int(np.prod(shape[2:])), shape[1], order)
            if best is None or key > best[0]:
                best = (key, output, shape[1])
    if best is None:
        raise BundleError("no 5-D encoder tensor found before the first up-sampling node: cannot locate the bottleneck")
    return best[1], best[2]


def add_feature_output(
    onnx_in: str | Path, onnx_out: str | Path, in_channels: int, probe_zyx: Sequence[int]
) -> dict[str, Any]:
    """Write `onnx_out`: the network of `onnx_in` plus the output "features" (1, C) =
    GlobalAveragePool(bottleneck). The probability output is untouched. Returns what was done."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(onnx_in))
    if any(output.name == FEATURES_OUTPUT for output in model.graph.output):
        raise BundleError(f"{onnx_in}: the network already has a {FEATURES_OUTPUT!r} output")
    tensor, channels = bottleneck_tensor(model, in_channels, probe_zyx)
    pooled = f"{FEATURES_OUTPUT}_pooled"
    model.graph.node.extend([
        helper.make_node("GlobalAveragePool", [tensor], [pooled], name="ood_features_pool"),
        helper.make_node("Flatten", [pooled], [FEATURES_OUTPUT], name="ood_features_flatten", axis=1),
    ])
    model.graph.output.append(helper.make_tensor_value_info(FEATURES_OUTPUT, TensorProto.FLOAT, [1, channels]))
    onnx.checker.check_model(model)
    onnx.save(model, str(onnx_out))
    return {"tensor": tensor, "channels": int(channels), "output": FEATURES_OUTPUT,
            "feature": "global average of the bottleneck activation per sliding-window patch"}


def case_images(case_dir: Path, roles: Sequence[str], register: bool = True) -> dict[str, Any]:
    """A case folder's sequences for `roles`, co-registered onto its T2WI as the runtime does."""
    case = load_case(case_dir)
    missing = [role for role in roles if role not in case.roles]
    if missing:
        raise InputError(f"case lacks {', '.join(missing)}", case_dir)
    images = {role: case.image(role) for role in roles}
    if register and any(not same_grid(images[r], images["T2W"]) for r in roles if r != "T2W"):
        images, _ = register_to_t2(images)
    return images


def vectors_from_volumes(
    model, volumes: Sequence[np.ndarray], progress: ProgressCallback | None = None
) -> list[np.ndarray]:
    """One feature vector per prepared working-grid volume (runtime sliding window, unmirrored pass)."""
    progress = progress or no_progress
    vectors = []
    for number, volume in enumerate(volumes):
        features: list[np.ndarray] = []
        model.probabilities(np.asarray(volume, dtype=np.float32), (), None, features)
        vectors.append(case_feature_vector(features))
        progress((number + 1) / max(len(volumes), 1), f"features {number + 1}/{len(volumes)}")
    return vectors


def case_vectors(
    model, case_dirs: Sequence[Path], register: bool = True, progress: ProgressCallback | None = None
) -> list[np.ndarray]:
    """One feature vector per case folder, prepared exactly as at run time."""
    progress = progress or no_progress
    vectors = []
    for number, case_dir in enumerate(case_dirs):
        images = case_images(Path(case_dir), model.roles, register)
        volume, _ = prepare_inputs(images, model.roles, model.preprocessing)
        vectors += vectors_from_volumes(model, [volume])
        progress((number + 1) / len(case_dirs), f"features of {Path(case_dir).name}")
    return vectors


def calibrated_threshold(distances: Sequence[float], false_alarm_rate: float) -> float:
    """The split-conformal threshold: the ceil((n + 1)(1 - rate))-th smallest of the n calibration
    distances (the largest when that rank exceeds n). A new case from the same distribution then
    exceeds it with probability at most `false_alarm_rate` (Vovk et al.; Angelopoulos & Bates 2021),
    which the plain (1 - rate) quantile of the calibration cases does not guarantee."""
    ordered = np.sort(np.asarray(distances, dtype=float))
    if ordered.size == 0:
        raise InputError("no calibration cases for the OOD threshold")
    rank = math.ceil((ordered.size + 1) * (1.0 - false_alarm_rate))
    return float(ordered[min(rank, ordered.size) - 1])


def fit_ood(
    fit_vectors: Sequence[np.ndarray],
    calibration_vectors: Sequence[np.ndarray],
    false_alarm_rate: float = 0.05,
    output_name: str = FEATURES_OUTPUT,
    provenance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The content of ood.json (see the module docstring)."""
    from sklearn.covariance import LedoitWolf

    fit = np.stack([np.asarray(v, dtype=np.float64) for v in fit_vectors])
    if fit.shape[0] < 3:
        raise InputError(f"the OOD distribution needs at least 3 fit cases, got {fit.shape[0]}")
    estimator = LedoitWolf().fit(fit)
    mean, precision = estimator.location_, estimator.precision_

    def distance(vector: np.ndarray) -> float:
        delta = np.asarray(vector, dtype=np.float64) - mean
        return float(np.sqrt(max(float(delta @ precision @ delta), 0.0)))

    calibration = [distance(v) for v in calibration_vectors]
    threshold = calibrated_threshold(calibration, false_alarm_rate)
    fit_distances = [distance(v) for v in fit]
    return {
        "schema": OOD_SCHEMA,
        "output_name": output_name,
        "feature": "per-patch global average of the network's bottleneck activation; case vector = mean over "
        "the sliding-window patches of the unmirrored pass",
        "distance": "Mahalanobis, covariance shrunk by Ledoit-Wolf",
        "mean": [float(v) for v in mean],
        "precision": [[float(v) for v in row] for row in precision],
        "threshold": threshold,
        "calibration": {
            "false_alarm_rate_target": false_alarm_rate,
            "fit_cases": int(fit.shape[0]),
            "calibration_cases": len(calibration),
            "calibration_false_alarms": int(sum(d > threshold for d in calibration)),
            "shrinkage": round(float(estimator.shrinkage_), 4),
            "fit_distance_median": round(float(np.median(fit_distances)), 3),
            "calibration_distance_median": round(float(np.median(calibration)), 3),
            **(provenance or {}),
        },
    }


def attach_ood(
    bundle: Bundle,
    out: str | Path,
    fit_vectors: Sequence[np.ndarray],
    calibration_vectors: Sequence[np.ndarray],
    false_alarm_rate: float = 0.05,
    provenance: dict[str, Any] | None = None,
    version: str | None = None,
) -> Bundle:
    """`bundle` (whose network has the features output) written to `out` with ood.json fitted."""
    manifest = json.loads(json.dumps(bundle.manifest))
    output = manifest["network"].get("features_output")
    if not output:
        raise BundleError(f"{bundle.path}: the network declares no features output to score")
    ood = fit_ood(fit_vectors, calibration_vectors, false_alarm_rate, output, provenance)
    manifest["ood"] = {
        "file": OOD_FILE,
        "threshold_distance": round(ood["threshold"], 4),
        "calibration": {k: v for k, v in ood["calibration"].items() if k not in ("fit_data", "calibration_data")},
    }
    if version:
        manifest["version"] = version
    files: dict[str, Any] = {name: (bundle.path / name).read_bytes() for name in manifest["files"] if name != OOD_FILE}
    files[OOD_FILE] = json.dumps(ood, indent=1)
    card_name = manifest.get("model_card", "MODEL_CARD.md")
    card = (bundle.path / card_name).read_text(encoding="utf-8")
    if version:  # the card's title names the version
        card = re.sub(r"\A# .*$", f"# {manifest['name']} {version}", card, count=1, flags=re.MULTILINE)
    files[card_name] = ood_card_section(card, ood)
    keep = {k: v for k, v in manifest.items() if k not in ("schema", "files")}
    return write_bundle(out, keep, files, overwrite=True if Path(out).resolve() == bundle.path.resolve() else False)


def add_ood_to_bundle(
    source: str | Path | Bundle,
    out: str | Path,
    fit_cases: Sequence[Path],
    calibration_cases: Sequence[Path],
    version: str | None = None,
    register: bool = True,
    false_alarm_rate: float = 0.05,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> Bundle:
    """`source` bundle with the feature output added to its network and ood.json fitted on case
    folders, written to `out`. The probability output is unchanged (checked), so segmentations are too."""
    progress = progress or no_progress
    bundle = source if isinstance(source, Bundle) else load_bundle(source, task="segmentation")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(f"{out}: bundle folder exists and is not empty (use --overwrite to replace it)")
    manifest = json.loads(json.dumps(bundle.manifest))
    roles = [entry["role"] for entry in manifest["inputs"]]
    patch_zyx = [int(v) for v in manifest["inference"]["patch_size_xyz"]][::-1]
    network_file = manifest["network"]["file"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with_features = tmp / "network.onnx"
        if FEATURES_OUTPUT in _output_names(bundle.file(network_file)):
            with_features.write_bytes(bundle.file(network_file).read_bytes())
        else:
            manifest["network"]["features"] = add_feature_output(
                bundle.file(network_file), with_features, len(roles), patch_zyx)
        _check_probability_unchanged(bundle.file(network_file), with_features, len(roles), patch_zyx)
        manifest["network"]["features_output"] = FEATURES_OUTPUT
        manifest.pop("ood", None)
        files: dict[str, Any] = {name: bundle.path / name for name in manifest["files"] if name != OOD_FILE}
        files[network_file] = with_features
        keep = {k: v for k, v in manifest.items() if k not in ("schema", "files")}
        staged = write_bundle(tmp / "staged", keep, files)
        model = SegmentationModel(staged)
        progress(0.0, f"features of {len(fit_cases)} fit cases")
        fit = case_vectors(model, fit_cases, register, sub_progress(progress, 0.0, 0.75))
        calibration = case_vectors(model, calibration_cases, register, sub_progress(progress, 0.75, 0.98))
        provenance = {"fit_data": dataset_provenance(fit_cases), "calibration_data": dataset_provenance(calibration_cases)}
        result = attach_ood(staged, tmp / "with-ood", fit, calibration, false_alarm_rate, provenance, version)
        final = write_bundle(out, {k: v for k, v in result.manifest.items() if k not in ("schema", "files")},
                             {name: result.path / name for name in result.manifest["files"]}, overwrite=overwrite)
    progress(1.0, f"bundle with OOD score written: {final.path}")
    return final


def _describe_data(data: Any) -> str:
    """'cohort fit-seed1 (generator 1.1.0, seed 1, 120 cases)' from dataset_provenance records or a string."""
    if isinstance(data, str):
        return data
    parts = []
    for record in data or []:
        details = [f"generator {record['version']}" if "version" in record else None,
                   f"seed {record['seed']}" if "seed" in record else None, f"{record.get('cases_used', '?')} cases"]
        parts.append(f"cohort {record.get('cohort', '?')} (" + ", ".join(d for d in details if d) + ")")
    return "; ".join(parts) or "unknown"


def ood_card_section(card: str, ood: dict[str, Any]) -> str:
    """The model card with its "Out-of-distribution score" section (replaced when present)."""
    head = card.split("\n## Out-of-distribution score")[0].rstrip("\n")
    calibration = ood["calibration"]
    return head + "\n\n" + "\n".join([
        "## Out-of-distribution score",
        "",
        "Mahalanobis distance of the case's mean bottleneck features from those of "
        f"{calibration['fit_cases']} synthetic cases, divided by a threshold that a synthetic case like them exceeds "
        f"with probability at most {100 * calibration['false_alarm_rate_target']:g}% (split-conformal quantile of "
        f"{calibration['calibration_cases']} held-out synthetic cases, {calibration['calibration_false_alarms']} of "
        "them above it). Above 1: \"the study looks unlike the images this model was trained on: check the contour "
        "carefully\".",
        "",
        f"- Distribution fitted on: {_describe_data(calibration.get('fit_data'))}.",
        f"- Threshold set on: {_describe_data(calibration.get('calibration_data'))}.",
        "",
    ])


def _output_names(onnx_path: Path) -> list[str]:
    import onnx

    return [output.name for output in onnx.load(str(onnx_path)).graph.output]


def _check_probability_unchanged(original: Path, changed: Path, channels: int, patch_zyx: Sequence[int]) -> None:
    sample = np.random.default_rng(0).normal(size=(1, channels, *patch_zyx)).astype(np.float32)
    before = make_session(original, what="network").session
    after = make_session(changed, what="network with the feature output").session
    first = before.run(None, {before.get_inputs()[0].name: sample})[0]
    second = after.run(None, {after.get_inputs()[0].name: sample})[0]
    if not np.array_equal(first, second):
        raise BundleError(f"{changed}: adding the feature output changed the probability output")
