"""Test data for segmentation tests: tiny hand-built ONNX networks in a real bundle, and a phantom
with a known tumour (used by the engine's, the CLI's and the Segment module's tests)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from CervicalAILib.bundles.format import write_bundle

ZSCORE = {"method": "zscore", "foreground_fraction": 0.1, "reference_percentile": 99.0, "clip": 5.0}


def onnx_network(kind: str, channels: int = 1) -> bytes:
    """ONNX model (1, C, z, y, x) -> (1, 1, z, y, x): "identity" of channel 0, or
    "sigmoid": sigmoid(4 * (channel0 - 1.5)) (bright z-scored T2WI voxels -> tumour)."""
    import onnx
    from onnx import TensorProto, helper

    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, channels, None, None, None])
    output = helper.make_tensor_value_info("probability", TensorProto.FLOAT, [1, 1, None, None, None])
    constants = [
        helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [1]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        helper.make_tensor("shift", TensorProto.FLOAT, [], [1.5]),
        helper.make_tensor("gain", TensorProto.FLOAT, [], [4.0]),
    ]
    nodes = [helper.make_node("Slice", ["image", "starts", "ends", "axes"], ["first" if kind == "sigmoid" else "probability"])]
    if kind == "sigmoid":
        nodes += [
            helper.make_node("Sub", ["first", "shift"], ["shifted"]),
            helper.make_node("Mul", ["shifted", "gain"], ["scaled"]),
            helper.make_node("Sigmoid", ["scaled"], ["probability"]),
        ]
    graph = helper.make_graph(nodes, "tiny", [image], [output], initializer=constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def make_bundle(path, roles=("T2W",), kind="sigmoid", name="tiny-seg", **manifest_extra):
    manifest = {
        "name": name,
        "version": "0.0.1",
        "task": "segmentation",
        "intended_use": "tests only",
        "training_data": "none (hand-built test network); not for clinical use",
        "inputs": [{"role": role, "channel": i} for i, role in enumerate(roles)],
        "outputs": [{"name": "tumor", "channel": 0, "meaning": "probability of tumour"}],
        "provenance": {"built_by": "test"},
        "preprocessing": {
            "working_spacing_mm": [1.5, 1.5, 3.0],
            "orientation": "LPS-nearest",
            "interpolation": "linear",
            "normalization": {role: ZSCORE for role in roles},
        },
        "network": {"file": "model.onnx", "input_name": "image", "output_name": "probability"},
        "inference": {"patch_size_xyz": [16, 16, 8], "overlap": 0.25, "tta_flip_axes_zyx": [[2]]},
        "postprocessing": {"threshold": 0.5, "min_tumor_ml": 0.01},
    }
    manifest.update(manifest_extra)
    files = {"model.onnx": onnx_network(kind, len(roles)), "MODEL_CARD.md": "# tiny test network\n"}
    return write_bundle(path, manifest, files)


def phantom(size=(40, 36, 12), spacing=(1.0, 1.1, 2.5), radius_mm=7.0, centre=(20, 18, 6), direction=None, scale=100.0):
    """A body (ellipse of value 1 x scale) with a bright sphere (3 x scale) and its true mask."""
    z, y, x = np.mgrid[: size[2], : size[1], : size[0]].astype(float)
    body = ((x - size[0] / 2) / (size[0] * 0.45)) ** 2 + ((y - size[1] / 2) / (size[1] * 0.45)) ** 2 <= 1
    dist = np.sqrt(
        ((x - centre[0]) * spacing[0]) ** 2 + ((y - centre[1]) * spacing[1]) ** 2 + ((z - centre[2]) * spacing[2]) ** 2
    )
    tumour = dist <= radius_mm
    array = scale * (body.astype(np.float32) + 2.0 * tumour)
    rng = np.random.default_rng(0)
    array = array + rng.normal(0, 0.02 * scale, array.shape).astype(np.float32) * body
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.SetSpacing(spacing)
    image.SetOrigin((-12.0, 30.0, 5.0))
    if direction is not None:
        image.SetDirection(direction)
    truth = sitk.GetImageFromArray(tumour.astype(np.uint8))
    truth.CopyInformation(image)
    return image, truth
