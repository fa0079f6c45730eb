"""The segmentation network: a MONAI 3D U-Net, described by plain data stored in the bundle.

Why a U-Net with anisotropic strides: the working grid is 1.5 x 1.5 x 4 mm, so the first
down-sampling is in-plane only ((1, 2, 2) in z, y, x) and later ones are isotropic; MONAI's
UNet does its first convolution already strided, so most of the arithmetic runs at half
resolution and one training step (two 16 x 80 x 80 patches) takes about a second on two CPU
cores, while inference on a whole pelvis stays within a few seconds. SegResNet was about four
times slower per step here for no expected gain on this task (see docs/segmentation.md).
"""

from __future__ import annotations

from typing import Any

DEFAULT_ARCHITECTURE: dict[str, Any] = {
    "name": "monai.networks.nets.UNet",
    "channels": [8, 16, 32, 64],
    "strides_zyx": [[1, 2, 2], [2, 2, 2], [2, 2, 2]],
    "num_res_units": 1,
    "norm": "instance",
    "dropout": 0.0,
}


def size_multiple_zyx(architecture: dict[str, Any]) -> list[int]:
    """Input sizes must be multiples of these (the product of the strides per axis)."""
    multiple = [1, 1, 1]
    for stride in architecture["strides_zyx"]:
        multiple = [m * int(s) for m, s in zip(multiple, stride, strict=True)]
    return multiple


def build_network(architecture: dict[str, Any], in_channels: int, out_channels: int = 1):
    """A MONAI UNet with one output channel (logit) per trained structure, tumour first."""
    from monai.networks.nets import UNet

    if architecture.get("name") != DEFAULT_ARCHITECTURE["name"]:
        raise ValueError(f"unsupported architecture {architecture.get('name')!r}")
    return UNet(
        spatial_dims=3,
        in_channels=in_channels,
        out_channels=int(out_channels),
        channels=tuple(architecture["channels"]),
        strides=tuple(tuple(s) for s in architecture["strides_zyx"]),
        num_res_units=int(architecture["num_res_units"]),
        norm=architecture["norm"],
        dropout=float(architecture.get("dropout", 0.0)),
    )
