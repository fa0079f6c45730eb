"""Reading single image files (NIfTI, NRRD, MHA) with the checks of `io.image_checks`.

A file that is truncated, holds NaN voxels, or whose geometry is broken or implausible (NaN or
zero in the affine, zero or absurd spacing, a singular direction matrix, qform and sform that
disagree) is refused with an error naming the file: silently loading it would put the tumour in
the wrong place in space or change its volume.
"""

from __future__ import annotations

import errno
from pathlib import Path

import SimpleITK as sitk

from CervicalAILib.core.atomic import atomic_path
from CervicalAILib.core.errors import InputError
from CervicalAILib.io.image_checks import check_geometry, check_image, check_image_file

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")

__all__ = ["IMAGE_SUFFIXES", "check_geometry", "is_image_file", "read_image", "write_image"]


def is_image_file(path: str | Path) -> bool:
    name = Path(path).name.lower()
    return any(name.endswith(suffix) for suffix in IMAGE_SUFFIXES)


def _itk_reason(exc: RuntimeError) -> str:
    """ITK's reason in a few words (its messages run over several lines of source locations)."""
    text = str(exc).strip()
    lowered = text.lower()
    if "not read completely" in lowered or "but received" in lowered or "unexpected end" in lowered:
        return "the file is truncated (its voxel data end early)"
    if "unable to determine imageio reader" in lowered or "could not create io object" in lowered:
        return "not an image file ITK can read (unknown or corrupt format)"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Exception thrown", "/", "itk::", "Reason:"))]
    return (useful or lines or ["unknown error"])[-1][:200]


def read_image(path: str | Path, pixel_type: int | None = None, dimension: int | None = 3) -> sitk.Image:
    """Read one image file and check it; InputError names the file on any problem.

    dimension: the number of dimensions the image must have (None: any).
    """
    path = Path(path)
    if not path.is_file():
        if path.is_symlink():
            raise InputError("is a symbolic link that leads nowhere (to a missing file, or round in a loop)", path)
        raise InputError("file not found" if not path.exists() else "is a folder, not an image file", path)
    if not is_image_file(path):
        raise InputError(f"not an image file this tool reads (expected {', '.join(IMAGE_SUFFIXES)})", path)
    try:
        check_image_file(path)
    except PermissionError as exc:
        raise InputError("cannot read the file: permission denied", path) from exc
    try:
        image = sitk.ReadImage(str(path)) if pixel_type is None else sitk.ReadImage(str(path), pixel_type)
    except RuntimeError as exc:
        raise InputError(f"cannot read image ({_itk_reason(exc)})", path) from exc
    check_image(image, path, dimension=dimension)
    return image


def write_image(image: sitk.Image, path: str | Path, compress: bool = True) -> Path:
    """Write a SimpleITK image atomically (format from the extension, e.g. .nii.gz, .nrrd).

    ITK's writers do not fail when the disk is full (or a file size limit is hit): they print a
    message and leave a truncated file that ITK would later read as zero-filled. So the file is
    checked (header, byte count, gzip stream) before it is renamed into place: OSError if incomplete.
    Every image the engine writes goes through here.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        sitk.WriteImage(image, str(tmp), compress)
        if is_image_file(path):
            try:
                check_image_file(tmp, values=False)
            except InputError as exc:
                raise OSError(errno.ENOSPC, "the file written is incomplete (disk full or file size limit?): "
                              f"{exc.message}", str(path)) from exc
    return path
