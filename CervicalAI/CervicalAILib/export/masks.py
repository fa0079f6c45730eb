"""Export of a mask file: NIfTI masks with clean headers, and `.seg.nrrd`/NIfTI files of a reviewed mask.

The mask is brought onto its reference grid by `export.reference.mask_on_reference`, as in every exporter.
"""

from __future__ import annotations

import logging
from pathlib import Path

import SimpleITK as sitk

from CervicalAILib.contracts.case_identity import check_case, read_record
from CervicalAILib.core import atomic
from CervicalAILib.core.errors import InputError
from CervicalAILib.core.hashing import sha256_file
from CervicalAILib.core.output_guard import check_output_path
from CervicalAILib.export import manifest as manifest_module
from CervicalAILib.export.reference import clean_image, load_reference_image, mask_on_reference
from CervicalAILib.export.seg_nrrd import write_seg_nrrd
from CervicalAILib.io.images import read_image, write_image
from CervicalAILib.review.record import require_review

log = logging.getLogger(__name__)


def write_nifti_mask(mask: sitk.Image, path: str | Path) -> Path:
    """Write a binary uint8 mask as NIfTI (.nii.gz), headers free of any text, atomically."""
    path = Path(path)
    if not path.name.endswith((".nii.gz", ".nii")):
        raise InputError("a NIfTI mask file name ends with .nii.gz or .nii", path)
    return write_image(clean_image(mask), path)


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
