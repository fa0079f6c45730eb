"""Tumour crops for the deep-feature encoders.

2D: the slice (third image axis; axial for an axial acquisition) with the largest tumour area,
plus its neighbours as channels; 3D: a box around the whole tumour. Either way the crop is a box
centred on the tumour's bounding box, the tumour extent plus `margin_mm` on each side, sampled
on a grid aligned with the image's own axes at the spacing the bundle declares (or scaled so that
the box fits the encoder's input size). Extents, margins and spacings are in millimetres and the
grid follows the image's direction, so anisotropic and oblique grids give the same crop of the same
tumour; only a small region of interest around the tumour is read.

Downsampling (output spacing coarser than the image's) is preceded by a Gaussian anti-alias
filter, sigma = (output - input spacing) / 2 per axis (the rule skimage's `rescale` uses), so that
the crop of a fine T2WI and of a coarse DWI of the same tumour look alike.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from CervicalAILib.core.errors import InputError
from CervicalAILib.features.deep.config import CropSpec
from CervicalAILib.io.geometry import index_to_physical_matrix, resample_to_reference, same_grid
from CervicalAILib.io.measurements import largest_slice_index, mask_array

log = logging.getLogger(__name__)


@dataclass
class Crop:
    """Sampled crop: raw intensities, tumour mask and inside-the-image flags, (C, *size) each."""

    image: np.ndarray  # float32
    mask: np.ndarray  # bool
    valid: np.ndarray  # bool: the output voxel lies inside the source image
    spacing_mm: tuple[float, ...]  # output spacing, image axis order (x, y[, z])
    center_lps: tuple[float, float, float]
    slice_indices: tuple[int, ...] | None = None  # 2d: source slices of the channels
    warnings: list[str] = field(default_factory=list)


def align_mask(image: sitk.Image, mask: sitk.Image, role: str = "image", warnings: list[str] | None = None) -> sitk.Image:
    """The tumour mask on `image`'s grid.

    Same grid: returned as is. Another grid that overlaps the image: resampled with nearest
    neighbour and a warning. No overlap: InputError. Empty mask: InputError.
    """
    if image.GetDimension() != 3 or mask.GetDimension() != 3:
        raise InputError(f"the {role} image and the tumour mask must be 3D volumes")
    if mask.GetNumberOfComponentsPerPixel() != 1:
        raise InputError("the tumour mask must be a single-component label image")
    tumour = mask_array(mask)
    if not tumour.any():
        raise InputError("the tumour mask is empty: draw or segment the tumour first")
    if same_grid(image, mask):
        return mask
    count = int(tumour.sum())
    binary = sitk.Cast(sitk.NotEqual(mask, 0), sitk.sitkUInt8)
    resampled = resample_to_reference(binary, image, interpolator=sitk.sitkNearestNeighbor, default_value=0)
    inside_ml = float(mask_array(resampled).sum()) * float(np.prod(image.GetSpacing())) / 1000.0
    mask_ml = count * float(np.prod(mask.GetSpacing())) / 1000.0
    if inside_ml == 0.0:
        raise InputError(
            f"the tumour mask does not overlap the {role} image (it lies outside the image's field of view); "
            "check that the mask belongs to this study and that the sequences are co-registered"
        )
    message = f"{role}: the tumour mask is on another voxel grid; resampled onto the {role} grid (nearest neighbour)"
    if inside_ml < 0.5 * mask_ml:
        message += f"; only {100.0 * inside_ml / mask_ml:.0f}% of the tumour volume lies inside the {role} image"
    log.warning(message)
    if warnings is not None:
        warnings.append(message)
    return resampled


def _output_spacing(extent_mm: np.ndarray, size_xyz: np.ndarray, spec: CropSpec) -> tuple[np.ndarray, str | None]:
    """Output spacing per in-crop axis, and a warning when a fixed spacing cuts the tumour."""
    needed = extent_mm + 2.0 * spec.margin_mm
    if spec.spacing_mm is None:  # scale to fit, isotropic
        spacing = np.full(len(size_xyz), float(np.max(needed / size_xyz)))
        return spacing, None
    spacing = np.asarray(spec.spacing_mm, dtype=float)
    factor = float(np.max(needed / (size_xyz * spacing)))
    if factor > 1.0:
        if spec.fit:
            return spacing * factor, None
        return spacing, (
            f"the tumour plus margin ({', '.join(f'{v:.0f}' for v in needed)} mm) is larger than the encoder's "
            f"field of view ({', '.join(f'{v:.0f}' for v in size_xyz * spacing)} mm); the crop cuts the tumour"
        )
    return spacing, None


def _roi(image: sitk.Image, points_index: np.ndarray, pad: np.ndarray) -> tuple[int, ...]:
    """Index region (start xyz, size xyz) of `image` covering the points plus `pad` voxels, clipped."""
    lower = np.floor(points_index.min(axis=0) - pad).astype(int)
    upper = np.ceil(points_index.max(axis=0) + pad).astype(int)
    size = np.asarray(image.GetSize())
    lower = np.clip(lower, 0, size - 1)
    upper = np.clip(upper, 0, size - 1)
    return tuple(int(v) for v in lower), tuple(int(v) for v in upper - lower + 1)


def _sample(
    image: sitk.Image,
    mask: sitk.Image,
    centers_index: Sequence[np.ndarray],
    out_spacing: np.ndarray,
    out_size: np.ndarray,
    antialias: bool,
    smooth_axes: tuple[bool, bool, bool],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample one output box per centre (continuous xyz index in `image`).

    The output grid is aligned with the image's axes, has spacing `out_spacing` (xyz) and size
    `out_size` (xyz) and is centred on each centre. Sampling happens in the image's index space
    on a small region of interest read as a numpy view: linear interpolation for the image,
    nearest neighbour (round half up, as ITK) for the mask. Returns image, mask and
    inside-the-image arrays of shape (len(centers), z, y, x).
    """
    in_spacing = np.asarray(image.GetSpacing(), dtype=float)
    half_index = out_spacing * (out_size - 1) / 2.0 / in_spacing
    # output voxel centres relative to a box centre, in image index units, shape (z, y, x, 3) as xyz
    axes = [np.linspace(-half_index[a], half_index[a], int(out_size[a])) for a in range(3)]
    offsets = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).transpose(2, 1, 0, 3)

    sigma_mm = np.zeros(3)
    if antialias:
        sigma_mm = np.where(smooth_axes, np.maximum(out_spacing - in_spacing, 0.0) / 2.0, 0.0)
    corner_points = np.concatenate([np.stack([c - half_index, c + half_index]) for c in centers_index])
    start, size = _roi(image, corner_points, pad=2.0 + 3.0 * sigma_mm / in_spacing)
    region = tuple(slice(start[a], start[a] + size[a]) for a in (2, 1, 0))  # numpy (z, y, x)
    roi = sitk.GetArrayViewFromImage(image)[region].astype(np.float32)
    roi_mask = sitk.GetArrayViewFromImage(mask)[region] != 0
    if not np.all(np.isfinite(roi)):
        raise InputError("the image contains NaN or infinite values around the tumour")
    if np.any(sigma_mm > 0):
        roi = ndimage.gaussian_filter(roi, sigma=(sigma_mm / in_spacing)[::-1], mode="nearest", truncate=3.0)

    image_size = np.asarray(image.GetSize())
    roi_size = np.asarray(size)
    images, masks, valids = [], [], []
    for center in centers_index:
        points = center + offsets  # continuous xyz index in the image
        inside = np.all((points >= -0.5) & (points <= image_size - 0.5), axis=-1)
        local = points - np.asarray(start)  # index in the region of interest
        values = ndimage.map_coordinates(roi, np.moveaxis(local[..., ::-1], -1, 0), order=1, mode="nearest")
        nearest = np.clip(np.floor(local + 0.5).astype(int), 0, roi_size - 1)
        tumour = roi_mask[nearest[..., 2], nearest[..., 1], nearest[..., 0]] & inside
        images.append(np.where(inside, values, 0.0).astype(np.float32))
        masks.append(tumour)
        valids.append(inside)
    return np.stack(images), np.stack(masks), np.stack(valids)


def _lps(image: sitk.Image, index_xyz: np.ndarray) -> tuple[float, float, float]:
    matrix = index_to_physical_matrix(image)
    return tuple(float(v) for v in matrix[:3, :3] @ index_xyz + matrix[:3, 3])


def _bounding_box(tumour_zyx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive (lower, upper) voxel index of the tumour, xyz order (from axis projections: fast)."""
    lower, upper = [], []
    for axis in (2, 1, 0):  # x, y, z
        others = tuple(a for a in range(3) if a != axis)
        present = np.flatnonzero(tumour_zyx.any(axis=others))
        lower.append(present[0])
        upper.append(present[-1])
    return np.array(lower), np.array(upper)


def crop_2d(image: sitk.Image, mask: sitk.Image, spec: CropSpec, slice_index: int | None = None) -> Crop:
    """2D crop: the largest-area slice of the tumour (or `slice_index`) and its neighbours.

    `mask` must be on `image`'s grid (see `align_mask`). Channel c holds slice
    k + c - (channels - 1) // 2 with "neighbours" (clamped at the ends of the volume), or slice k
    repeated with "replicate". The in-plane box covers the tumour on all channel slices.
    """
    if spec.mode != "2d":
        raise ValueError("crop_2d needs a 2d crop spec")
    tumour = mask_array(mask)
    k = largest_slice_index(mask) if slice_index is None else int(slice_index)
    n_slices = image.GetSize()[2]
    if not 0 <= k < n_slices:
        raise InputError(f"slice index {k} is outside the image (0..{n_slices - 1})")
    if spec.channel_mode == "neighbours":
        half = (spec.channels - 1) // 2
        slices = [min(max(k + offset, 0), n_slices - 1) for offset in range(-half, half + 1)]
    else:
        slices = [k] * spec.channels
    in_plane = tumour[sorted(set(slices))].any(axis=0)  # (y, x)
    if not in_plane.any():
        raise InputError(f"the tumour mask is empty on slice {k}")
    lower, upper = _bounding_box(in_plane[None])
    in_spacing = np.asarray(image.GetSpacing(), dtype=float)
    extent = (upper[:2] - lower[:2] + 1) * in_spacing[:2]
    size_xy = np.asarray(spec.size[::-1], dtype=float)  # (cols, rows) = (x, y)
    spacing_xy, warning = _output_spacing(extent, size_xy, spec)
    center_xy = (lower[:2] + upper[:2]) / 2.0
    centers = [np.array([center_xy[0], center_xy[1], float(s)]) for s in slices]
    out_spacing = np.array([spacing_xy[0], spacing_xy[1], in_spacing[2]])
    out_size = np.array([size_xy[0], size_xy[1], 1.0])
    images, masks, valids = _sample(image, mask, centers, out_spacing, out_size, spec.antialias, (True, True, False))
    crop = Crop(
        image=images[:, 0],
        mask=masks[:, 0],
        valid=valids[:, 0],
        spacing_mm=tuple(float(s) for s in spacing_xy),
        center_lps=_lps(image, np.array([center_xy[0], center_xy[1], float(k)])),
        slice_indices=tuple(int(s) for s in slices),
    )
    if warning:
        crop.warnings.append(warning)
    return crop


def crop_3d(image: sitk.Image, mask: sitk.Image, spec: CropSpec) -> Crop:
    """3D crop: a box around the whole tumour plus margin, sampled to the declared size.

    `mask` must be on `image`'s grid (see `align_mask`). Returns arrays of shape (1, D, H, W).
    """
    if spec.mode != "3d":
        raise ValueError("crop_3d needs a 3d crop spec")
    tumour = mask_array(mask)
    if not tumour.any():
        raise InputError("the tumour mask is empty: draw or segment the tumour first")
    lower, upper = _bounding_box(tumour)
    in_spacing = np.asarray(image.GetSpacing(), dtype=float)
    extent = (upper - lower + 1) * in_spacing
    size_xyz = np.asarray(spec.size[::-1], dtype=float)
    spacing, warning = _output_spacing(extent, size_xyz, spec)
    center = (lower + upper) / 2.0
    images, masks, valids = _sample(image, mask, [center], spacing, size_xyz, spec.antialias, (True, True, True))
    crop = Crop(
        image=images,
        mask=masks,
        valid=valids,
        spacing_mm=tuple(float(s) for s in spacing),
        center_lps=_lps(image, center),
    )
    if warning:
        crop.warnings.append(warning)
    return crop


def crop_tumour(image: sitk.Image, mask: sitk.Image, spec: CropSpec, role: str = "image", warnings: list[str] | None = None) -> Crop:
    """Align the mask to the image, then cut the 2d or 3d crop the spec declares."""
    aligned = align_mask(image, mask, role, warnings)
    crop = crop_2d(image, aligned, spec) if spec.mode == "2d" else crop_3d(image, aligned, spec)
    if warnings is not None:
        warnings.extend(f"{role}: {w}" for w in crop.warnings)
    for w in crop.warnings:
        log.warning("%s: %s", role, w)
    return crop
