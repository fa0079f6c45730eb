"""Preprocessing for the segmentation network, driven entirely by the bundle's declaration.

The same functions prepare training data (`CervicalAILib.research.training`) and inference inputs, so
what the network saw in training is what it sees at run time. Everything a bundle can ask for
is declared in `bundle.json["preprocessing"]`:

    {"working_spacing_mm": [1.5, 1.5, 4.0],          # x, y, z of the working grid
     "orientation": "LPS-nearest",                      # axes permuted/flipped nearest to LPS ("LPS": axis-aligned)
     "interpolation": "linear",
     "normalization": {"T2W": {"method": "zscore", "foreground_fraction": 0.1,
                               "reference_percentile": 99.0, "clip": 5.0}, ...},
     "pad": "channel_minimum"}

Arrays are (channel, z, y, x) float32 in the order of the bundle's input roles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import SimpleITK as sitk

from CervicalAILib.core.errors import BundleError
from CervicalAILib.io.geometry import direction_matrix, physical_corners

NORMALIZATION_METHODS = ("zscore", "percentile")
# Working-grid orientations: "LPS-nearest" keeps the T2WI's slice plane (an oblique acquisition stays
# oblique: the network must know every tilt); "LPS" is axis-aligned, a true axial grid whatever the
# acquisition's plane, so the anatomy reaches the network upright.
ORIENTATIONS = ("LPS-nearest", "LPS")


def nearest_lps_direction(direction: np.ndarray) -> np.ndarray:
    """Permute and flip the columns of `direction` so that each is closest to +x, +y, +z (LPS).

    Oblique angles are kept exactly; only the order and sign of the index axes change, so
    every scanner's axial series reaches the network with the same anatomical axis order.
    """
    direction = np.asarray(direction, dtype=float).reshape(3, 3)
    order: list[int] = []
    remaining = [0, 1, 2]
    for lps_axis in range(3):
        best = max(remaining, key=lambda column: abs(direction[lps_axis, column]))
        order.append(best)
        remaining.remove(best)
    permuted = direction[:, order]
    signs = np.sign(np.diag(permuted))
    signs[signs == 0] = 1.0
    return permuted * signs


def working_grid(reference: sitk.Image, spacing_mm: Sequence[float], orientation: str = "LPS-nearest") -> sitk.Image:
    """An empty float image at `spacing_mm` (x, y, z) covering `reference`'s field of view.

    Its axes are the reference's axes reordered nearest to LPS ("LPS-nearest"), or LPS itself ("LPS":
    then an oblique field of view is covered by its axis-aligned bounding box); its voxel-edge bounding
    box starts at the reference's and extends by whole voxels to cover it.
    """
    if orientation not in ORIENTATIONS:
        raise BundleError(f"unknown working-grid orientation {orientation!r} (known: {', '.join(ORIENTATIONS)})")
    spacing = np.asarray(spacing_mm, dtype=float)
    if orientation == "LPS":
        new_direction = np.eye(3)
    else:
        new_direction = nearest_lps_direction(direction_matrix(reference))
    corners = physical_corners(reference)  # (8, 3) LPS, voxel edges
    local = corners @ new_direction  # coordinates along the new axes
    low, high = local.min(axis=0), local.max(axis=0)
    size = np.maximum(np.ceil((high - low) / spacing - 1e-6).astype(int), 1)
    first_center_local = low + 0.5 * spacing
    origin = new_direction @ first_center_local
    grid = sitk.Image([int(s) for s in size], sitk.sitkFloat32)
    grid.SetSpacing(tuple(float(s) for s in spacing))
    grid.SetDirection(tuple(float(v) for v in new_direction.ravel()))
    grid.SetOrigin(tuple(float(v) for v in origin))
    return grid


def resample_onto(image: sitk.Image, grid: sitk.Image, interpolation: str = "linear") -> np.ndarray:
    """`image` resampled onto `grid` (physical space, no transform), float32 (z, y, x)."""
    interpolators = {"linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor, "bspline": sitk.sitkBSpline}
    if interpolation not in interpolators:
        raise BundleError(f"unknown interpolation {interpolation!r} (known: {', '.join(interpolators)})")
    resampled = sitk.Resample(image, grid, sitk.Transform(), interpolators[interpolation], 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(resampled)


def foreground_mask(array: np.ndarray, fraction: float, percentile: float) -> np.ndarray:
    """Voxels brighter than `fraction` x the `percentile`-th intensity: the body, not the air."""
    reference = float(np.percentile(array, percentile))
    if reference <= 0:
        return np.zeros(array.shape, dtype=bool)
    return array > fraction * reference


def normalize(array: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    """Apply one sequence's declared intensity normalisation; returns float32.

    - "zscore": (x - mean) / std over the foreground (voxels above `foreground_fraction` x the
      `reference_percentile`-th intensity), then clipped to +-`clip`.
    - "percentile": maps the `low`-th..`high`-th percentiles to 0..1, then clipped to [0, 1].
    """
    method = spec.get("method")
    array = np.asarray(array, dtype=np.float32)
    if method == "zscore":
        mask = foreground_mask(array, float(spec["foreground_fraction"]), float(spec["reference_percentile"]))
        if mask.sum() < 2:
            return np.zeros_like(array)
        values = array[mask]
        mean, std = float(values.mean()), float(values.std())
        out = (array - mean) / max(std, 1e-8)
        clip = float(spec["clip"])
        return np.clip(out, -clip, clip).astype(np.float32)
    if method == "percentile":
        low, high = np.percentile(array, [float(spec["low"]), float(spec["high"])])
        if high <= low:
            return np.zeros_like(array)
        return np.clip((array - low) / (high - low), 0.0, 1.0).astype(np.float32)
    raise BundleError(f"unknown intensity normalisation {method!r} (known: {', '.join(NORMALIZATION_METHODS)})")


def check_preprocessing(spec: Mapping[str, Any], roles: Sequence[str]) -> None:
    """BundleError if the declaration is incomplete or asks for something this runtime lacks."""
    for key in ("working_spacing_mm", "normalization", "interpolation"):
        if key not in spec:
            raise BundleError(f"bundle preprocessing lacks {key!r}")
    spacing = spec["working_spacing_mm"]
    if len(spacing) != 3 or any(float(s) <= 0 for s in spacing):
        raise BundleError(f"bundle working_spacing_mm must be three positive numbers, found {spacing!r}")
    if spec.get("orientation", "LPS-nearest") not in ORIENTATIONS:
        raise BundleError(f"unknown working-grid orientation {spec['orientation']!r} (known: {', '.join(ORIENTATIONS)})")
    for role in roles:
        if role not in spec["normalization"]:
            raise BundleError(f"bundle declares no intensity normalisation for input {role}")
        method = spec["normalization"][role].get("method")
        if method not in NORMALIZATION_METHODS:
            raise BundleError(f"unknown intensity normalisation {method!r} for {role}")


def prepare_inputs(
    images: Mapping[str, sitk.Image], roles: Sequence[str], spec: Mapping[str, Any]
) -> tuple[np.ndarray, sitk.Image]:
    """Stack the declared roles on the working grid, normalised: ((C, z, y, x) float32, grid).

    All images must already share the T2W's physical space (co-registered); the working grid is
    built from the T2W image.
    """
    check_preprocessing(spec, roles)
    grid = working_grid(images["T2W"], spec["working_spacing_mm"], spec.get("orientation", "LPS-nearest"))
    channels = []
    for role in roles:
        array = resample_onto(images[role], grid, spec["interpolation"])
        channels.append(normalize(array, spec["normalization"][role]))
    return np.stack(channels).astype(np.float32), grid


def pad_to_shape(volume: np.ndarray, shape: Sequence[int]) -> tuple[np.ndarray, tuple[slice, ...]]:
    """Pad (C, z, y, x) symmetrically to at least `shape` (z, y, x) with each channel's minimum.

    Returns the padded array and the slices that cut the original back out.
    """
    pads = []
    crop = [slice(None)]
    for length, target in zip(volume.shape[1:], shape, strict=True):
        total = max(int(target) - int(length), 0)
        before = total // 2
        pads.append((before, total - before))
        crop.append(slice(before, before + length))
    if not any(p for pair in pads for p in pair):
        return volume, tuple(crop)
    minimum = volume.reshape(volume.shape[0], -1).min(axis=1)
    padded = np.empty((volume.shape[0], *[n + a + b for n, (a, b) in zip(volume.shape[1:], pads, strict=True)]), dtype=volume.dtype)
    for channel in range(volume.shape[0]):
        padded[channel] = np.pad(volume[channel], pads, mode="constant", constant_values=minimum[channel])
    return padded, tuple(crop)


def intensity_summary(image: sitk.Image) -> dict[str, float]:
    """Raw-intensity figures used to check that an input is inside the training range."""
    array = sitk.GetArrayViewFromImage(image)
    flat = np.asarray(array, dtype=np.float32).ravel()
    if flat.size > 2_000_000:  # a regular subsample is plenty for percentiles
        flat = flat[:: flat.size // 1_000_000]
    return {"p99": float(np.percentile(flat, 99.0))}
