"""Write a 3D volume as a well-formed MR DICOM series (one file per slice, MR Image Storage).

    write_dicom_series(image, "study/02_T2", common_tags={...patient/study...},
                       series_tags={"SeriesDescription": "T2 TSE TRA", "SeriesNumber": 2, ...},
                       uid_seed=("my-export", "patient01", "T2W"))

Geometry tags come from the SimpleITK image (LPS, as DICOM): ImagePositionPatient per slice,
ImageOrientationPatient from the direction matrix, PixelSpacing, SliceThickness (given, or the
slice spacing), SpacingBetweenSlices, SliceLocation. Integer images are stored as they are
(12 bits when every value fits in 0..4095, as MR scanners do, else 16 bits); floating-point
images are scaled into unsigned 16 bits with RescaleSlope/RescaleIntercept.

UIDs are deterministic: `deterministic_uid(*parts)` turns its parts into a name-based UUID
(RFC 4122 version 5) written as a 2.25.<integer> UID (ISO/IEC 9834-8), so writing the same
data with the same `uid_seed` gives byte-identical files. (pydicom's generate_uid ignores its
entropy sources when no prefix is given, hence this helper.) Several volumes sharing one geometry (e.g. the
b-values of a diffusion series) go into one series, each with its own per-volume tags.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from CervicalAILib.core import atomic
from CervicalAILib.core.errors import InputError
from CervicalAILib.io.geometry import same_grid

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
MAX_12_BIT = 4095


# Namespace of the name-based UUIDs behind deterministic UIDs (a fixed, arbitrary UUID).
UID_NAMESPACE = uuid.UUID("6f1d7c3e-2b8a-5d4e-9a61-3c0b8e2f7a15")


def deterministic_uid(*parts: Any) -> str:
    """A valid DICOM UID derived only from `parts` (same parts, same UID): 2.25.<UUIDv5>."""
    name = "\x1f".join(str(p) for p in parts)
    return f"2.25.{uuid.uuid5(UID_NAMESPACE, name).int}"


def save_dicom_file(dataset: Any, target: Any) -> None:
    """Write a pydicom dataset as a DICOM Part 10 file (preamble, file meta) to a path or binary file,
    with pydicom 3 (`enforce_file_format`) or pydicom 2.x (Slicer 5.10 ships 2.4.4: `write_like_original`)."""
    import pydicom

    if int(pydicom.__version__.split(".")[0]) >= 3:
        dataset.save_as(target, enforce_file_format=True)
    else:
        dataset.save_as(target, write_like_original=False)


def _ds(value: float) -> Any:
    from pydicom.valuerep import DSfloat

    return DSfloat(float(value), auto_format=True)


def _pixel_layout(arrays: list[np.ndarray]) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Pixel module tags and the stored integer arrays (rescaled if floating point)."""
    low = min(float(a.min()) for a in arrays)
    high = max(float(a.max()) for a in arrays)
    tags: dict[str, Any] = {}
    if all(np.issubdtype(a.dtype, np.integer) for a in arrays):
        if low >= 0 and high <= MAX_12_BIT:
            tags.update(BitsAllocated=16, BitsStored=12, HighBit=11, PixelRepresentation=0)
            stored = [a.astype(np.uint16) for a in arrays]
        elif low >= 0 and high <= 65535:
            tags.update(BitsAllocated=16, BitsStored=16, HighBit=15, PixelRepresentation=0)
            stored = [a.astype(np.uint16) for a in arrays]
        elif low >= -32768 and high <= 32767:
            tags.update(BitsAllocated=16, BitsStored=16, HighBit=15, PixelRepresentation=1)
            stored = [a.astype(np.int16) for a in arrays]
        else:
            raise InputError(f"integer values {low:g}..{high:g} do not fit in 16 bits")
        return tags, stored
    if not (np.isfinite(low) and np.isfinite(high)):
        raise InputError("image contains NaN or infinite values; cannot write DICOM")
    slope = (high - low) / 65535.0 if high > low else 1.0
    tags.update(BitsAllocated=16, BitsStored=16, HighBit=15, PixelRepresentation=0,
                RescaleIntercept=_ds(low), RescaleSlope=_ds(slope), RescaleType="US")
    stored = [np.clip(np.rint((a - low) / slope), 0, 65535).astype(np.uint16) for a in arrays]
    return tags, stored


def write_dicom_series(
    volumes: sitk.Image | Sequence[tuple[sitk.Image, Mapping[str, Any]]],
    out_dir: str | Path,
    *,
    common_tags: Mapping[str, Any],
    series_tags: Mapping[str, Any],
    uid_seed: Sequence[Any],
    file_prefix: str = "IM",
    overwrite: bool = False,
) -> list[Path]:
    """Write one MR series to `out_dir` (built under a temporary name, renamed when complete).

    `common_tags`: patient/study/equipment keywords shared by a study's series (give the same
    StudyInstanceUID and FrameOfReferenceUID to every series of one study).
    `series_tags`: SeriesDescription, SeriesNumber, ImageType, EchoTime, ... (keywords).
    `volumes`: one image, or (image, per-volume tags) pairs on the same grid, written in order.
    """
    import pydicom
    from pydicom.dataset import FileMetaDataset

    if isinstance(volumes, sitk.Image):
        volumes = [(volumes, {})]
    volumes = list(volumes)
    if not volumes:
        raise InputError("no volume to write", out_dir)
    reference = volumes[0][0]
    if reference.GetDimension() != 3 or reference.GetNumberOfComponentsPerPixel() != 1:
        raise InputError("a DICOM series needs scalar 3D images", out_dir)
    for image, _ in volumes[1:]:
        if not same_grid(image, reference):
            raise InputError("all volumes of one DICOM series must share one grid", out_dir)
    for key in ("StudyInstanceUID", "FrameOfReferenceUID"):
        if key not in common_tags:
            raise InputError(f"common_tags needs {key} (shared by every series of the study)", out_dir)

    direction = np.asarray(reference.GetDirection(), dtype=float).reshape(3, 3)
    spacing = np.asarray(reference.GetSpacing(), dtype=float)
    origin = np.asarray(reference.GetOrigin(), dtype=float)
    nx, ny, nz = reference.GetSize()
    arrays = [sitk.GetArrayFromImage(image) for image, _ in volumes]
    pixel_tags, stored = _pixel_layout(arrays)
    series_uid = series_tags.get("SeriesInstanceUID") or deterministic_uid(*uid_seed, "series")
    normal = direction[:, 2]
    orientation = [_ds(v) for v in np.concatenate([direction[:, 0], direction[:, 1]])]
    thickness = float(series_tags.get("SliceThickness", spacing[2]))

    paths: list[Path] = []
    with atomic.atomic_directory(out_dir, overwrite=overwrite) as tmp:
        instance = 0
        for (_, volume_tags), pixels in zip(volumes, stored):
            for k in range(nz):
                instance += 1
                position = origin + direction @ (np.array([0.0, 0.0, k]) * spacing)
                ds = pydicom.Dataset()
                ds.SpecificCharacterSet = "ISO_IR 100"
                ds.SOPClassUID = MR_IMAGE_STORAGE
                ds.SOPInstanceUID = deterministic_uid(*uid_seed, "instance", instance)
                ds.Modality = "MR"
                for key, value in common_tags.items():
                    setattr(ds, key, value)
                ds.SeriesInstanceUID = series_uid
                for key, value in series_tags.items():
                    if key not in ("SeriesInstanceUID", "SliceThickness"):
                        setattr(ds, key, value)
                for key, value in volume_tags.items():
                    setattr(ds, key, value)
                ds.InstanceNumber = instance
                ds.ImagePositionPatient = [_ds(v) for v in position]
                ds.ImageOrientationPatient = orientation
                ds.PixelSpacing = [_ds(spacing[1]), _ds(spacing[0])]  # row spacing, column spacing
                ds.SliceThickness = _ds(thickness)
                ds.SpacingBetweenSlices = _ds(spacing[2])
                ds.SliceLocation = _ds(float(position @ normal))
                ds.Rows, ds.Columns = int(ny), int(nx)
                ds.SamplesPerPixel = 1
                ds.PhotometricInterpretation = "MONOCHROME2"
                for key, value in pixel_tags.items():
                    setattr(ds, key, value)
                ds.PixelData = np.ascontiguousarray(pixels[k]).tobytes()
                meta = FileMetaDataset()
                meta.MediaStorageSOPClassUID = ds.SOPClassUID
                meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
                meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
                ds.file_meta = meta
                name = f"{file_prefix}{instance:04d}.dcm"
                save_dicom_file(ds, tmp / name)
                paths.append(Path(out_dir) / name)
    return paths
