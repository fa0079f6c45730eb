"""Domain randomisation from label maps (after SynthSeg, Billot et al. 2023): images the network
has never seen the contrast of, so that it learns shapes and neighbourhoods, not grey values.

`synthesize(label_map, channels, rng, spec)` draws, for every label of a training crop's label map
and for every input channel independently, a random mean intensity and spread (air stays dark so
that the runtime's body mask still finds the body), then degrades the image like real
acquisitions do - partial-volume blur, a smooth multiplicative bias field, lower in-plane
resolution and thicker slices, ghosting along a random phase-encoding axis, Rician noise, a gamma
change - and finally applies the same intensity normalisation the runtime applies to that
sequence (`segmentation.preprocess.normalize`). Spatial deformation (affine and elastic) is done
afterwards on image and targets together by the training augmentation.

Every random choice comes from `rng`, so a training run stays reproducible from its seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from CervicalAILib.segmentation.preprocess import normalize

SCALE = 1000.0  # arbitrary raw intensity unit of a synthetic image (normalisation removes it)


@dataclass(frozen=True)
class SynthesisSettings:
    """Ranges of the random draws (documented in the bundle's provenance)."""

    tissue_mean: tuple[float, float] = (0.1, 1.0)  # x SCALE, per label and channel
    air_mean: tuple[float, float] = (0.0, 0.04)  # label 0 (outside the body)
    tissue_spread: tuple[float, float] = (0.01, 0.12)  # standard deviation within a label, x SCALE
    blur_voxels: tuple[float, float] = (0.0, 0.8)  # partial-volume blur
    bias_sd: float = 0.3  # log-amplitude of the multiplicative bias field
    bias_probability: float = 0.8
    low_resolution_probability: float = 0.4
    in_plane_factor: tuple[float, float] = (1.0, 2.5)  # acquired pixel / working pixel
    slice_blur_voxels: tuple[float, float] = (0.3, 1.2)  # thicker slices than the working grid
    ghost_probability: float = 0.25
    ghost_amplitude: tuple[float, float] = (0.05, 0.3)
    noise_sd: tuple[float, float] = (0.0, 0.06)  # x the 99th percentile
    gamma_log_sd: float = 0.25

    def to_dict(self) -> dict[str, Any]:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in self.__dict__.items()}


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def random_contrast(label_map: np.ndarray, rng: np.random.Generator, settings: SynthesisSettings) -> np.ndarray:
    """One channel: every label gets a random mean and spread (Gaussian mixture, as SynthSeg)."""
    labels = np.unique(label_map)
    means = np.zeros(int(labels.max()) + 1, dtype=np.float32)
    spreads = np.zeros_like(means)
    for label in labels:
        bounds = settings.air_mean if label == 0 else settings.tissue_mean
        means[label] = _uniform(rng, bounds) * SCALE
        spreads[label] = _uniform(rng, settings.tissue_spread) * SCALE
    noise = rng.standard_normal(label_map.shape).astype(np.float32)
    image = means[label_map] + spreads[label_map] * noise
    return np.maximum(image, 0.0)


def bias_field(shape: Sequence[int], rng: np.random.Generator, sd: float) -> np.ndarray:
    """A smooth positive field: exp of a coarse random grid upsampled to `shape`."""
    coarse = rng.normal(0.0, sd, size=(3, 4, 4)).astype(np.float32)
    zoom = [n / c for n, c in zip(shape, coarse.shape, strict=True)]
    return np.exp(_fit_shape(ndimage.zoom(coarse, zoom, order=1, mode="nearest"), shape))


def _fit_shape(array: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """`array` cropped or edge-padded to `shape` (zoom may be off by a voxel)."""
    array = array[tuple(slice(0, n) for n in shape)]
    return np.pad(array, [(0, n - a) for n, a in zip(shape, array.shape, strict=True)], mode="edge")


def lower_resolution(image: np.ndarray, rng: np.random.Generator, settings: SynthesisSettings) -> np.ndarray:
    """Thicker slices (blur along z) and a coarser in-plane matrix (down- then up-sampled)."""
    image = ndimage.gaussian_filter1d(image, _uniform(rng, settings.slice_blur_voxels), axis=0, mode="nearest")
    factor = _uniform(rng, settings.in_plane_factor)
    if factor > 1.05:
        small = ndimage.zoom(image, (1.0, 1.0 / factor, 1.0 / factor), order=1, mode="nearest")
        back = ndimage.zoom(small, [n / s for n, s in zip(image.shape, small.shape, strict=True)], order=1,
                            mode="nearest")
        image = _fit_shape(back, image.shape)
    return image


def ghosting(image: np.ndarray, rng: np.random.Generator, settings: SynthesisSettings) -> np.ndarray:
    """Motion ghosts: attenuated copies shifted by a fraction of the field of view along the phase axis."""
    axis = int(rng.integers(1, 3))
    copies = int(rng.integers(1, 4))
    amplitude = _uniform(rng, settings.ghost_amplitude)
    out = image.copy()
    for number in range(1, copies + 1):
        shift = int(round(image.shape[axis] * number / (2 * copies + 1)))
        out += (amplitude / number) * np.roll(image, shift, axis=axis)
    return out


def rician_noise(image: np.ndarray, rng: np.random.Generator, sd: float) -> np.ndarray:
    real = image + rng.normal(0.0, sd, image.shape).astype(np.float32)
    imaginary = rng.normal(0.0, sd, image.shape).astype(np.float32)
    return np.sqrt(real * real + imaginary * imaginary)


def synthesize(
    label_map: np.ndarray,
    normalization: Sequence[Mapping[str, Any]],
    rng: np.random.Generator,
    settings: SynthesisSettings = SynthesisSettings(),
) -> np.ndarray:
    """A random-contrast image (C, z, y, x) float32 for `label_map` (z, y, x), one channel per entry
    of `normalization` (each channel normalised as the runtime normalises that sequence)."""
    label_map = np.asarray(label_map)
    if label_map.dtype.kind not in "iu":
        label_map = label_map.astype(np.int32)
    channels = []
    for spec in normalization:
        image = random_contrast(label_map, rng, settings)
        blur = _uniform(rng, settings.blur_voxels)
        if blur > 0.05:
            image = ndimage.gaussian_filter(image, blur, mode="nearest")
        if rng.random() < settings.bias_probability:
            image = image * bias_field(image.shape, rng, settings.bias_sd)
        if rng.random() < settings.low_resolution_probability:
            image = lower_resolution(image, rng, settings)
        if rng.random() < settings.ghost_probability:
            image = ghosting(image, rng, settings)
        reference = float(np.percentile(image, 99.0)) or SCALE
        image = rician_noise(image, rng, _uniform(rng, settings.noise_sd) * reference)
        gamma = float(np.exp(rng.normal(0.0, settings.gamma_log_sd)))
        top = float(image.max()) or 1.0
        image = top * (image / top) ** gamma
        channels.append(normalize(image.astype(np.float32), spec))
    return np.stack(channels).astype(np.float32)
