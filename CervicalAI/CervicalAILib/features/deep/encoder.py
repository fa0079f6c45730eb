"""ONNX tumour encoders and per-sequence deep feature vectors (torch-free: onnxruntime only).

    encoder = load_encoder(default_bundle_path("encoder-2d"))
    features = extract_deep_features(images, tumour_mask, encoder)   # {"T2W_dl-resnet2d_F0000": 0.12, ...}

Each sequence is cropped around the tumour, preprocessed as the bundle declares, and passed
through the network on its own (one crop per run, so a sequence's features never depend on
which other sequences were present). Features are named `{ROLE}_dl-{encoder_name}_F{index:04d}`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from CervicalAILib.bundles.format import MANIFEST, Bundle, load_bundle
from CervicalAILib.bundles.onnx import make_session
from CervicalAILib.contracts.feature_names import deep_family, deep_name
from CervicalAILib.core.errors import BundleError, InputError
from CervicalAILib.core.hashing import sha256_file
from CervicalAILib.features.deep.config import EncoderSpec
from CervicalAILib.features.deep.crops import Crop, crop_tumour
from CervicalAILib.features.deep.preprocess import normalise_crop
from CervicalAILib.io.case import ROLES

log = logging.getLogger(__name__)


class Encoder:
    """A verified encoder bundle with its onnxruntime session. Build with `load_encoder`."""

    def __init__(self, bundle: Bundle, device: str = "cpu", threads: int | None = None):
        if bundle.task != "encoder":
            raise BundleError(f"{bundle.path}: bundle task is {bundle.task!r}, expected 'encoder'")
        self.bundle = bundle
        self.spec = EncoderSpec.from_manifest(bundle.manifest, str(bundle.path / "bundle.json"))
        onnx = make_session(bundle.file(self.spec.network_file), device, threads, what="encoder network")
        self.session, self.provider = onnx.session, onnx.provider
        self._input_name = self._resolve_input()
        self._output_name = self._resolve_output()
        self._batch_fixed = self._check_input_shape()
        self._check_output_dim()

    # --- bundle <-> network consistency, checked once at load -------------------------------
    def _resolve_input(self) -> str:
        inputs = self.session.get_inputs()
        names = [i.name for i in inputs]
        if self.spec.onnx_input is None:
            if len(inputs) != 1:
                raise BundleError(f"{self.bundle.path}: the network has inputs {names}; name one in inputs.onnx_input")
            return names[0]
        if self.spec.onnx_input not in names:
            raise BundleError(f"{self.bundle.path}: inputs.onnx_input {self.spec.onnx_input!r} is not a network input ({names})")
        return self.spec.onnx_input

    def _resolve_output(self) -> str:
        names = [o.name for o in self.session.get_outputs()]
        if self.spec.onnx_output is None:
            if len(names) != 1:
                raise BundleError(f"{self.bundle.path}: the network has outputs {names}; name one in outputs.onnx_output")
            return names[0]
        if self.spec.onnx_output not in names:
            raise BundleError(f"{self.bundle.path}: outputs.onnx_output {self.spec.onnx_output!r} is not a network output ({names})")
        return self.spec.onnx_output

    def _check_input_shape(self) -> bool:
        """Refuse a network whose fixed input dimensions contradict the crop; True if batch is fixed at 1."""
        shape = next(i.shape for i in self.session.get_inputs() if i.name == self._input_name)
        expected = (1, *self.spec.crop.input_shape)
        if len(shape) != len(expected):
            raise BundleError(
                f"{self.bundle.path}: network input {self._input_name!r} has {len(shape)} dimensions, the "
                f"{self.spec.crop.mode} crop gives {len(expected)} (batch, channels, {'rows, cols' if self.spec.crop.mode == '2d' else 'slices, rows, cols'})"
            )
        for axis, (declared, needed) in enumerate(zip(shape[1:], expected[1:]), start=1):
            if isinstance(declared, int) and declared != needed:
                raise BundleError(
                    f"{self.bundle.path}: network input shape {shape} does not match the declared crop "
                    f"(channels and size {expected[1:]}; axis {axis} differs)"
                )
        return isinstance(shape[0], int)

    def _check_output_dim(self) -> None:
        probe = np.zeros((1, *self.spec.crop.input_shape), dtype=np.float32)
        try:
            out = self._run(probe)
        except Exception as exc:
            raise BundleError(f"{self.bundle.path}: the encoder network fails on an input of the declared shape ({exc})") from exc
        if out.shape[1] != self.spec.dim:
            raise BundleError(
                f"{self.bundle.path}: the network output {self._output_name!r} gives {out.shape[1]} features "
                f"(reduce {self.spec.reduce!r}) but outputs.dim declares {self.spec.dim}"
            )

    # --- public -----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The feature family name, e.g. "resnet2d" (features `ROLE_dl-resnet2d_F0000`...)."""
        return self.spec.encoder_name

    @property
    def dim(self) -> int:
        return self.spec.dim

    @property
    def roles(self) -> tuple[str, ...]:
        """Sequences the encoder may be applied to (all roles when the bundle does not restrict them)."""
        return self.spec.roles if self.spec.roles is not None else ROLES

    def feature_names(self, role: str) -> list[str]:
        return [deep_name(role, self.name, i) for i in range(self.dim)]

    @property
    def family(self) -> str:
        """The feature family for model fitting: "dl-<encoder_name>"."""
        return deep_family(self.name)

    def reference(self) -> dict:
        """How a feature table's sidecar and a fitted model name this encoder (see models.table):
        family, bundle name, version and the SHA-256 of its bundle.json (which lists every file's hash)."""
        return {
            "family": self.family,
            "name": self.bundle.name,
            "version": self.bundle.version,
            "sha256": sha256_file(self.bundle.path / MANIFEST),
        }

    def summary(self) -> dict:
        """Bundle summary (with every file's hash) plus the feature family, for readouts."""
        return {
            **self.bundle.summary(),
            "family": self.family,
            "bundle_json_sha256": self.reference()["sha256"],
            "encoder_name": self.name,
            "dim": self.dim,
            "provider": self.provider,
        }

    def crop(self, image: sitk.Image, mask: sitk.Image, role: str = "image", warnings: list[str] | None = None) -> Crop:
        return crop_tumour(image, mask, self.spec.crop, role, warnings)

    def preprocess(self, image: sitk.Image, mask: sitk.Image, role: str = "image", warnings: list[str] | None = None) -> np.ndarray:
        """The network input for one sequence: float32 (C, *size)."""
        return normalise_crop(self.crop(image, mask, role, warnings), self.spec.intensity, self.spec.crop)

    def encode(self, batch: np.ndarray) -> np.ndarray:
        """Features (N, dim) for a batch of preprocessed crops (N, C, *size)."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != len(self.spec.crop.input_shape) + 1 or batch.shape[1:] != self.spec.crop.input_shape:
            raise InputError(f"encoder input must have shape (N, {', '.join(map(str, self.spec.crop.input_shape))}), found {batch.shape}")
        if self._batch_fixed:
            return np.concatenate([self._run(batch[i : i + 1]) for i in range(len(batch))])
        return self._run(batch)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        out = np.asarray(self.session.run([self._output_name], {self._input_name: batch})[0], dtype=np.float64)
        if self.spec.reduce == "mean" and out.ndim > 2:
            out = out.mean(axis=tuple(range(2, out.ndim)))
        return out.reshape(out.shape[0], -1)


_ENCODERS: dict[tuple[str, str, str, int | None], Encoder] = {}


def load_encoder(path_or_bundle: str | Path | Bundle | Encoder, device: str = "cpu", threads: int | None = None) -> Encoder:
    """Load (once per process) an encoder bundle; BundleError if it is not a valid encoder bundle.

    `device` "gpu" uses onnxruntime's CUDA provider when present and falls back to the CPU with
    a logged warning. The bundle's hashes are verified on every call (cheap); the session is cached.
    """
    if isinstance(path_or_bundle, Encoder):
        return path_or_bundle
    bundle = path_or_bundle if isinstance(path_or_bundle, Bundle) else load_bundle(path_or_bundle, task="encoder")
    key = (str(Path(bundle.path).resolve()), str(bundle.manifest["files"]), device, threads)
    if key not in _ENCODERS:
        _ENCODERS[key] = Encoder(bundle, device=device, threads=threads)
    return _ENCODERS[key]


def _mask_for(mask: sitk.Image | Mapping[str, sitk.Image], role: str) -> sitk.Image:
    if isinstance(mask, sitk.Image):
        return mask
    if role not in mask:
        raise InputError(f"no tumour mask given for {role} (masks given for: {', '.join(mask) or 'none'})")
    return mask[role]


def select_roles(images: Mapping[str, sitk.Image], encoder: Encoder, roles: list[str] | tuple[str, ...] | None) -> list[str]:
    """Roles to encode: those asked for (each must be present), else every present role the encoder takes."""
    unknown = [r for r in images if r not in ROLES]
    if unknown:
        raise InputError(f"unknown sequence role(s) {unknown}; known: {', '.join(ROLES)}")
    if roles is None:
        chosen = [r for r in ROLES if r in images and r in encoder.roles]
        if not chosen:
            raise InputError(
                f"none of the encoder's sequences ({', '.join(encoder.roles)}) is among the images given ({', '.join(images) or 'none'})"
            )
        return chosen
    for role in roles:
        if role not in ROLES:
            raise InputError(f"unknown sequence role {role!r}; known: {', '.join(ROLES)}")
        if role not in images:
            raise InputError(f"the {role} sequence is missing (images given: {', '.join(images) or 'none'}); deep features for {role} cannot be computed")
        if role not in encoder.roles:
            raise InputError(f"encoder {encoder.bundle.label} does not take {role} (it takes {', '.join(encoder.roles)})")
    return list(roles)


def extract_deep_features(
    images: Mapping[str, sitk.Image],
    mask: sitk.Image | Mapping[str, sitk.Image],
    encoder: Encoder | str | Path | Bundle,
    roles: list[str] | tuple[str, ...] | None = None,
    warnings: list[str] | None = None,
) -> dict[str, float]:
    """Deep features of the tumour per sequence: {`ROLE_dl-name_F0000`: value, ...} (plain floats).

    `images` maps roles to images; `mask` is the tumour mask (one image, normally on the T2W grid
    with every sequence co-registered onto it, or one mask per role). A mask on another grid is
    resampled with a warning (appended to `warnings` when given); no overlap, an empty mask, a
    missing role or NaN around the tumour raise InputError. Deterministic for the same inputs.
    """
    encoder = load_encoder(encoder)
    features: dict[str, float] = {}
    for role in select_roles(images, encoder, roles):
        x = encoder.preprocess(images[role], _mask_for(mask, role), role, warnings)
        values = encoder.encode(x[None])[0]
        if not np.all(np.isfinite(values)):
            raise InputError(f"{role}: the encoder produced non-finite features (check the image intensities)")
        features.update(zip(encoder.feature_names(role), (float(v) for v in values)))
    return features
