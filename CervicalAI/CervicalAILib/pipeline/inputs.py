"""The readout's inputs: one patient's study, reviewed tumour mask, clinical values and transforms, checked.

`load_inputs` reads them from disk into `ReadoutInputs` (each sequence on its own acquisition grid; the
mask, its review record and the segmentation summary beside it; where every image came from, hashed);
`check_mask`, `derive_clinical` and `check_clinical_keys` are the checks the readout applies to them
(pipeline/readout.py).
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from CervicalAILib.contracts.case_folder import require_native_grids
from CervicalAILib.contracts.case_identity import check_case, read_record
from CervicalAILib.contracts.case_identity import image_record as provenance_record
from CervicalAILib.contracts.clinical import validate_clinical
from CervicalAILib.contracts.segmentation import SEGMENTATION_SUMMARY
from CervicalAILib.core.errors import InputError
from CervicalAILib.core.hashing import sha256_file
from CervicalAILib.core.json_input import read_json
from CervicalAILib.io.case import read_transforms
from CervicalAILib.io.geometry import label_fraction_inside, resample_to_reference, same_grid
from CervicalAILib.io.images import read_image
from CervicalAILib.io.mask_checks import tumour_mask
from CervicalAILib.registration.rule import stored_in_use
from CervicalAILib.review.record import read_review
from CervicalAILib.scoring.staging import C_LNM_SHORT_AXIS_MM
from CervicalAILib.segmentation.outputs import no_anatomy_sentence
from CervicalAILib.study.load import load_study, require_role

# Keys a clinical.json may hold besides the clinical fields without a warning (bookkeeping, not inputs).
BOOKKEEPING_KEYS = {"case_id", "patient_id", "pseudonym"}
MIN_MASK_VOXELS = 10  # fewer voxels cannot carry texture; pyradiomics refuses such regions too
MIN_TUMOUR_INSIDE = 0.999  # as the radiomics extraction: a mask cut by the image border is refused


@dataclass
class ReadoutInputs:
    """What a readout needs; `images` maps roles to each sequence on its own acquisition grid."""

    images: dict[str, sitk.Image]
    mask: sitk.Image
    clinical: dict[str, Any]
    case_id: str
    center: str | None = None
    image_records: dict[str, dict[str, Any]] = field(default_factory=dict)  # role -> path, sha256, series
    mask_path: Path | None = None
    transforms: dict[str, sitk.Transform] = field(default_factory=dict)
    segmentation_summary: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)  # found while reading the inputs (provenance, unused keys)
    clinical_path: Path | None = None  # the file the clinical values came from (named in their errors)


def check_mask(mask: sitk.Image, t2: sitk.Image, warnings: list[str], where: str = "tumour mask",
               path: str | Path | None = None) -> sitk.Image:
    """The mask as uint8 0/1 on the T2WI grid; InputError (naming `path`) when it cannot describe a tumour there."""
    if mask.GetDimension() != 3:
        raise InputError(f"the {where} must be a 3D image, got {mask.GetDimension()}D", path)
    if not same_grid(mask, t2):
        inside = label_fraction_inside(mask, t2)
        if inside == 0.0:
            raise InputError(f"the {where} does not overlap the T2WI (different position in space)", path)
        if inside < MIN_TUMOUR_INSIDE:
            # a tumour cut at the image border would be scored as a smaller tumour
            raise InputError(f"{100 * (1 - inside):.1f}% of the {where} lies outside the T2WI: the readout would "
                             "describe a truncated tumour (check that the mask belongs to this study)", path)
        warnings.append(f"the {where} is not on the T2WI grid: resampled onto it (nearest neighbour)")
        mask = resample_to_reference(mask, t2, interpolator=sitk.sitkNearestNeighbor, pixel_type=sitk.sitkUInt8)
    mask = sitk.Cast(mask != 0, sitk.sitkUInt8)
    count = int(np.count_nonzero(sitk.GetArrayViewFromImage(mask)))
    if count == 0:
        raise InputError(f"the {where} is empty (no tumour voxel on the T2WI)", path)
    if count < MIN_MASK_VOXELS:
        raise InputError(
            f"the {where} has only {count} voxel(s); at least {MIN_MASK_VOXELS} are needed for radiomics and deep features",
            path)
    return mask


def check_clinical_keys(values: dict[str, Any], used: set[str], warnings: list[str]) -> None:
    """InputError for a key that looks like a misspelt clinical field (its value would be ignored and the
    reader told it is missing); a warning listing the other keys no model uses."""
    known = sorted(used)
    unused = []
    for key in values:
        if key in used or key in BOOKKEEPING_KEYS:
            continue
        close = difflib.get_close_matches(str(key).lower(), known, n=1, cutoff=0.8)
        if close and (close[0] not in values or str(key).lower() == close[0]):
            raise InputError(f"clinical value {key!r} is not a known field: did you mean {close[0]!r}? (known fields: "
                             f"{', '.join(known)})")
        unused.append(str(key))
    if unused:
        warnings.append(f"clinical value(s) not used by any model and left out of the readout: {', '.join(unused)}")


def derive_clinical(values: dict[str, Any]) -> dict[str, Any]:
    """Validated clinical values; c_lnm from the short axis (seed 004: >= 10 mm) when not given."""
    clean = validate_clinical(values)
    short = clean.get("ln_short_axis_mm")
    if clean.get("c_lnm") is None and short is not None:
        clean["c_lnm"] = int(short >= C_LNM_SHORT_AXIS_MM)
    elif clean.get("c_lnm") is not None:
        clean["c_lnm"] = int(clean["c_lnm"])  # validate_clinical parsed it as yes/no
        if short is not None and clean["c_lnm"] != int(short >= C_LNM_SHORT_AXIS_MM):
            raise InputError(
                f"clinical values disagree: c_lnm={clean['c_lnm']} but ln_short_axis_mm={short:g} mm "
                "(c_LNM means a short axis >= 10 mm)"
            )
    return clean


def load_inputs(
    case: str | Path,
    mask_path: str | Path,
    clinical: dict[str, Any] | str | Path,
    transforms_dir: str | Path | None = None,
    center: str | None = None,
) -> ReadoutInputs:
    """Read the study, mask, clinical values and (optional) registration transforms from disk."""

    case = Path(case)
    require_native_grids(case)
    study = load_study(case)
    require_role(study, "T2W", "the tumour mask is defined on the T2WI grid")
    images = {role: study.image(role) for role in study.roles_present()}
    image_records = {role: image_record(study.series_for(role)) for role in images}
    warnings: list[str] = []
    clinical_path = None
    if isinstance(clinical, (str, Path)):
        clinical_path = Path(clinical)
        clinical = read_clinical_file(clinical)
    mask_path = Path(mask_path)
    mask = tumour_mask(read_image(mask_path), mask_path)
    case_id = case.name if case.is_dir() else case.stem
    # whose mask is it? segmentation.json beside an automatic mask, or the case folder a labels/ mask is in
    record, record_path = read_record(mask_path.parent)
    if record is None and mask_path.parent.name == "labels" and (mask_path.parent.parent / "T2W.nii.gz").is_file():
        mask_case = mask_path.parent.parent
        if mask_case.resolve() != case.resolve():
            record = {"case_id": mask_case.name, "images": {"T2W": provenance_record(read_image(mask_case / "T2W.nii.gz"))}}
            record_path = mask_path
        else:
            record, record_path = {"case_id": case_id, "images": {}}, mask_path  # the case's own label
    check_case(record, record_path, images, f"the tumour mask {mask_path.name}", case_id, warnings=warnings)
    transforms_source = Path(transforms_dir) if transforms_dir else case
    if transforms_dir:
        if not transforms_source.is_dir():
            raise InputError("--transforms folder not found" if not transforms_source.exists()
                             else "--transforms must be a folder (the output of study register or segment)",
                             transforms_source)
        if not (transforms_source / "transforms").is_dir() or not any((transforms_source / "transforms").glob("*.tfm")):
            raise InputError("holds no registration transforms (transforms/<ROLE>.tfm, written by `cervicalai study "
                             "register` or `cervicalai segment`)", transforms_source)
    transforms = read_transforms(transforms_source)
    if transforms:
        record, record_path = read_record(transforms_source)
        if record is None and not transforms_dir:
            record, record_path = {"case_id": case_id, "images": {}}, None  # the case folder's own transforms
        # the sequences a transform will carry the mask onto (those on the T2WI grid need none) must be the
        # images it was computed for
        check_case(record, record_path, images, "the registration transforms", case_id,
                   roles=stored_in_use(images, transforms),
                   warnings=warnings)
    segmentation_summary = None
    seg_json = mask_path.parent / SEGMENTATION_SUMMARY
    if seg_json.is_file():  # validated against its schema by read_record above
        segmentation_summary = read_json(seg_json, "segmentation summary")
    require_contour_where_no_cervix(mask_path, segmentation_summary)
    if center is None:
        center = (clinical or {}).get("center")
    if center is not None:
        try:
            center = validate_clinical({"center": center})["center"]
        except InputError as exc:
            raise InputError(exc.message, clinical_path) from exc
    return ReadoutInputs(
        images=images,
        mask=mask,
        clinical=dict(clinical or {}),
        case_id=case_id,
        center=None if center is None else str(center),
        image_records=image_records,
        mask_path=mask_path,
        transforms=transforms,
        segmentation_summary=segmentation_summary,
        warnings=warnings,
        clinical_path=clinical_path,
    )


def require_contour_where_no_cervix(mask_path: Path, segmentation_summary: dict[str, Any] | None) -> None:
    """InputError when the automatic segmentation beside the mask recognised no cervix or uterus
    (its anatomy gate) and the mask has no valid review record: a risk is then computed only from
    a contour a reader drew or confirmed, never from one nobody checked."""
    sentence = no_anatomy_sentence(segmentation_summary)
    if sentence is not None and not read_review(mask_path).reviewed:
        raise InputError(
            f"{sentence} (segmentation.json beside the "
            "mask): predict scores only a reviewed contour here - draw or check the tumour in the Segment module "
            "and mark it as reviewed", mask_path,
        )


def read_clinical_file(path: str | Path) -> dict[str, Any]:
    """clinical.json as a dict; InputError naming the file when it is missing, not strict JSON (duplicate
    keys, NaN) or not an object."""
    clinical_path = Path(path)
    clinical = read_json(clinical_path, "clinical values file")
    if not isinstance(clinical, dict):
        raise InputError(f"must hold a JSON object of clinical values, not a JSON {type(clinical).__name__}",
                         clinical_path)
    return clinical


def image_record(series) -> dict[str, Any]:
    """Where a sequence came from, absolute and hashed: the image file, or the DICOM series folder
    with its SeriesInstanceUID and one SHA-256 over its files' SHA-256s (in file-name order)."""
    record: dict[str, Any] = {"path": str(Path(series.path).resolve()), "source": series.source}
    if series.source == "dicom":
        files = sorted({str(frame.path) for volume in series.volumes for frame in volume.frames})
        digest = hashlib.sha256("\n".join(sha256_file(f) for f in files).encode()).hexdigest()
        record.update({"sha256": digest, "sha256_of": "the series' files' SHA-256s, one per line, in file-name order",
                       "series_uid": series.uid, "series_number": series.number, "n_files": len(files)})
        if series.b_value is not None:
            record["b_value"] = series.b_value
    else:
        record["sha256"] = sha256_file(series.path)
    return record
