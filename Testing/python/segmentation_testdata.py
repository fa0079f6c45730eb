"""Test data for segmentation tests: tiny hand-built ONNX networks in a real bundle, and a phantom
with a known tumour (used by the engine's, the CLI's and the Segment module's tests)."""

from __future__ import annotations

import json

import numpy as np
import SimpleITK as sitk

from CervicalAILib.bundles.format import write_bundle
from CervicalAILib.io.geometry import physical_corners

# The smallest U-Net the training code builds (training and OOD tests)
TINY_ARCH = {
    "name": "monai.networks.nets.UNet",
    "channels": [4, 8, 16, 32],
    "strides_zyx": [[1, 2, 2], [2, 2, 2], [2, 2, 2]],
    "num_res_units": 1,
    "norm": "instance",
}

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


# --------------------------------------------------------------------------- a network with a cervix output
# (the anatomy gate's and the OOD score's tests)


def band_network(with_features: bool = False, lean_voxels: int = 0) -> bytes:
    """ONNX (1, 1, z, y, x) -> probability (1, 2, z, y, x): channel 0 tumour = sigmoid(40 (x - 0.83)),
    channel 1 cervix = sigmoid(40 (x - 0.5)) - tumour. Inputs normalised to 0..1 by the maximum, a
    phantom's body (1/3), cervix (2/3) and tumour (1) fall in these bands. With `with_features`,
    a second output "features" (1, 2): the patch means of x and x^2. With `lean_voxels` n, the cervix
    band reads the voxel n further along the last axis (a network that is not left-right symmetric:
    its cervix lands n voxels off, towards the lower index, and off the other way in a mirrored pass)."""
    import onnx
    from onnx import TensorProto, helper

    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, None, None, None])
    outputs = [helper.make_tensor_value_info("probability", TensorProto.FLOAT, [1, 2, None, None, None])]
    constants = [helper.make_tensor(name, TensorProto.FLOAT, [], [value])
                 for name, value in (("hi", 0.83), ("lo", 0.5), ("gain", 40.0))]
    nodes = [
        helper.make_node("Sub", ["image", "hi"], ["d_hi"]),
        helper.make_node("Mul", ["d_hi", "gain"], ["g_hi"]),
        helper.make_node("Sigmoid", ["g_hi"], ["tumour"]),
        helper.make_node("Sub", ["leaning" if lean_voxels else "image", "lo"], ["d_lo"]),
        helper.make_node("Mul", ["d_lo", "gain"], ["g_lo"]),
        helper.make_node("Sigmoid", ["g_lo"], ["tissue"]),
        helper.make_node("Sub", ["tissue", "tumour"], ["cervix"]),
        helper.make_node("Concat", ["tumour", "cervix"], ["probability"], axis=1),
    ]
    if lean_voxels:
        taps = [0.0] * (2 * lean_voxels) + [1.0]  # out[x] = in[x + n]: zero padding beyond the edge
        constants.append(helper.make_tensor("lean", TensorProto.FLOAT, [1, 1, 1, 1, len(taps)], taps))
        nodes.insert(0, helper.make_node("Conv", ["image", "lean"], ["leaning"],
                                         pads=[0, 0, lean_voxels, 0, 0, lean_voxels]))
    if with_features:
        outputs.append(helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 2]))
        nodes += [
            helper.make_node("Mul", ["image", "image"], ["squared"]),
            helper.make_node("Concat", ["image", "squared"], ["both"], axis=1),
            helper.make_node("GlobalAveragePool", ["both"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["features"], axis=1),
        ]
    graph = helper.make_graph(nodes, "bands", [image], outputs, initializer=constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def make_anatomy_bundle(path, ood: dict | None = None):
    manifest = {
        "name": "bands-seg",
        "version": "0.0.1",
        "task": "segmentation",
        "intended_use": "tests only",
        "training_data": "none (hand-built test network); not for clinical use",
        "inputs": [{"role": "T2W", "channel": 0}],
        "outputs": [{"name": "tumor", "channel": 0}, {"name": "Cervix", "channel": 1}],
        "provenance": {"built_by": "test"},
        "preprocessing": {
            "working_spacing_mm": [1.5, 1.5, 3.0],
            "orientation": "LPS-nearest",
            "interpolation": "linear",
            "normalization": {"T2W": {"method": "percentile", "low": 0.0, "high": 100.0}},
        },
        "network": {"file": "model.onnx", "input_name": "image", "output_name": "probability"},
        "inference": {"patch_size_xyz": [16, 16, 8], "overlap": 0.25, "tta_flip_axes_zyx": [[2]]},
        "postprocessing": {"threshold": 0.5, "min_tumor_ml": 0.01},
        "anatomy_gate": {"required": ["cervix", "uterus"], "min_ml": 1.0, "near_mm": 10.0},
    }
    files = {"model.onnx": band_network(with_features=ood is not None), "MODEL_CARD.md": "# band test network\n"}
    if ood is not None:
        manifest["ood"] = {"file": "ood.json"}
        files["ood.json"] = json.dumps(ood)
    return write_bundle(path, manifest, files)


def pelvis(cervix: bool = True, far_blob: bool = False, size=(48, 44, 12), spacing=(1.2, 1.2, 3.0)):
    """Body 100, cervix (r 14 mm) 200 holding a tumour (r 6 mm) 300; optional bright blob (r 4 mm)
    about 16 mm from the cervix."""
    z, y, x = np.mgrid[: size[2], : size[1], : size[0]].astype(float)
    body = ((x - size[0] / 2) / (size[0] * 0.47)) ** 2 + ((y - size[1] / 2) / (size[1] * 0.47)) ** 2 <= 1
    mm = np.sqrt(((x - 14) * spacing[0]) ** 2 + ((y - 22) * spacing[1]) ** 2 + ((z - 6) * spacing[2]) ** 2)
    array = 100.0 * body
    tumour = (mm <= 6) & cervix
    if cervix:
        array[mm <= 14] = 200.0
        array[tumour] = 300.0
    blob = np.zeros_like(body)
    if far_blob or not cervix:
        far = np.sqrt(((x - 42) * spacing[0]) ** 2 + ((y - 22) * spacing[1]) ** 2 + ((z - 6) * spacing[2]) ** 2)
        blob = far <= 4
        array[blob] = 300.0
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.SetSpacing(spacing)
    image.SetOrigin((-30.0, -20.0, 0.0))
    return image, tumour, blob


def sagittal_grid(reference: sitk.Image, pixel_mm: float, slice_mm: float = 4.0) -> sitk.Image:
    """An empty sagittal grid (slices left-right; x -> posterior, y -> inferior) over `reference`'s voxel-edge box:
    what a study's sagittal series covering the same anatomy looks like, for giving it where a T2WI is expected."""
    corners = physical_corners(reference)
    low, high = corners.min(axis=0), corners.max(axis=0)
    direction = np.column_stack([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    spacing = np.array([pixel_mm, pixel_mm, slice_mm])
    extent = np.array([high[1] - low[1], high[2] - low[2], high[0] - low[0]])  # along the new x, y, slices
    grid = sitk.Image([int(n) for n in np.maximum(np.ceil(extent / spacing), 1)], sitk.sitkFloat32)
    grid.SetSpacing([float(v) for v in spacing])
    grid.SetDirection([float(v) for v in direction.ravel()])
    grid.SetOrigin([float(low[0] + slice_mm / 2), float(low[1] + pixel_mm / 2), float(high[2] - pixel_mm / 2)])
    return grid


def box_mask(path, box) -> sitk.Image:
    """A 0/1 mask on an 8 x 20 x 20 grid (0.8 x 0.8 x 4 mm) with the box (z0, z1, y0, y1, x0, x1) set,
    written to `path` when it is given (review-record tests: a reader's contour and the automatic one)."""
    array = np.zeros((8, 20, 20), np.uint8)
    z0, z1, y0, y1, x0, x1 = box
    array[z0:z1, y0:y1, x0:x1] = 1
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.8, 0.8, 4.0))
    if path is not None:
        sitk.WriteImage(image, str(path))
    return image
