"""Reading single image files (NIfTI, NRRD, MHA) with geometry checks.

A file whose geometry is broken (NaN or zero in the affine, zero spacing, a singular
direction matrix) is refused with an error naming the file: silently loading it would put
the tumour in the wrong place in space.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InputError

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def is_image_file(path: str | Path) -> bool:
    name = Path(path).name.lower()
    return any(name.endswith(suffix) for suffix in IMAGE_SUFFIXES)


def check_geometry(image: sitk.Image, path: str | Path) -> None:
    """Raise InputError if the image's spacing, origin or direction cannot be trusted."""
    spacing = np.asarray(image.GetSpacing(), dtype=float)
    origin = np.asarray(image.GetOrigin(), dtype=float)
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(image.GetDimension(), image.GetDimension())
    if not (np.all(np.isfinite(spacing)) and np.all(np.isfinite(origin)) and np.all(np.isfinite(direction))):
        raise InputError("image geometry contains NaN or infinite values (affine/spacing/origin)", path)
    if np.any(spacing <= 0):
        raise InputError(f"voxel spacing must be positive, found {tuple(spacing.round(4))}", path)
    det = np.linalg.det(direction)
    if abs(det) < 1e-3:
        raise InputError("image direction matrix is singular (zero column in the affine)", path)


def _check_nifti_header(path: Path) -> None:
    """Check the NIfTI sform/qform before SimpleITK silently repairs or rejects it."""
    try:
        import nibabel
    except ImportError:  # nibabel is optional; SimpleITK's geometry is still checked afterwards
        return
    try:
        header = nibabel.load(str(path)).header
    except Exception as exc:  # unreadable header: report as corrupt
        raise InputError(f"not a readable NIfTI file ({exc})", path) from exc
    affine_candidates = []
    if int(header["sform_code"]) > 0:
        affine_candidates.append(("sform", header.get_sform()))
    if int(header["qform_code"]) > 0:
        affine_candidates.append(("qform", header.get_qform()))
    if not affine_candidates:
        affine_candidates.append(("pixdim", np.diag(list(header["pixdim"][1:4]) + [1.0])))
    for name, affine in affine_candidates:
        affine = np.asarray(affine, dtype=float)
        if not np.all(np.isfinite(affine)):
            raise InputError(f"NIfTI {name} affine contains NaN or infinite values", path)
        if abs(np.linalg.det(affine[:3, :3])) < 1e-9:
            raise InputError(f"NIfTI {name} affine is singular (a zero scale or zero column)", path)


def read_image(path: str | Path, pixel_type: int | None = None) -> sitk.Image:
    """Read one image file and check its geometry; InputError names the file on any problem."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path)
    if path.name.lower().endswith((".nii", ".nii.gz")):
        _check_nifti_header(path)
    try:
        image = sitk.ReadImage(str(path)) if pixel_type is None else sitk.ReadImage(str(path), pixel_type)
    except RuntimeError as exc:
        first_line = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown error"
        raise InputError(f"cannot read image ({first_line})", path) from exc
    check_geometry(image, path)
    return image
