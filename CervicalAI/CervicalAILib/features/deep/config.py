"""What an encoder bundle declares: crop, intensity preprocessing, network input and output.

An encoder bundle (task "encoder") is what makes the deep features pluggable: a site that wants
its own network (e.g. an ImageNet ResNet exported to ONNX elsewhere) writes a bundle.json with
these sections and the runtime applies exactly what it declares:

    "inputs": {
      "roles": ["T2W", "ADC", "DWI", "CET1"],          # sequences it may encode (null: any)
      "onnx_input": "image",                           # network input name (null: the only input)
      "crop": {"mode": "2d", "size": [64, 64], "channels": 3, "channel_mode": "neighbours",
               "margin_mm": 5.0, "spacing_mm": [1.0, 1.0], "fit": true,
               "masking": "tumor", "antialias": true},
      "intensity": {"clip_percentiles": [0.5, 99.5], "scale": "zscore", "stats_region": "crop",
                    "channel_mean": null, "channel_std": null, "background": 0.0}
    },
    "outputs": {"encoder_name": "resnet2d", "onnx_output": "features", "dim": 128,
                "reduce": "flatten"},
    "network": {"file": "encoder.onnx", ...}

Crop `size` is in array order: (rows, columns) for 2d, (slices, rows, columns) for 3d;
`spacing_mm` is in image axis order: (x, y) for 2d, (x, y, z) for 3d. See docs/deep_features.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from CervicalAILib.contracts.feature_names import ENCODER_NAME, deep_name_pattern
from CervicalAILib.core.errors import BundleError
from CervicalAILib.io.case import ROLES

CROP_MODES = ("2d", "3d")
CHANNEL_MODES = ("neighbours", "replicate")
MASKING = ("none", "tumor")
SCALES = ("zscore", "minmax", "none")
STATS_REGIONS = ("crop", "tumor")
REDUCTIONS = ("flatten", "mean")



def _get(section: dict[str, Any], key: str, kind, where: str, default: Any = ..., allow_none: bool = False):
    if key not in section:
        if default is ...:
            raise BundleError(f"{where}: missing {key!r}")
        return default
    value = section[key]
    if value is None and allow_none:
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise BundleError(f"{where}: {key!r} has the wrong type ({type(value).__name__}: {value!r})")
    return value


def _choice(section: dict[str, Any], key: str, choices: tuple[str, ...], where: str, default: str) -> str:
    value = _get(section, key, str, where, default)
    if value not in choices:
        raise BundleError(f"{where}: {key!r} is {value!r}; expected one of {', '.join(choices)}")
    return value


def _numbers(value: Any, length: int, key: str, where: str, positive: bool = False) -> tuple[float, ...]:
    if not isinstance(value, list) or len(value) != length or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    ):
        raise BundleError(f"{where}: {key!r} must be a list of {length} numbers, found {value!r}")
    if positive and any(v <= 0 for v in value):
        raise BundleError(f"{where}: {key!r} must be positive, found {value!r}")
    return tuple(float(v) for v in value)


@dataclass(frozen=True)
class CropSpec:
    """How the tumour crop is cut from an image (see module docstring)."""

    mode: str
    size: tuple[int, ...]  # array order: (rows, cols) or (slices, rows, cols)
    channels: int
    channel_mode: str
    margin_mm: float
    spacing_mm: tuple[float, ...] | None  # image axis order (x, y[, z]); None: scale to fit
    fit: bool  # with spacing_mm: enlarge the spacing when the tumour + margin does not fit
    masking: str
    antialias: bool

    @classmethod
    def from_dict(cls, section: Any, where: str = "crop") -> CropSpec:
        if not isinstance(section, dict):
            raise BundleError(f"{where}: must be a JSON object")
        mode = _choice(section, "mode", CROP_MODES, where, ...)
        ndim = 2 if mode == "2d" else 3
        size_raw = _get(section, "size", list, where)
        if len(size_raw) != ndim or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in size_raw):
            raise BundleError(f"{where}: 'size' must be {ndim} positive integers for a {mode} crop, found {size_raw!r}")
        channels = _get(section, "channels", int, where, 3 if mode == "2d" else 1)
        if channels < 1 or (mode == "3d" and channels != 1):
            raise BundleError(f"{where}: 'channels' must be >= 1 (and 1 for a 3d crop), found {channels}")
        channel_mode = _choice(section, "channel_mode", CHANNEL_MODES, where, "neighbours")
        if mode == "2d" and channel_mode == "neighbours" and channels % 2 == 0:
            raise BundleError(f"{where}: 'neighbours' needs an odd number of channels (slices centred on the largest)")
        margin = _get(section, "margin_mm", float, where, 0.0)
        if margin < 0:
            raise BundleError(f"{where}: 'margin_mm' must be >= 0, found {margin}")
        spacing = _get(section, "spacing_mm", list, where, None, allow_none=True)
        if spacing is not None:
            spacing = _numbers(spacing, ndim, "spacing_mm", where, positive=True)
        fit = _get(section, "fit", bool, where, True)
        if spacing is None and not fit:
            raise BundleError(f"{where}: without 'spacing_mm' the crop must be scaled to fit ('fit': true)")
        return cls(
            mode=mode,
            size=tuple(size_raw),
            channels=channels,
            channel_mode=channel_mode,
            margin_mm=margin,
            spacing_mm=spacing,
            fit=fit,
            masking=_choice(section, "masking", MASKING, where, "none"),
            antialias=_get(section, "antialias", bool, where, True),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "size": list(self.size),
            "channels": self.channels,
            "channel_mode": self.channel_mode,
            "margin_mm": self.margin_mm,
            "spacing_mm": list(self.spacing_mm) if self.spacing_mm is not None else None,
            "fit": self.fit,
            "masking": self.masking,
            "antialias": self.antialias,
        }

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Network input shape without the batch axis: (C, H, W) or (1, D, H, W)."""
        return (self.channels, *self.size)


@dataclass(frozen=True)
class IntensitySpec:
    """Intensity preprocessing within the crop, applied in this order:

    1. clip to the `clip_percentiles` of the statistics region (crop or tumour voxels);
    2. `scale`: "zscore" (mean 0, sd 1 over the region), "minmax" (region range to [0, 1]) or "none";
    3. per-channel `(x - channel_mean[c]) / channel_std[c]` when given (ImageNet networks);
    4. voxels outside the image (and outside the tumour with masking "tumor") set to `background`.
    """

    clip_percentiles: tuple[float, float] | None
    scale: str
    stats_region: str
    channel_mean: tuple[float, ...] | None
    channel_std: tuple[float, ...] | None
    background: float

    @classmethod
    def from_dict(cls, section: Any, channels: int, where: str = "intensity") -> IntensitySpec:
        if not isinstance(section, dict):
            raise BundleError(f"{where}: must be a JSON object")
        clip = _get(section, "clip_percentiles", list, where, None, allow_none=True)
        if clip is not None:
            clip = _numbers(clip, 2, "clip_percentiles", where)
            if not 0.0 <= clip[0] < clip[1] <= 100.0:
                raise BundleError(f"{where}: 'clip_percentiles' must satisfy 0 <= low < high <= 100, found {list(clip)}")
        mean = _get(section, "channel_mean", list, where, None, allow_none=True)
        std = _get(section, "channel_std", list, where, None, allow_none=True)
        if (mean is None) != (std is None):
            raise BundleError(f"{where}: give both 'channel_mean' and 'channel_std' or neither")
        if mean is not None:
            mean = _numbers(mean, channels, "channel_mean", where)
            std = _numbers(std, channels, "channel_std", where, positive=True)
        return cls(
            clip_percentiles=clip,
            scale=_choice(section, "scale", SCALES, where, "zscore"),
            stats_region=_choice(section, "stats_region", STATS_REGIONS, where, "crop"),
            channel_mean=mean,
            channel_std=std,
            background=_get(section, "background", float, where, 0.0),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "clip_percentiles": list(self.clip_percentiles) if self.clip_percentiles is not None else None,
            "scale": self.scale,
            "stats_region": self.stats_region,
            "channel_mean": list(self.channel_mean) if self.channel_mean is not None else None,
            "channel_std": list(self.channel_std) if self.channel_std is not None else None,
            "background": self.background,
        }


@dataclass(frozen=True)
class EncoderSpec:
    """Everything the runtime needs from an encoder bundle.json."""

    encoder_name: str
    network_file: str
    roles: tuple[str, ...] | None
    onnx_input: str | None
    onnx_output: str | None
    dim: int
    reduce: str
    crop: CropSpec
    intensity: IntensitySpec

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any], where: str = "bundle.json") -> EncoderSpec:
        inputs, outputs = manifest.get("inputs"), manifest.get("outputs")
        network = manifest.get("network")
        for key, section in (("inputs", inputs), ("outputs", outputs), ("network", network)):
            if not isinstance(section, dict):
                raise BundleError(f"{where}: an encoder bundle needs an object {key!r} (see docs/deep_features.md)")
        network_file = _get(network, "file", str, f"{where} network")
        if network_file not in manifest.get("files", {}) or not network_file.endswith(".onnx"):
            raise BundleError(f"{where}: network file {network_file!r} must be an .onnx file listed in 'files'")
        roles = _get(inputs, "roles", list, f"{where} inputs", None, allow_none=True)
        if roles is not None:
            unknown = [r for r in roles if r not in ROLES]
            if not roles or unknown:
                raise BundleError(f"{where}: inputs.roles must name sequences among {', '.join(ROLES)}, found {roles!r}")
            roles = tuple(roles)
        name = _get(outputs, "encoder_name", str, f"{where} outputs")
        if not ENCODER_NAME.fullmatch(name):
            raise BundleError(
                f"{where}: outputs.encoder_name {name!r} must be lower-case letters, digits and hyphens "
                "(it becomes part of feature names like T2W_dl-<name>_F0001)"
            )
        dim = _get(outputs, "dim", int, f"{where} outputs")
        if dim < 1:
            raise BundleError(f"{where}: outputs.dim must be >= 1, found {dim}")
        crop = CropSpec.from_dict(_get(inputs, "crop", dict, f"{where} inputs"), f"{where} inputs.crop")
        intensity = IntensitySpec.from_dict(
            _get(inputs, "intensity", dict, f"{where} inputs"), crop.channels, f"{where} inputs.intensity"
        )
        return cls(
            encoder_name=name,
            network_file=network_file,
            roles=roles,
            onnx_input=_get(inputs, "onnx_input", str, f"{where} inputs", None, allow_none=True),
            onnx_output=_get(outputs, "onnx_output", str, f"{where} outputs", None, allow_none=True),
            dim=dim,
            reduce=_choice(outputs, "reduce", REDUCTIONS, f"{where} outputs", "flatten"),
            crop=crop,
            intensity=intensity,
        )


def encoder_sections(
    encoder_name: str,
    crop: CropSpec,
    intensity: IntensitySpec,
    dim: int,
    roles: tuple[str, ...] | list[str] | None = ROLES,
    network_file: str = "encoder.onnx",
    onnx_input: str = "image",
    onnx_output: str = "features",
    reduce: str = "flatten",
    network_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The `inputs`, `outputs` and `network` manifest sections for an encoder bundle."""
    return {
        "inputs": {
            "roles": list(roles) if roles is not None else None,
            "onnx_input": onnx_input,
            "crop": crop.to_dict(),
            "intensity": intensity.to_dict(),
        },
        "outputs": {
            "encoder_name": encoder_name,
            "onnx_output": onnx_output,
            "dim": dim,
            "reduce": reduce,
            "feature_names": deep_name_pattern(encoder_name),
        },
        "network": {"file": network_file, **(network_extra or {})},
    }
