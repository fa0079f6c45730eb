"""The reference a mask is exported on: its grid (an image file or a DICOM series) and the mask on it.

Every exporter goes through `mask_on_reference`: the tumour mask is made binary (any non-zero
voxel is tumour) and, when it is not on the reference grid (the T2WI series it belongs to), it
is resampled onto it in physical space with nearest-neighbour interpolation and a warning. A
mask that does not overlap the reference at all is refused: it belongs to another series or
another patient. The reference series is read with `io.dicom` (slices sorted along the normal,
spacing checked): a series with missing or duplicated slices is refused rather than referenced wrongly.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from CervicalAILib.core.errors import InputError
from CervicalAILib.io.dicom.volumes import load_dicom_series
from CervicalAILib.io.geometry import index_to_physical_matrix, resample_to_reference, same_grid
from CervicalAILib.io.images import read_image
from CervicalAILib.io.mask_checks import tumour_mask

log = logging.getLogger(__name__)

SEGMENT_LABEL = "tumor"  # the one segment every export names (DICOM SEG, .seg.nrrd)


@dataclass
class ReferenceSeries:
    """The source series a SEG references: its image, and its data sets in slice order."""

    folder: Path
    image: sitk.Image
    datasets: list[Any]  # pydicom Datasets, sorted along the slice normal (the image's k order)
    files: list[Path]
    series_uid: str
    patient_id: str
    description: str


def load_reference_series(folder: str | Path, series: str | None = None) -> ReferenceSeries:
    """Read the reference series (one image series; `series` picks one by number, key or UID).

    InputError when the folder has no image series, several without `series`, several volumes
    (e.g. b-values), or an incomplete volume (missing/duplicated slices, irregular spacing).
    """
    import pydicom

    folder = Path(folder)
    if not folder.exists():
        raise InputError("reference DICOM folder not found", folder)
    found, scan = load_dicom_series([folder])
    if not found:
        reason = f"; {len(scan.unreadable)} unreadable file(s), e.g. {scan.unreadable[0][1]}" if scan.unreadable else ""
        raise InputError(f"no DICOM image series found{reason}", folder)
    if series is not None:
        chosen = [s for s in found if series in (s.key, s.uid, str(s.header.series_number))]
        if len(chosen) != 1:
            names = ", ".join(f"{s.key} ({s.header.description or 'no description'})" for s in found)
            raise InputError(f"no single series {series!r} in the reference folder; it has: {names}", folder)
    elif len(found) > 1:
        names = ", ".join(f"{s.key} ({s.header.description or 'no description'})" for s in found)
        raise InputError(f"the reference folder holds {len(found)} series ({names}); pick the T2WI with --series", folder)
    else:
        chosen = found
    dicom_series = chosen[0]
    if len(dicom_series.volumes) > 1:
        labels = ", ".join(v.label for v in dicom_series.volumes)
        raise InputError(f"reference series {dicom_series.key} holds {len(dicom_series.volumes)} volumes ({labels}); "
                         "a SEG references one volume: use the T2WI series", folder)
    volume = dicom_series.volumes[0]
    if volume.problems:
        raise InputError(f"reference series {dicom_series.key} is incomplete or irregular: {volume.problems[0]}", folder)
    if any(frame.frame is not None for frame in volume.frames):
        raise InputError("multi-frame (enhanced) reference images are not supported for SEG export; "
                         "use the classic single-frame series", folder)
    image = volume.image()
    datasets = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for frame in volume.frames:
            datasets.append(pydicom.dcmread(str(frame.path)))
    return ReferenceSeries(
        folder=folder, image=image, datasets=datasets, files=[f.path for f in volume.frames],
        series_uid=dicom_series.uid, patient_id=dicom_series.header.patient_id, description=dicom_series.header.description,
    )


@dataclass
class PreparedMask:
    mask: sitk.Image  # uint8, 0/1, on the reference grid
    warnings: list[str] = field(default_factory=list)
    resampled: bool = False
    inside_fraction: float = 1.0  # fraction of the tumour (by volume) inside the reference


def clean_image(image: sitk.Image) -> sitk.Image:
    """A copy with the voxels and geometry only: header text (NIfTI descrip, NRRD fields) dropped."""
    clean = sitk.GetImageFromArray(sitk.GetArrayFromImage(image), isVector=image.GetNumberOfComponentsPerPixel() > 1)
    clean.CopyInformation(image)
    for key in clean.GetMetaDataKeys():
        clean.EraseMetaData(key)
    return clean


def binary_mask(mask: sitk.Image, what: str = "mask", where: str | Path | None = None) -> tuple[sitk.Image, list[str]]:
    """uint8 0/1 copy of `mask`; InputError (io.mask_checks) for a probability map, a multi-label map,
    negative values or an implausible tumour (a label map is never silently merged into one tumour)."""
    return tumour_mask(mask, where, what), []


def _inside_fraction(mask: sitk.Image, reference: sitk.Image) -> float:
    """Fraction of the mask's foreground voxel centres that lie inside the reference volume."""
    zyx = np.argwhere(sitk.GetArrayViewFromImage(mask) != 0)
    if zyx.size == 0:
        return 0.0
    if len(zyx) > 200_000:  # a sample is enough for a fraction
        zyx = zyx[np.linspace(0, len(zyx) - 1, 200_000).astype(int)]
    points = zyx[:, ::-1] @ index_to_physical_matrix(mask)[:3, :3].T + np.asarray(mask.GetOrigin())
    inverse = np.linalg.inv(index_to_physical_matrix(reference))
    indices = points @ inverse[:3, :3].T + inverse[:3, 3]
    inside = np.all((indices >= -0.5) & (indices <= np.asarray(reference.GetSize()) - 0.5), axis=1)
    return float(inside.mean())


def mask_on_reference(mask: sitk.Image, reference: sitk.Image | None, what: str = "mask",
                      where: str | Path | None = None) -> PreparedMask:
    """Binary mask on `reference`'s grid (resampled with a warning if needed; InputError if disjoint)."""
    binary, warnings = binary_mask(mask, what, where)
    if not sitk.GetArrayViewFromImage(binary).any():
        raise InputError(f"{what} is empty (no tumour voxels): nothing to export")
    if reference is None or same_grid(binary, reference):
        return PreparedMask(mask=clean_image(binary), warnings=warnings)
    inside = _inside_fraction(binary, reference)
    if inside == 0.0:
        raise InputError(
            f"{what} does not overlap the reference image: none of its tumour voxels lies inside the reference "
            f"volume (mask origin {tuple(round(v, 1) for v in binary.GetOrigin())}, reference origin "
            f"{tuple(round(v, 1) for v in reference.GetOrigin())}); is it from the same patient and series?"
        )
    resampled = resample_to_reference(binary, reference, None, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    message = (f"{what} is not on the reference grid (size {binary.GetSize()} vs {reference.GetSize()}, spacing "
               f"{tuple(round(s, 3) for s in binary.GetSpacing())} vs {tuple(round(s, 3) for s in reference.GetSpacing())}): "
               "resampled onto it (nearest neighbour, physical space)")
    warnings.append(message)
    if inside < 0.999:
        warnings.append(f"{100 * (1 - inside):.1f}% of the tumour lies outside the reference volume and was cut off")
    if not sitk.GetArrayViewFromImage(resampled).any():
        raise InputError(f"{what} is empty after resampling onto the reference grid (the tumour is smaller than a "
                         "reference voxel or lies between its slices)")
    for warning in warnings:
        log.warning(warning)
    return PreparedMask(mask=clean_image(resampled), warnings=warnings, resampled=True, inside_fraction=inside)


def load_reference_image(reference: str | Path) -> tuple[sitk.Image, str]:
    """The reference grid from an image file or a DICOM series folder; (image, PatientID or '')."""
    reference = Path(reference)
    if reference.is_dir():
        series = load_reference_series(reference)
        return series.image, series.patient_id
    return read_image(reference), ""
