"""Image geometry helpers shared by loading, registration, segmentation and export.

SimpleITK works in LPS physical coordinates (DICOM's patient system); Slicer's MRML in RAS.
Everything in the engine is LPS; only the MRML bridge converts.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

# LPS <-> RAS: flip the first two axes.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def direction_matrix(image: sitk.Image) -> np.ndarray:
    dim = image.GetDimension()
    return np.asarray(image.GetDirection(), dtype=float).reshape(dim, dim)


def index_to_physical_matrix(image: sitk.Image) -> np.ndarray:
    """4x4 matrix mapping continuous (i, j, k, 1) voxel indices to LPS (x, y, z, 1)."""
    matrix = np.eye(4)
    matrix[:3, :3] = direction_matrix(image) @ np.diag(image.GetSpacing())
    matrix[:3, 3] = image.GetOrigin()
    return matrix


def slice_normal(image: sitk.Image) -> np.ndarray:
    """Unit normal of the acquisition plane (the direction of the third index axis)."""
    return direction_matrix(image)[:, 2]


def plane_tilt_deg(image: sitk.Image) -> float:
    """Angle between the slice normal and the body's long (S-I) axis: 0 axial, 90 sagittal or coronal."""
    normal = slice_normal(image)
    return float(np.degrees(np.arccos(min(1.0, abs(float(normal[2]) / float(np.linalg.norm(normal)))))))


def orientation_label(image_or_direction, oblique_tolerance_deg: float = 10.0) -> str:
    """'axial', 'coronal' or 'sagittal' by the slice normal; 'oblique-<nearest>' beyond tolerance."""
    if isinstance(image_or_direction, sitk.Image):
        normal = slice_normal(image_or_direction)
    else:
        normal = np.asarray(image_or_direction, dtype=float).reshape(3, 3)[:, 2]
    normal = normal / np.linalg.norm(normal)
    axis = int(np.argmax(np.abs(normal)))
    name = ("sagittal", "coronal", "axial")[axis]  # LPS x -> sagittal, y -> coronal, z -> axial
    angle = np.degrees(np.arccos(min(1.0, abs(normal[axis]))))
    return name if angle <= oblique_tolerance_deg else f"oblique-{name}"


def same_grid(a: sitk.Image, b: sitk.Image, tolerance: float = 1e-4) -> bool:
    """True when both images sample the same voxel grid (size, spacing, origin, direction)."""
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tolerance)
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tolerance * 10)
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=tolerance)
    )


def physical_corners(image: sitk.Image) -> np.ndarray:
    """The 8 corners of the image's voxel-edge bounding box in LPS, shape (8, 3)."""
    size = np.asarray(image.GetSize(), dtype=float)
    corners = np.array([[i, j, k] for i in (-0.5, size[0] - 0.5) for j in (-0.5, size[1] - 0.5) for k in (-0.5, size[2] - 0.5)])
    matrix = index_to_physical_matrix(image)
    return corners @ matrix[:3, :3].T + matrix[:3, 3]


def overlap_fraction(image: sitk.Image, reference: sitk.Image, transform: sitk.Transform | None = None) -> float:
    """Fraction of `reference`'s voxel centres that fall inside `image` (after `transform`).

    `transform` maps reference points to image points (SimpleITK resampling convention).
    Sampled on a coarse lattice, so it is cheap for any image size.
    """
    size = np.asarray(reference.GetSize())
    steps = [np.linspace(0, n - 1, min(int(n), 16)) for n in size]
    grid = np.stack(np.meshgrid(*steps, indexing="ij"), axis=-1).reshape(-1, 3)
    matrix = index_to_physical_matrix(reference)
    points = grid @ matrix[:3, :3].T + matrix[:3, 3]
    if transform is not None:
        points = np.array([transform.TransformPoint(tuple(p)) for p in points])
    inverse = np.linalg.inv(index_to_physical_matrix(image))
    indices = points @ inverse[:3, :3].T + inverse[:3, 3]
    inside = np.all((indices >= -0.5) & (indices <= np.asarray(image.GetSize()) - 0.5), axis=1)
    return float(inside.mean())


def label_fraction_inside(mask: sitk.Image, image: sitk.Image, label: int | None = None) -> float:
    """Fraction of the mask's labelled voxels (`label`, or any non-zero) whose centres fall inside
    `image`'s voxel-edge box: how much of a tumour survives being put onto the image's grid."""
    array = sitk.GetArrayViewFromImage(mask)
    zyx = np.argwhere(array != 0 if label is None else array == label)
    if len(zyx) == 0:
        return 0.0
    matrix = index_to_physical_matrix(mask)
    points = zyx[:, ::-1].astype(float) @ matrix[:3, :3].T + matrix[:3, 3]
    inverse = np.linalg.inv(index_to_physical_matrix(image))
    indices = points @ inverse[:3, :3].T + inverse[:3, 3]
    upper = np.asarray(image.GetSize(), dtype=float) - 0.5
    inside = np.all((indices >= -0.5 - 1e-3) & (indices <= upper + 1e-3), axis=1)
    return float(inside.mean())


def resample_to_reference(
    image: sitk.Image,
    reference: sitk.Image,
    transform: sitk.Transform | None = None,
    interpolator: int = sitk.sitkLinear,
    default_value: float = 0.0,
    pixel_type: int | None = None,
) -> sitk.Image:
    """Resample `image` onto `reference`'s grid; `transform` maps reference points to image points.

    Use sitk.sitkNearestNeighbor (or a label-aware interpolator) for masks.
    """
    return sitk.Resample(
        image,
        reference,
        transform if transform is not None else sitk.Transform(),
        interpolator,
        default_value,
        pixel_type if pixel_type is not None else image.GetPixelID(),
    )


def voxel_volume_ml(image: sitk.Image) -> float:
    """Volume of one voxel in millilitres (spacing in mm)."""
    return float(np.prod(image.GetSpacing())) / 1000.0
