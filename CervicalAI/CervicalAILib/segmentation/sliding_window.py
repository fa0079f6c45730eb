"""Sliding-window inference with Gaussian blending (numpy only).

The volume is covered by overlapping patches; each patch's prediction is weighted by a
Gaussian centred on the patch (edges of a patch see less context, so they count less) and the
weighted predictions are averaged. A network that returns its input reproduces the input
exactly, which is what the tests check.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from CervicalAILib.core.progress import ProgressCallback, no_progress
from CervicalAILib.segmentation.preprocess import pad_to_shape

PatchPredictor = Callable[[np.ndarray], np.ndarray]  # (1, C, z, y, x) -> (1, K, z, y, x)

# The mirrored passes a bundle's tumour probability averages with the plain one, as (z, y, x) axes to
# flip: left-right only, the pelvis being near-symmetric about the midline (bundle key inference.tta_flip_axes_zyx)
MIRRORED_PASSES_ZYX: tuple[tuple[int, ...], ...] = ((2,),)


def patch_starts(length: int, patch: int, overlap: float) -> list[int]:
    """Start indices of patches of size `patch` covering [0, length) with at least `overlap`."""
    if length <= patch:
        return [0]
    step = max(int(patch * (1.0 - overlap)), 1)
    count = int(np.ceil((length - patch) / step)) + 1
    return sorted({int(round(v)) for v in np.linspace(0, length - patch, count)})


def fit_patch(patch: Sequence[int], shape: Sequence[int], multiple: Sequence[int]) -> list[int]:
    """The patch to use on a volume of `shape`: never larger than the volume rounded up to `multiple`.

    A fully convolutional network accepts any size that is a multiple of its strides, so a volume
    smaller than the declared patch is run as one patch just large enough for it.
    """
    return [min(int(p), int(np.ceil(n / m)) * int(m)) for p, n, m in zip(patch, shape, multiple, strict=True)]


def gaussian_weights(patch: Sequence[int], sigma_scale: float = 0.125) -> np.ndarray:
    """Separable Gaussian importance map (z, y, x), peak 1, never below 1e-3 (no zero weights)."""
    weights = np.ones(tuple(int(p) for p in patch), dtype=np.float32)
    for axis, size in enumerate(patch):
        centre = (size - 1) / 2.0
        sigma = max(size * sigma_scale, 1e-3)
        profile = np.exp(-0.5 * ((np.arange(size) - centre) / sigma) ** 2).astype(np.float32)
        shape = [1, 1, 1]
        shape[axis] = size
        weights = weights * profile.reshape(shape)
    weights /= weights.max()
    return np.maximum(weights, 1e-3)


def sliding_window_predict(
    volume: np.ndarray,
    predict: PatchPredictor,
    patch_size: Sequence[int],
    overlap: float = 0.25,
    sigma_scale: float = 0.125,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Blend `predict` over patches of `volume` (C, z, y, x); returns (K, z, y, x) float32.

    Volumes smaller than the patch are padded with each channel's minimum and cropped back.
    """
    progress = progress or no_progress
    padded, crop = pad_to_shape(volume, patch_size)
    shape = padded.shape[1:]
    starts = [patch_starts(n, int(p), overlap) for n, p in zip(shape, patch_size, strict=True)]
    positions = [(z, y, x) for z in starts[0] for y in starts[1] for x in starts[2]]
    weights = gaussian_weights(patch_size, sigma_scale)
    total: np.ndarray | None = None
    weight_sum = np.zeros(shape, dtype=np.float32)
    for number, (z, y, x) in enumerate(positions):
        region = (slice(z, z + patch_size[0]), slice(y, y + patch_size[1]), slice(x, x + patch_size[2]))
        patch = np.ascontiguousarray(padded[(slice(None), *region)][None])
        output = np.asarray(predict(patch), dtype=np.float32)[0]
        if total is None:
            total = np.zeros((output.shape[0], *shape), dtype=np.float32)
        total[(slice(None), *region)] += output * weights
        weight_sum[region] += weights
        progress((number + 1) / len(positions), f"patch {number + 1}/{len(positions)}")
    assert total is not None
    total /= weight_sum
    return total[crop]
