"""Masks for export: onto the reference grid, binary, clean headers; NIfTI mask files.

Every exporter goes through `mask_on_reference`: the tumour mask is made binary (any non-zero
voxel is tumour) and, when it is not on the reference grid (the T2WI series it belongs to), it
is resampled onto it in physical space with nearest-neighbour interpolation and a warning. A
mask that does not overlap the reference at all is refused: it belongs to another series or
another patient.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from CervicalAILib.core import atomic
from CervicalAILib.core.errors import InputError
from CervicalAILib.core.hashing import sha256_file
from CervicalAILib.io.geometry import index_to_physical_matrix, resample_to_reference, same_grid
from CervicalAILib.io.images import read_image

log = logging.getLogger(__name__)


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
    from CervicalAILib.io.mask_checks import tumour_mask

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


def write_nifti_mask(mask: sitk.Image, path: str | Path) -> Path:
    """Write a binary uint8 mask as NIfTI (.nii.gz), headers free of any text, atomically."""
    path = Path(path)
    if not path.name.endswith((".nii.gz", ".nii")):
        raise InputError("a NIfTI mask file name ends with .nii.gz or .nii", path)
    return atomic.write_image(clean_image(mask), path)


def load_reference_image(reference: str | Path) -> tuple[sitk.Image, str]:
    """The reference grid from an image file or a DICOM series folder; (image, PatientID or '')."""
    reference = Path(reference)
    if reference.is_dir():
        from CervicalAILib.export.dicom_seg import load_reference_series

        series = load_reference_series(reference)
        return series.image, series.patient_id
    return read_image(reference), ""


def export_mask_file(
    mask_path: str | Path,
    out_path: str | Path,
    *,
    kind: str,
    reference: str | Path | None = None,
    overwrite: bool = False,
    deidentifier=None,
    patient_id: str | None = None,
    reviewed_only: bool = False,
) -> tuple[Path, Path, list[str]]:
    """Export one mask as NIfTI (`kind="nifti"`) or Slicer `.seg.nrrd` (`kind="seg-nrrd"`) with a
    `<file>.manifest.json` beside it; optionally onto a reference grid. Returns (file, manifest, warnings).

    The patient identity (for the pseudonym and the date offset when de-identifying) is
    `patient_id`, else the reference series' PatientID, else the case folder the mask is in.
    reviewed_only: refuse (InputError naming the mask) a mask without a valid review record.
    """
    from CervicalAILib.contracts.case_identity import check_case, read_record
    from CervicalAILib.core.output_guard import check_output_path
    from CervicalAILib.export import manifest as manifest_module
    from CervicalAILib.export.seg_nrrd import write_seg_nrrd

    if kind not in ("nifti", "seg-nrrd"):
        raise InputError(f"unknown mask file kind {kind!r}")
    mask_path, out_path = Path(mask_path), Path(out_path)
    suffixes = (".nii.gz", ".nii") if kind == "nifti" else (".seg.nrrd",)
    if not out_path.name.endswith(suffixes):
        raise InputError(f"the {kind} file name must end with {' or '.join(suffixes)}", out_path)
    manifest_path = manifest_module.sidecar_path(out_path)
    for path, option in ((out_path, "--out"), (manifest_path, "the manifest")):
        check_output_path(path, [mask_path, reference], overwrite=overwrite, kind="file", option=option)
    reference_image, reference_patient = load_reference_image(reference) if reference is not None else (None, "")
    mask = read_image(mask_path)
    if reviewed_only:
        from CervicalAILib.review.record import require_review

        require_review(mask_path)
    prepared = mask_on_reference(mask, reference_image, f"mask {mask_path.name}", mask_path)
    record, record_path = read_record(mask_path.parent)
    if reference_image is not None:
        check_case(record, record_path, {"T2W": reference_image}, f"the mask {mask_path.name}",
                   reference_patient or str(reference), warnings=prepared.warnings)
    identity = patient_identity_of_mask(mask_path, patient_id, reference_patient, record,
                                        required=deidentifier is not None)
    provenance = manifest_module.mask_provenance(mask_path)
    case = {"case": deidentifier.pseudonym(identity) if deidentifier else identity, "sequences": ["T2W"],
            "mask": deidentifier.review_record(provenance, identity) if deidentifier else provenance,
            "grid": {"size": list(prepared.mask.GetSize()), "spacing_mm": [round(s, 5) for s in prepared.mask.GetSpacing()]},
            "mask_resampled": prepared.resampled,
            "warnings": manifest_module.scrub(prepared.warnings, deidentifier, {identity: "the patient"})}
    if deidentifier is None:
        case["source"] = {"mask": str(mask_path), "reference": str(reference) if reference else None}
    # the manifest first, the file last (renamed into place from a temporary file): a crash never
    # leaves an exported mask without its manifest
    with atomic.atomic_path(out_path) as tmp:
        if kind == "nifti":
            write_nifti_mask(prepared.mask, tmp)
        else:
            write_seg_nrrd(prepared.mask, tmp)
        files = {out_path.name: sha256_file(tmp)}
        document = manifest_module.build_manifest(kind, [case], files, deidentifier=deidentifier,
                                                  warnings=case["warnings"])
        out_path.unlink(missing_ok=True)  # replacing: the old file must not stand beside the new manifest
        manifest_module.write_manifest(manifest_path, document)
    return out_path, manifest_path, prepared.warnings


def patient_identity_of_mask(mask_path: Path, patient_id: str | None, reference_patient: str,
                             record: dict | None, required: bool) -> str:
    """Whose mask: --patient-id, else the reference series' PatientID, else the case recorded beside the mask
    (segmentation.json, written by `cervicalai segment`), else the case folder a labels/ mask is in.

    Never the name of the folder the mask happens to be in (two patients' `seg/` folders would get one
    pseudonym): when de-identifying (`required`) and none of these is known, InputError."""
    from CervicalAILib.export import manifest as manifest_module

    if patient_id and str(patient_id).strip():
        return str(patient_id).strip()
    if reference_patient:
        return reference_patient
    if record and record.get("case_id"):
        return str(record["case_id"])
    if mask_path.parent.name == "labels" and (mask_path.parent.parent / "T2W.nii.gz").exists():
        return manifest_module.patient_id_of_case(mask_path.parent.parent)
    if required:
        raise InputError("cannot tell which patient this mask belongs to (no --patient-id, no DICOM --reference, no "
                         "segmentation.json beside it, not in a case folder's labels/): give --patient-id so that the "
                         "pseudonym is the patient's", mask_path)
    return mask_path.parent.name
