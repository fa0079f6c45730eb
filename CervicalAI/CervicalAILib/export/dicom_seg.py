"""DICOM SEG export of a tumour mask with highdicom, referencing the source T2WI series.

The SEG is a binary segmentation with one segment, "tumor", coded in SNOMED CT:

    property category  SCT 49755003  Morphologically Altered Structure
    property type      SCT 86049000  Neoplasm, Primary
    anatomic region    SCT 71252005  Cervix uteri

(`CervicalAILib.contracts.terminology`, the codes the Slicer segment and the `.seg.nrrd` carry too).

Its SegmentAlgorithmType comes from the mask's review record (`CervicalAILib.review.record`):
SEMIAUTOMATIC for a reviewed contour the reader edited from an automatic one, MANUAL for any
other reviewed contour (drawn by the reader, or an automatic contour accepted unchanged),
AUTOMATIC when not reviewed; the model's name and version (Algorithm Identification) are given
wherever an automatic contour existed. Every frame of the reference series gets a SEG frame (empty frames
included), so the SEG maps one-to-one onto the source images.

The reference series and the mask on its grid: `export.reference`.
"""

from __future__ import annotations

import io
import logging
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from CervicalAILib import __version__
from CervicalAILib.contracts.case_identity import check_case, read_record
from CervicalAILib.contracts.terminology import ANATOMIC_REGION, CATEGORY, PROPERTY_TYPE
from CervicalAILib.core import atomic
from CervicalAILib.core.errors import InputError
from CervicalAILib.core.hashing import sha256_file
from CervicalAILib.core.output_guard import check_output_path
from CervicalAILib.core.progress import ProgressCallback, no_progress
from CervicalAILib.export import manifest as manifest_module
from CervicalAILib.export.reference import (
    SEGMENT_LABEL,
    ReferenceSeries,
    load_reference_series,
    mask_on_reference,
)
from CervicalAILib.io.dicom_write import save_dicom_file
from CervicalAILib.io.images import read_image
from CervicalAILib.review.record import require_review

log = logging.getLogger(__name__)

SEG_SERIES_NUMBER = 9901
SEG_SERIES_DESCRIPTION = "CervicalAI tumour segmentation"
IMAGE_FILES = ["IM*.dcm"]  # what --images-out writes (and --overwrite may replace)
TUMOUR_COLOR_RGB = (227, 26, 28)
# Type 2 attributes highdicom copies from the source images; absent ones are added empty.
TYPE2_SOURCE_ATTRIBUTES = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                           "ReferringPhysicianName", "AccessionNumber", "StudyID")


@dataclass
class DicomSegExport:
    path: Path
    manifest_path: Path
    algorithm_type: str
    warnings: list[str] = field(default_factory=list)
    image_files: list[Path] = field(default_factory=list)


def coded(concept: tuple[str, str, str]):
    from highdicom.sr import CodedConcept

    return CodedConcept(*concept)


def _source_images(reference: ReferenceSeries) -> list[Any]:
    """Copies of the reference data sets with the type 2 attributes highdicom needs present."""
    import copy

    sources = []
    for ds in reference.datasets:
        item = copy.copy(ds)  # shallow: only top-level attributes are added
        for keyword in TYPE2_SOURCE_ATTRIBUTES:
            if keyword not in item:
                setattr(item, keyword, "")
        sources.append(item)
    return sources


def build_segmentation(mask: sitk.Image, reference: ReferenceSeries, provenance: dict[str, Any],
                       segment_label: str = SEGMENT_LABEL, series_number: int = SEG_SERIES_NUMBER) -> Any:
    """A highdicom Segmentation of a binary mask on the reference grid (see the module docstring)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    array = sitk.GetArrayFromImage(mask).astype(np.uint8)  # (k, j, i) = (frames, rows, columns)
    if array.shape[0] != len(reference.datasets):
        raise InputError(f"mask has {array.shape[0]} slices on the reference grid, the series {len(reference.datasets)}")
    algorithm_type = provenance.get("algorithm_type", "AUTOMATIC")
    identification = None
    # the model is named wherever an automatic contour existed, also when a reader accepted it
    # unchanged (MANUAL); only a contour the reader drew alone has no algorithm
    if algorithm_type != "MANUAL" or provenance.get("origin", "automatic") != "manual":
        name, version = manifest_module.split_model_label(provenance.get("automatic_model"))
        identification = hd.AlgorithmIdentificationSequence(
            name=name, version=version, family=codes.DCM.ArtificialIntelligence, source="CervicalAI"
        )
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=segment_label,
        segmented_property_category=coded(CATEGORY),
        segmented_property_type=coded(PROPERTY_TYPE),
        algorithm_type=algorithm_type,
        algorithm_identification=identification,
        anatomic_regions=[coded(ANATOMIC_REGION)],
        display_color=hd.color.CIELabColor.from_rgb(*TUMOUR_COLOR_RGB),
    )
    reviewer = provenance.get("reviewer")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # single-component person names are common in real data
        seg = hd.seg.Segmentation(
            source_images=_source_images(reference),
            pixel_array=array,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[description],
            series_instance_uid=hd.UID(),
            series_number=series_number,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="CervicalAI",
            manufacturer_model_name="cervicalai",
            software_versions=str(__version__),
            device_serial_number="0",
            content_description="Primary cervical tumour",
            content_label="TUMOR",
            content_creator_name=reviewer.replace(" ", "^", 1) if reviewer else None,
            omit_empty_frames=False,
        )
    seg.SeriesDescription = SEG_SERIES_DESCRIPTION
    return seg


def read_dicom_seg(path: str | Path, reference: sitk.Image | None = None) -> sitk.Image:
    """The SEG's segments as a uint8 label image (value = segment number), LPS geometry from the SEG.

    With `reference`, resampled (nearest neighbour, physical space) onto its grid.
    """
    import highdicom as hd

    path = Path(path)
    if not path.is_file():
        raise InputError("SEG file not found", path)
    try:
        seg = hd.seg.segread(str(path))
    except Exception as exc:
        raise InputError(f"not a readable DICOM SEG ({exc})", path) from exc
    volume = seg.get_volume(combine_segments=True)
    affine = np.asarray(volume.affine, dtype=float)  # array index (a0, a1, a2) -> LPS
    image = sitk.GetImageFromArray(np.asarray(volume.array).astype(np.uint8))  # sitk (i, j, k) = (a2, a1, a0)
    columns = affine[:3, :3][:, ::-1]
    spacing = np.linalg.norm(columns, axis=0)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple(float(v) for v in (columns / spacing).reshape(-1)))
    image.SetOrigin(tuple(float(v) for v in affine[:3, 3]))
    if reference is not None:
        image = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return image


def export_dicom_seg(
    mask_path: str | Path,
    reference_dicom: str | Path,
    out_path: str | Path,
    *,
    series: str | None = None,
    overwrite: bool = False,
    deidentifier: Any = None,
    images_out: str | Path | None = None,
    segment_label: str = SEGMENT_LABEL,
    reviewed_only: bool = False,
    progress: ProgressCallback | None = None,
) -> DicomSegExport:
    """Write `out_path` (DICOM SEG) and `<out_path>.manifest.json`; see the module docstring.

    deidentifier: a `deidentify.Deidentifier`: the SEG (and the images written to `images_out`)
    get the PS3.15 profile with keyed pseudonyms/UIDs, so the SEG's references resolve to the
    de-identified images. images_out: folder for copies of the reference series (de-identified
    with `deidentifier`), for annotation partners who need the images with the SEG.
    reviewed_only: refuse (InputError naming the mask) a mask without a valid review record.
    """
    import pydicom

    progress = progress or no_progress
    out_path = Path(out_path)
    manifest_path = manifest_module.sidecar_path(out_path)
    images_dir = Path(images_out) if images_out is not None else None
    inputs = [mask_path, reference_dicom]
    check_output_path(out_path, inputs, overwrite=overwrite, kind="file")
    check_output_path(manifest_path, inputs, overwrite=overwrite, kind="file", option="the manifest")
    if images_dir is not None:
        check_output_path(images_dir, inputs + [out_path], overwrite=overwrite, owned=IMAGE_FILES,
                          option="--images-out")
    progress(0.05, "reading the reference series")
    reference = load_reference_series(reference_dicom, series)
    progress(0.3, "reading the mask")
    mask = read_image(mask_path)
    if reviewed_only:
        require_review(mask_path)
    prepared = mask_on_reference(mask, reference.image, f"mask {Path(mask_path).name}", mask_path)
    record, record_path = read_record(Path(mask_path).parent)
    check_case(record, record_path, {"T2W": reference.image}, f"the mask {Path(mask_path).name}",
               reference.patient_id or reference.folder.name, warnings=prepared.warnings)
    provenance = manifest_module.mask_provenance(mask_path)
    if deidentifier is not None and not reference.patient_id:
        raise InputError("the reference series has no PatientID to key the pseudonym on", reference.folder)
    progress(0.5, "building the DICOM SEG")
    seg = build_segmentation(prepared.mask, reference, provenance, segment_label)
    buffer = io.BytesIO()
    save_dicom_file(seg, buffer)
    dataset = pydicom.dcmread(io.BytesIO(buffer.getvalue()))
    image_files: list[Path] = []
    if deidentifier is not None:
        dataset = deidentifier.dataset(dataset, reference.patient_id, kind="segmentation")
        dataset.SeriesDescription = SEG_SERIES_DESCRIPTION  # engine-made text, safe to keep
        provenance = deidentifier.review_record(provenance, reference.patient_id)
        case_name = deidentifier.pseudonym(reference.patient_id)
    else:
        case_name = reference.patient_id or reference.folder.name
    if images_dir is not None:
        progress(0.7, "writing the reference images")
        with atomic.atomic_directory(images_dir, overwrite=overwrite, owned=IMAGE_FILES) as tmp_dir:
            for number, (ds, source) in enumerate(zip(reference.datasets, reference.files), start=1):
                target = tmp_dir / f"IM{number:04d}.dcm"
                if deidentifier is not None:
                    clean = deidentifier.dataset(ds, reference.patient_id, kind="image")
                    clean.SeriesDescription = "T2W"  # the role, not the site's free text
                    save_dicom_file(clean, target)
                else:
                    shutil.copyfile(source, target)
        image_files = sorted(images_dir.iterdir())
    case = {
        "case": case_name,
        "sequences": ["T2W"],
        "reference_series": {
            "series_instance_uid": deidentifier.uid(reference.series_uid) if deidentifier else reference.series_uid,
            "slices": len(reference.datasets),
            "size": list(reference.image.GetSize()),
            "spacing_mm": [round(s, 5) for s in reference.image.GetSpacing()],
        },
        "segment": {"label": segment_label, "category": CATEGORY, "type": PROPERTY_TYPE, "anatomic_region": ANATOMIC_REGION},
        "mask": provenance,
        "mask_resampled": prepared.resampled,
        "warnings": manifest_module.scrub(prepared.warnings, deidentifier,
                                          {reference.patient_id: case_name, reference.folder.name: case_name}),
    }
    if deidentifier is None:
        case["source"] = {"mask": str(mask_path), "reference_dicom": str(reference.folder)}
    progress(0.85, "writing the SEG and its manifest")
    # Order: reference images, manifest, SEG last (renamed into place from a temporary file), so
    # a crash never leaves a SEG that looks complete without its manifest.
    with atomic.atomic_path(out_path) as tmp:
        save_dicom_file(dataset, tmp)
        files = {out_path.name: sha256_file(tmp)}
        for path in image_files:
            files[path.relative_to(out_path.parent).as_posix() if path.is_relative_to(out_path.parent) else str(path)] = (
                sha256_file(path))
        document = manifest_module.build_manifest("dicom-seg", [case], files, deidentifier=deidentifier,
                                                  warnings=case["warnings"])
        out_path.unlink(missing_ok=True)  # replacing: the old SEG must not stand beside the new manifest
        manifest_module.write_manifest(manifest_path, document)
    progress(1.0, f"DICOM SEG written: {out_path}")
    return DicomSegExport(path=out_path, manifest_path=manifest_path, algorithm_type=provenance["algorithm_type"],
                          warnings=prepared.warnings, image_files=image_files)
