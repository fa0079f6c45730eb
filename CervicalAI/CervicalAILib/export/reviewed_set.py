"""Export the reviewed set of a review worklist through the existing exporters, with a manifest.

Which mask a case contributes:

- one reader: that reader's newest review of the case, when its record is valid (the mask still
  has its recorded SHA-256); cases not reviewed by the reader are excluded with the reason;
- several readers with `consensus="majority"`: cases that every named reader reviewed; a voxel is
  tumour when MORE than half of the readers marked it (two readers: both, i.e. the intersection;
  three: at least two). The consensus mask gets a review record of its own whose reviewer is
  "majority of A, B" (edit metrics against the automatic contour), so exporters and
  `--reviewed-only` treat it as reviewed while the record says how it was made.

Formats:

- "cases": annotated case folders `<out>/<case_id>/` (the case's images and clinical.json copied,
  `labels/tumor.nii.gz` = the selected mask with its review record and notes) plus cohort.csv and
  manifest.json: a cohort that `cervicalai extract` reads (for two readers' `cervicalai icc`)
  and that `cervicalai export nnunet` takes;
- "nnunet": an nnU-Net v2 raw data set through `export.nnunet.export_nnunet` (one reader;
  for a consensus export the cases first, then `cervicalai export nnunet`);
- "seg-nrrd" / "nifti": one file per case `<out>/<case_id>.seg.nrrd|.nii.gz` on the T2WI grid with
  its `.manifest.json` (`export.masks.export_mask_file`);
- "dicom-seg": one DICOM SEG per case `<out>/<case_id>.seg.dcm` (`export.dicom_seg`), referencing the
  T2WI series of the case's DICOM study under `dicom_root/<case_id>/`.

Every output folder is built under a temporary name and appears complete; nothing existing is
replaced without `overwrite`.
"""

from __future__ import annotations

import csv
import io
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from CervicalAILib.contracts.review import record_path
from CervicalAILib.core import atomic
from CervicalAILib.core.errors import InputError
from CervicalAILib.core.progress import ProgressCallback, no_progress
from CervicalAILib.export import manifest as manifest_module
from CervicalAILib.export.dicom_seg import export_dicom_seg
from CervicalAILib.export.masks import export_mask_file
from CervicalAILib.export.nnunet import export_nnunet
from CervicalAILib.io.case import CLINICAL_FILE, ROLES, find_role_file
from CervicalAILib.io.images import read_image, write_image
from CervicalAILib.review import record as engine_review
from CervicalAILib.review.worklist import REVIEWED, ReviewEntry, Worklist, WorklistCase
from CervicalAILib.study.load import load_study

FORMATS = ("cases", "nnunet", "seg-nrrd", "nifti", "dicom-seg")
CONSENSUS_RULES = ("majority",)


@dataclass
class SelectedCase:
    case: WorklistCase
    reviews: list[ReviewEntry]  # one per reader, in the readers' order


@dataclass
class ReviewedSetExport:
    path: Path
    cases: list[str]
    excluded: list[dict[str, str]] = field(default_factory=list)


def select_reviewed(worklist: Worklist, readers: list[str], consensus: str | None = None
                    ) -> tuple[list[SelectedCase], list[dict[str, str]]]:
    """The cases every named reader reviewed (valid record), and the excluded ones with the reason."""
    if not readers:
        raise InputError("name the reader whose reviewed set to export (--reader NAME)")
    lists = [worklist.reader(name) for name in readers]
    if len({r.folder_name for r in lists}) != len(lists):
        raise InputError(f"a reader is named twice: {', '.join(readers)}")
    if len(lists) > 1 and consensus not in CONSENSUS_RULES:
        raise InputError(f"several readers need a consensus rule (--consensus {'/'.join(CONSENSUS_RULES)})")
    if len(lists) == 1 and consensus is not None:
        raise InputError("a consensus rule needs at least two readers")
    selected, excluded = [], []
    for case in worklist.cases:
        reviews, reasons = [], []
        for reader in lists:
            status = reader.status(case.case_id)
            latest = status.latest
            if status.status != REVIEWED or latest is None:
                reasons.append(f"{reader.folder_name}: {status.status}")
            elif not latest.record.reviewed:
                reasons.append(f"{reader.folder_name}: {latest.folder.name} was changed after its review")
            else:
                reviews.append(latest)
        if reasons:
            excluded.append({"case": case.case_id, "reason": "; ".join(reasons)})
        else:
            selected.append(SelectedCase(case, reviews))
    if not selected:
        raise InputError("no case to export: " + "; ".join(f"{e['case']} ({e['reason']})" for e in excluded))
    return selected, excluded


def majority_mask(masks: list[sitk.Image]) -> sitk.Image:
    """Voxels marked by more than half of the masks (all on one grid)."""
    arrays = [sitk.GetArrayViewFromImage(mask) > 0 for mask in masks]
    if any(a.shape != arrays[0].shape for a in arrays):
        raise InputError("the readers' masks of a case are on different grids")
    votes = np.sum(arrays, axis=0)
    image = sitk.GetImageFromArray((2 * votes > len(masks)).astype(np.uint8))
    image.CopyInformation(masks[0])
    return image


def _write_selected_mask(selected: SelectedCase, readers: list[str], target: Path) -> None:
    """labels/tumor.nii.gz (+ record, notes) of one case in the export."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if len(selected.reviews) == 1:  # the reader's files as they are: the record's SHA-256 still holds
        review = selected.reviews[0]
        shutil.copyfile(review.mask_path, target)
        shutil.copyfile(record_path(review.mask_path), record_path(target))
        return
    masks = [read_image(review.mask_path) for review in selected.reviews]
    consensus = majority_mask(masks)
    write_image(consensus, target)
    automatic = None
    if selected.case.automatic_mask_path is not None:
        automatic = sitk.Cast(read_image(selected.case.automatic_mask_path) > 0, sitk.sitkUInt8)
        automatic.CopyInformation(consensus)
    engine_review.mark_reviewed(target, "majority of " + ", ".join(readers), automatic, selected.case.automatic_model())


def _cohort_rows(worklist: Worklist, case_ids: list[str]) -> str:
    """cohort.csv of the exported cases: the source cohort.csv's rows when there is one."""
    source = worklist.root / "cohort.csv"
    out = io.StringIO()
    if source.is_file():
        with source.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows = [row for row in reader if row.get("case_id") in case_ids]
            if reader.fieldnames and "case_id" in reader.fieldnames:
                writer = csv.DictWriter(out, fieldnames=reader.fieldnames, lineterminator="\n")
                writer.writeheader()
                writer.writerows(rows)
                missing = set(case_ids) - {row["case_id"] for row in rows}
                writer.writerows({"case_id": case_id} for case_id in sorted(missing))
                return out.getvalue()
    out.write("case_id\n" + "".join(f"{case_id}\n" for case_id in case_ids))
    return out.getvalue()


def export_reviewed_set(
    worklist: Worklist,
    readers: list[str],
    out: str | Path,
    fmt: str,
    *,
    consensus: str | None = None,
    dataset_id: int | None = None,
    name: str | None = None,
    dicom_root: str | Path | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> ReviewedSetExport:
    """Export the reviewed set (see the module doc); returns the output path and the cases in it."""
    progress = progress or no_progress
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r} (choose {', '.join(FORMATS)})")
    out = Path(out)
    atomic.refuse_taken_folder(out, overwrite)
    selected, excluded = select_reviewed(worklist, readers, consensus)
    if fmt == "nnunet":
        if len(readers) != 1:
            raise InputError("an nnU-Net export of a consensus: export --format cases first, then "
                             "`cervicalai export nnunet CASES/* --reviewed-only`")
        if dataset_id is None or not name:
            raise InputError("an nnU-Net export needs --dataset-id and --name")
        folders = [str(item.case.folder) for item in selected]
        masks = {str(item.case.folder): item.reviews[0].mask_path for item in selected}
        result = export_nnunet(folders, out, dataset_id, name, overwrite=overwrite, reviewed_only=True, masks=masks,
                               progress=progress)
        return ReviewedSetExport(result.path, result.cases, excluded + result.excluded)
    if fmt == "dicom-seg" and dicom_root is None:
        raise InputError("a DICOM SEG export needs --dicom-root (a folder with each case's DICOM study as <case_id>/)")

    exported: list[str] = []
    entries: list[dict[str, Any]] = []
    with atomic.atomic_directory(out, overwrite=overwrite) as tmp:
        for number, item in enumerate(selected):
            case = item.case
            progress(number / len(selected), f"{case.case_id} ({number + 1}/{len(selected)})")
            if fmt == "cases":
                folder = tmp / case.case_id
                folder.mkdir()
                for role in ROLES:
                    image = find_role_file(case.folder, role)
                    if image is not None:
                        shutil.copyfile(image, folder / image.name)
                if (case.folder / CLINICAL_FILE).is_file():
                    shutil.copyfile(case.folder / CLINICAL_FILE, folder / CLINICAL_FILE)
                mask = folder / "labels" / "tumor.nii.gz"
                _write_selected_mask(item, readers, mask)
                entries.append({"case": case.case_id, "source": str(case.folder), "readers": readers,
                                "ratings": [review.rating for review in item.reviews],
                                "mask": manifest_module.mask_provenance(mask)})
            else:
                work = tmp / ".masks" / case.case_id / "tumor.nii.gz"
                _write_selected_mask(item, readers, work)
                if fmt == "dicom-seg":
                    try:
                        _export_dicom_seg(work, Path(dicom_root) / case.case_id, tmp / f"{case.case_id}.seg.dcm")
                    except InputError as exc:  # e.g. no DICOM study for the case: left out, with the reason
                        excluded.append({"case": case.case_id, "reason": str(exc)})
                        shutil.rmtree(tmp / ".masks" / case.case_id)
                        continue
                else:
                    suffix = ".seg.nrrd" if fmt == "seg-nrrd" else ".nii.gz"
                    export_mask_file(work, tmp / f"{case.case_id}{suffix}", kind=fmt,
                                     reference=find_role_file(case.folder, "T2W"), reviewed_only=True)
                shutil.rmtree(tmp / ".masks" / case.case_id)
            exported.append(case.case_id)
        shutil.rmtree(tmp / ".masks", ignore_errors=True)
        if not exported:
            raise InputError("no case could be exported: " + "; ".join(f"{e['case']} ({e['reason']})" for e in excluded))
        if fmt == "cases":
            atomic.write_text(tmp / "cohort.csv", _cohort_rows(worklist, exported))
            document = manifest_module.build_manifest(
                "reviewed-cases", entries, manifest_module.file_hashes(tmp), excluded=excluded,
                details={"worklist": str(worklist.source), "readers": readers, "consensus": consensus},
            )
            manifest_module.write_manifest(tmp / manifest_module.MANIFEST_FILE, document)
    progress(1.0, f"exported {len(exported)} case(s) to {out}")
    return ReviewedSetExport(out, exported, excluded)


def _export_dicom_seg(mask: Path, study: Path, out: Path) -> None:
    """A DICOM SEG referencing the T2WI series of the case's DICOM study."""
    if not study.is_dir():
        raise InputError("no DICOM study for the case under --dicom-root", study)
    series = load_study(study).series_for("T2W")
    if series is None or series.source != "dicom":
        raise InputError("no T2-weighted DICOM series in the case's study", study)
    export_dicom_seg(mask, series.path, out, series=series.uid, reviewed_only=True)
