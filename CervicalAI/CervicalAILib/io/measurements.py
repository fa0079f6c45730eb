"""Measurements on binary masks: volume, maximum 3D diameter, Dice, HD95, largest slice.

Shared by segmentation (summary of the automatic contour), review (how much the reader changed),
staging (FIGO size class from the maximum diameter) and export (edit metrics in the manifest).
All distances are in millimetres in physical space, so anisotropic and oblique grids are handled.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial import ConvexHull

from CervicalAILib.contracts.review import EditMetrics
from CervicalAILib.core.errors import InputError
from CervicalAILib.io.geometry import index_to_physical_matrix, same_grid, voxel_volume_ml


def mask_array(mask: sitk.Image) -> np.ndarray:
    """Boolean (z, y, x) array of the non-zero voxels."""
    return sitk.GetArrayViewFromImage(mask) != 0


def volume_ml(mask: sitk.Image) -> float:
    return float(mask_array(mask).sum()) * voxel_volume_ml(mask)


def boundary_points_mm(mask: sitk.Image) -> np.ndarray:
    """LPS points (N, 3) at the centres of the mask's boundary faces.

    These are the vertices that marching cubes places on a binary mask at iso-level 0.5 (the
    midpoints between an inside and an outside voxel centre), so extents are edge to edge, as a
    reader measures them, and agree with pyradiomics' mesh-based shape features.
    """
    inside = np.pad(mask_array(mask), 1)  # (z, y, x), padded so edges of the grid count as boundary
    points = []
    for axis in range(3):
        for step in (-1, 1):
            neighbour = np.roll(inside, -step, axis=axis)
            faces = np.argwhere(inside & ~neighbour).astype(float)  # boundary voxels (padded z, y, x)
            faces[:, axis] += 0.5 * step
            points.append(faces - 1.0)  # undo padding
    zyx = np.concatenate(points)
    if zyx.size == 0:
        return np.zeros((0, 3))
    ijk = zyx[:, ::-1]
    matrix = index_to_physical_matrix(mask)
    return ijk @ matrix[:3, :3].T + matrix[:3, 3]


def max_diameter_mm(mask: sitk.Image) -> float:
    """Largest distance between two points of the mask's surface (3D Feret diameter), in mm."""
    points = boundary_points_mm(mask)
    if len(points) == 0:
        return 0.0
    points = np.unique(np.round(points, 6), axis=0)
    if len(points) > 4:
        try:
            points = points[ConvexHull(points).vertices]
        except Exception:  # flat or degenerate point sets: fall back to all points
            pass
    best = 0.0
    for start in range(0, len(points), 2048):  # chunked pairwise distances keep memory bounded
        block = points[start : start + 2048]
        distances = np.sqrt(((block[:, None, :] - points[None, :, :]) ** 2).sum(axis=-1))
        best = max(best, float(distances.max()))
    return best


def _check_same_grid(a: sitk.Image, b: sitk.Image) -> None:
    if not same_grid(a, b):
        raise InputError("the two masks are not on the same voxel grid; resample one onto the other first")


def dice(a: sitk.Image, b: sitk.Image) -> float:
    """Dice overlap of two masks on the same grid (1.0 when both are empty)."""
    _check_same_grid(a, b)
    return mask_dice(mask_array(a), mask_array(b))


def mask_dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean arrays of one shape (1.0 when both are empty)."""
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * float(np.logical_and(a, b).sum()) / total


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(3, 1))


def hausdorff95_mm(a: sitk.Image, b: sitk.Image) -> float:
    """Symmetric 95th-percentile Hausdorff distance between the two mask surfaces, in mm.

    Surface voxels of each mask, distances to the other surface by Euclidean distance transform
    with the voxel spacing; the larger of the two directed 95th percentiles (MONAI's definition).
    Returns inf when exactly one mask is empty and 0 when both are.
    """
    _check_same_grid(a, b)
    x, y = mask_array(a), mask_array(b)
    if not x.any() and not y.any():
        return 0.0
    if not x.any() or not y.any():
        return float("inf")
    if not np.allclose(np.asarray(a.GetDirection()).reshape(3, 3) @ np.asarray(a.GetDirection()).reshape(3, 3).T, np.eye(3), atol=1e-6):
        raise InputError("HD95 needs an orthonormal direction matrix")
    # distances only matter near the two surfaces: crop to their joint bounding box (+1 voxel
    # so that the erosion sees the outside), which gives the same result many times faster
    nonzero = np.argwhere(x | y)
    low = np.maximum(nonzero.min(axis=0) - 1, 0)
    high = nonzero.max(axis=0) + 2
    box = tuple(slice(lo, hi) for lo, hi in zip(low, high))
    x, y = np.pad(x[box], 1), np.pad(y[box], 1)
    sampling = a.GetSpacing()[::-1]  # array axes are (z, y, x)
    surface_x, surface_y = _surface(x), _surface(y)
    to_y = ndimage.distance_transform_edt(~surface_y, sampling=sampling)
    to_x = ndimage.distance_transform_edt(~surface_x, sampling=sampling)
    return float(max(np.percentile(to_y[surface_x], 95), np.percentile(to_x[surface_y], 95)))


def largest_slice_index(mask: sitk.Image) -> int:
    """Index k of the slice (third image axis) with the largest mask area; InputError if empty."""
    areas = mask_array(mask).sum(axis=(1, 2))
    if areas.max() == 0:
        raise InputError("the mask is empty")
    return int(np.argmax(areas))


def edit_metrics(automatic: sitk.Image, reviewed: sitk.Image) -> EditMetrics:
    """How much a reader changed an automatic contour: Dice, HD95 and volume change.

    Values that are undefined (HD95 when one contour is empty, percent change of an empty
    automatic contour) are None, so the result can be stored as JSON or MRML attributes.
    """
    auto_ml, reviewed_ml = volume_ml(automatic), volume_ml(reviewed)
    hd95 = hausdorff95_mm(automatic, reviewed)
    return EditMetrics(
        dice=dice(automatic, reviewed),
        hd95_mm=hd95 if np.isfinite(hd95) else None,
        automatic_volume_ml=auto_ml,
        reviewed_volume_ml=reviewed_ml,
        volume_change_ml=reviewed_ml - auto_ml,
        volume_change_percent=100.0 * (reviewed_ml - auto_ml) / auto_ml if auto_ml > 0 else None,
    )
