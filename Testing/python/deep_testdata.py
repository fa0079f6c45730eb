"""Small volumes, tiny hand-built ONNX networks and encoder bundles for the deep-feature tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from CervicalAILib.bundles.format import write_bundle
from CervicalAILib.features.deep.config import CropSpec, IntensitySpec, encoder_sections


def make_image(array_zyx: np.ndarray, spacing=(0.8, 0.8, 4.0), origin=(-20.0, 10.0, -40.0), direction=None) -> sitk.Image:
    image = sitk.GetImageFromArray(array_zyx)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(o) for o in origin))
    if direction is not None:
        image.SetDirection(tuple(float(d) for d in np.asarray(direction).ravel()))
    return image


def rotation_z(degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    return np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])


def ellipsoid_case(
    size=(100, 100, 20),
    spacing=(0.8, 0.8, 4.0),
    center_mm=(40.0, 38.0, 40.0),
    radii_mm=(12.0, 8.0, 14.0),
    tumour=400.0,
    background=100.0,
    noise=10.0,
    texture=0.0,
    seed=0,
    direction=None,
    origin=(-20.0, 10.0, -40.0),
) -> tuple[sitk.Image, sitk.Image]:
    """int16 image with an ellipsoid 'tumour' (optionally textured) and its uint8 mask.

    `center_mm`/`radii_mm` are in the image's index frame (mm from voxel 0), so the tumour has the
    same voxels whatever `direction` and `origin` are.
    """
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[: size[2], : size[1], : size[0]].astype(float)
    r = sum(((c * s - m) / rad) ** 2 for c, s, m, rad in zip((x, y, z), spacing, center_mm, radii_mm))
    mask = (r <= 1.0).astype(np.uint8)
    values = background + (tumour - background) * mask.astype(float)
    if texture:
        values += texture * mask * np.sin(x * 1.3) * np.cos(y * 0.9)
    values += rng.normal(0.0, noise, mask.shape)
    image = make_image(np.round(values).astype(np.int16), spacing, origin, direction)
    label = make_image(mask, spacing, origin, direction)
    return image, label


def linear_onnx(input_shape, dim: int, seed: int = 0, fixed_batch: bool = False, pooled_output: bool = False, logits: bool = False):
    """A tiny ONNX network: features = relu(flatten(x) @ W + b), reproducible in numpy.

    `pooled_output`: the features come out as (N, dim, 1, 1) (like a ResNet's pooled map);
    `logits`: a second output 'logits' = features @ V, so the bundle has to name its output.
    Returns (model bytes, W, b).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    n_in = int(np.prod(input_shape))
    weights = (rng.normal(0.0, 1.0, (n_in, dim)) / np.sqrt(n_in)).astype(np.float32)
    bias = rng.normal(0.0, 0.1, dim).astype(np.float32)
    batch = 1 if fixed_batch else "N"
    nodes = [
        helper.make_node("Flatten", ["image"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["lin"]),
        helper.make_node("Add", ["lin", "b"], ["pre"]),
        helper.make_node("Relu", ["pre"], ["relu"]),
    ]
    initializers = [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "b")]
    outputs = []
    if pooled_output:
        initializers.append(numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes"))
        nodes.append(helper.make_node("Unsqueeze", ["relu", "axes"], ["pooled"]))
        outputs.append(helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [batch, dim, 1, 1]))
    else:
        nodes.append(helper.make_node("Identity", ["relu"], ["features"]))
        outputs.append(helper.make_tensor_value_info("features", TensorProto.FLOAT, [batch, dim]))
    if logits:
        initializers.append(numpy_helper.from_array(rng.normal(0, 1, (dim, 3)).astype(np.float32), "V"))
        nodes.append(helper.make_node("MatMul", ["relu", "V"], ["logits"]))
        outputs.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 3]))
    graph = helper.make_graph(
        nodes,
        "tiny-encoder",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, *input_shape])],
        outputs,
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString(), weights, bias


def reference_features(x: np.ndarray, weights: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """numpy twin of `linear_onnx` for one preprocessed crop."""
    return np.maximum(x.reshape(-1).astype(np.float64) @ weights.astype(np.float64) + bias, 0.0)


def write_encoder_bundle(
    out: Path,
    crop: dict,
    intensity: dict,
    dim: int,
    name: str = "tiny",
    seed: int = 0,
    roles=("T2W", "ADC", "DWI", "CET1"),
    onnx_output: str = "features",
    fixed_batch: bool = False,
    pooled_output: bool = False,
    logits: bool = False,
    manifest_overrides: dict | None = None,
):
    """Write an encoder bundle around a `linear_onnx` network; returns (bundle, W, b)."""
    crop_spec = CropSpec.from_dict(crop)
    intensity_spec = IntensitySpec.from_dict(intensity, crop_spec.channels)
    model, weights, bias = linear_onnx(crop_spec.input_shape, dim, seed, fixed_batch, pooled_output, logits)
    manifest = {
        "name": f"test-encoder-{name}",
        "version": "0.0.1",
        "task": "encoder",
        "intended_use": "tests only",
        "training_data": "none (random weights); not for clinical use",
        "provenance": {"built_by": "deep_testdata.py"},
        **encoder_sections(name, crop_spec, intensity_spec, dim, roles=roles, onnx_output=onnx_output),
    }
    for key, value in (manifest_overrides or {}).items():
        manifest[key] = value
    bundle = write_bundle(out, manifest, {"encoder.onnx": model, "MODEL_CARD.md": "# tiny test encoder\n"})
    return bundle, weights, bias
