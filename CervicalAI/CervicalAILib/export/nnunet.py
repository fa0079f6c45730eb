"""nnU-Net v2 raw data set from reviewed case folders: `DatasetNNN_NAME/`.

    DatasetNNN_NAME/dataset.json                 channel_names, labels, numTraining, file_ending
    DatasetNNN_NAME/imagesTr/<case>_0000.nii.gz  T2W, then _0001 ... in the order of channel_names
    DatasetNNN_NAME/labelsTr/<case>.nii.gz       0 background, 1 tumour, then the organs asked for (uint8)
    DatasetNNN_NAME/manifest.json                provenance and SHA-256 of every file

Everything is on each case's T2WI grid: sequences on another grid are rigidly co-registered
onto the T2WI (`registration.register_to_t2`; `registration="none"` resamples them in scanner
coordinates instead, for sequences known to be aligned); a tumour label on another grid is
resampled (nearest neighbour) with a warning.

Organs (`structures`, e.g. cervix, uterus, bladder): with them a site's nnU-Net learns the anatomy
too, and CervicalAI's anatomy gate can then check that model's tumour against its cervix/uterus
(`segment --nnunet-model`). They come from each case's `labels/organs.nii.gz`, read BY NAME
through its label table (`contracts.label_table.read_label_table`: `labels/organs.json` or the
generator's legend): label 2, 3, ... in the order asked for, the tumour (label 1) painted last,
over any organ. A case whose organ map lacks one of them is excluded with the reason, because
nnU-Net would learn "absent" from it. What the organ map is (the generator's truth for a
synthetic case, a site's own annotation) is the case folder's business; the manifest records
the file and its hash per case.

Channels: nnU-Net needs the same channels for every case. By default the data set has the
sequences that *every* selected case has (T2W first, then ADC, DWI, CET1), and the sequences some
cases lack are listed in the manifest's warnings; with explicit `channels`, cases lacking one of
them are excluded with the reason. Cases without a tumour label, with an empty one, or (with
`reviewed_only`) without a valid review record are excluded with the reason too; the export
fails when no case is left. The folder is built under a temporary name and checked against
nnU-Net's integrity rules (`check_nnunet_dataset`) before it appears.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from CervicalAILib.contracts.label_table import TUMOR, canonical_name, label_mask, read_label_table
from CervicalAILib.core import atomic
from CervicalAILib.core.errors import InputError
from CervicalAILib.core.output_guard import check_output_path
from CervicalAILib.core.progress import ProgressCallback, no_progress, sub_progress
from CervicalAILib.export import manifest as manifest_module
from CervicalAILib.export.reference import clean_image, mask_on_reference
from CervicalAILib.io.case import REQUIRED_ROLE, ROLES, is_case_folder, load_case
from CervicalAILib.io.geometry import resample_to_reference, same_grid
from CervicalAILib.io.images import read_image, write_image
from CervicalAILib.registration import register_to_t2

log = logging.getLogger(__name__)

FILE_ENDING = ".nii.gz"
LABELS = {"background": 0, TUMOR: 1}  # without organs
ORGAN_LABEL = "organs"  # labels/organs.nii.gz, the organ label map of a case folder
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")
CASE_ID_PATTERN = re.compile(r"[^A-Za-z0-9_\-.]")
OUTPUT_FILES = ["dataset.json", "manifest.json", "imagesTr/*", "labelsTr/*"]  # what --overwrite may replace


@dataclass
class NnUNetExport:
    path: Path
    cases: list[str]
    channels: list[str]
    excluded: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """'Dataset012_CervixTumour'; InputError for an id outside 1..999 or a name nnU-Net cannot parse."""
    if not isinstance(dataset_id, (int, np.integer)) or not 1 <= int(dataset_id) <= 999:
        raise InputError(f"nnU-Net data set id must be an integer from 1 to 999, got {dataset_id!r}")
    if not NAME_PATTERN.match(str(name)):
        raise InputError(f"nnU-Net data set name {name!r} must be letters, digits, '_' or '-' (no spaces)")
    return f"Dataset{int(dataset_id):03d}_{name}"


@dataclass
class _Case:
    folder: Path
    case_id: str
    patient_id: str
    image_paths: dict[str, Path]
    label_path: Path | None
    organ_path: Path | None
    registered: bool  # the folder came from `cervicalai study register` (sequences on the T2W grid)
    organ_table: dict[str, tuple[int, ...]] | None = None  # kept by _organ_problem when organs are asked for


def _open_case(folder: Path, label: str) -> _Case:
    if not is_case_folder(folder):
        raise InputError(f"not a case folder (expected {REQUIRED_ROLE}.nii.gz; convert a DICOM study first with "
                         "`cervicalai study register STUDY --out CASE`)", folder)
    case = load_case(folder)
    return _Case(
        folder=folder,
        case_id=case.case_id,
        patient_id=manifest_module.patient_id_of_case(folder),
        image_paths=dict(case.image_paths),
        label_path=case.label_paths.get(label),
        organ_path=case.label_paths.get(ORGAN_LABEL),
        registered=(folder / "registration.json").is_file(),
    )


def _on_t2_grid(images: dict[str, sitk.Image], registration: str, progress: ProgressCallback,
                **register_options: Any) -> tuple[dict[str, sitk.Image], dict[str, Any]]:
    """Every channel on the T2W grid; (images, registration records for those that moved)."""
    t2 = images[REQUIRED_ROLE]
    off_grid = [role for role in images if role != REQUIRED_ROLE and not same_grid(images[role], t2)]
    if not off_grid:
        return images, {}
    out = dict(images)
    if registration == "none":
        for role in off_grid:
            out[role] = resample_to_reference(images[role], t2, None, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        return out, {role: {"method": "resampled in scanner coordinates (no registration)"} for role in off_grid}
    subset = {REQUIRED_ROLE: t2, **{role: images[role] for role in off_grid}}
    if "DWI" in subset and "ADC" not in subset and "ADC" in images:
        subset["ADC"] = images["ADC"]  # the DWI takes the ADC's transform (same acquisition; registration/study.py)
    moved, results = register_to_t2(subset, progress, **register_options)
    records = {}
    for role in off_grid:
        out[role] = moved[role]
        result = results[role]
        records[role] = {"method": "rigid registration onto the T2WI (Mattes MI)",
                         "parameters": [round(float(p), 6) for p in result.transform.GetParameters()],
                         "overlap_fraction": result.settings.get("overlap_fraction")}
    return out, records


def dataset_labels(structures: list[str] | None) -> dict[str, int]:
    """dataset.json's labels: background 0, tumour 1, then each organ in the order given.

    InputError for a name given twice, the tumour or background among the organs."""
    labels = dict(LABELS)
    for name in structures or []:
        canonical = canonical_name(name)
        if canonical in labels:
            raise InputError(f"structure {name!r} is given twice or is the tumour/background itself "
                             f"(organs go after the tumour: e.g. cervix,uterus,bladder)")
        labels[canonical] = len(labels)
    return labels


def _organ_problem(case: _Case, structures: list[str]) -> str | None:
    """Why a case cannot give the organs asked for, or None (its label table then kept on the case)."""
    if case.organ_path is None:
        return f"no organ label map (labels/{ORGAN_LABEL}.nii.gz) for {', '.join(structures)}"
    try:
        table = read_label_table(case.folder, ORGAN_LABEL)
    except InputError as exc:
        return str(exc)
    missing = [name for name in structures if name not in table]
    if missing:
        return f"its organ label table has no {', '.join(missing)} (it has {', '.join(sorted(table))})"
    case.organ_table = table
    return None


def _float_without_nan(image: sitk.Image, what: str) -> sitk.Image:
    array = sitk.GetArrayViewFromImage(image)
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        raise InputError(f"{what} contains NaN or infinite values")
    return clean_image(image)


def export_nnunet(
    cases: list[str | Path],
    out_dir: str | Path,
    dataset_id: int,
    name: str,
    *,
    overwrite: bool = False,
    reviewed_only: bool = False,
    channels: list[str] | None = None,
    label: str = "tumor",
    registration: str = "rigid",
    deidentifier: Any = None,
    progress: ProgressCallback | None = None,
    masks: dict[str, str | Path] | None = None,
    structures: list[str] | None = None,
    **register_options: Any,
) -> NnUNetExport:
    """Write `out_dir/DatasetNNN_NAME/` (see the module docstring) and return what went in.

    structures: organs to label after the tumour (from labels/organs.nii.gz, by name); None or
    empty for the tumour only.

    masks: the tumour mask of a case (key: the case folder as given in `cases`) to use instead of
    its labels/<label>, e.g. a reader's reviewed copy kept by the review worklist.
    """
    progress = progress or no_progress
    folder_name = dataset_folder_name(dataset_id, name)
    labels = dataset_labels(structures)
    organs = [structure for structure in labels if structure not in LABELS]
    out_dir = Path(out_dir)
    target = out_dir / folder_name
    if registration not in ("rigid", "none"):
        raise InputError(f"unknown registration {registration!r} (choose rigid or none)")
    check_output_path(target, cases, overwrite=overwrite, owned=OUTPUT_FILES)
    if out_dir.is_dir():
        clash = [p.name for p in out_dir.glob(f"Dataset{int(dataset_id):03d}_*") if p.is_dir() and p.name != folder_name]
        if clash:
            raise InputError(f"data set id {int(dataset_id):03d} is already used by {', '.join(clash)} in {out_dir}; "
                             "nnU-Net needs unique ids")
    if not cases:
        raise InputError("no case folders given")
    if channels is not None:
        unknown = [c for c in channels if c not in ROLES]
        if unknown or REQUIRED_ROLE not in channels:
            raise InputError(f"channels must include {REQUIRED_ROLE} and be among {', '.join(ROLES)}; got {channels}")
        channels = [role for role in ROLES if role in channels]

    # ---- select cases
    opened: list[_Case] = []
    excluded: list[dict[str, str]] = []
    seen: dict[Path, Path] = {}
    for path in cases:
        case = _open_case(Path(path), label)
        resolved = Path(path).resolve()
        if resolved in seen:
            raise InputError(f"case folder given twice ({seen[resolved]} and {path})")
        seen[resolved] = Path(path)
        if masks is not None and str(path) in masks:
            case.label_path = Path(masks[str(path)])
        reason = None
        if case.label_path is None:
            reason = f"no tumour label (labels/{label}.nii.gz)"
        elif reviewed_only:
            record = manifest_module.mask_provenance(case.label_path)
            if not record["reviewed"]:
                reason = "no valid review record (not reviewed, or the mask was edited after the review)"
        if reason is None and organs:
            reason = _organ_problem(case, organs)
        if reason is None and channels is not None:
            missing = [c for c in channels if c not in case.image_paths]
            reason = f"lacks {', '.join(missing)}" if missing else None
        if reason:
            # de-identified: the pseudonym, never the folder name (which may hold a name or a record number)
            excluded.append({"case": deidentifier.pseudonym(case.patient_id) if deidentifier else case.case_id,
                             "reason": reason})
            log.warning("excluded %s: %s", case.case_id, reason)
        else:
            opened.append(case)
    if not opened:
        reasons = "; ".join(f"{e['case']}: {e['reason']}" for e in excluded)
        raise InputError(f"no case left to export ({reasons})")
    # every raw identity of the selected cases -> its stand-in in a de-identified manifest
    identities = {}
    if deidentifier is not None:
        for case in opened:
            for raw in (case.case_id, case.patient_id, str(case.folder)):
                identities[raw] = deidentifier.pseudonym(case.patient_id)
    warnings: list[str] = []
    if channels is None:
        channels = [role for role in ROLES if all(role in c.image_paths for c in opened)]
        dropped = [role for role in ROLES if role not in channels and any(role in c.image_paths for c in opened)]
        if dropped:
            warnings.append(f"sequence(s) {', '.join(dropped)} left out: not every case has them "
                            f"(exported channels: {', '.join(channels)})")

    # ---- identifiers
    identifiers: dict[str, _Case] = {}
    for case in opened:
        identifier = deidentifier.pseudonym(case.patient_id) if deidentifier else CASE_ID_PATTERN.sub("_", case.case_id)
        if identifier in identifiers:
            raise InputError(f"two cases map to the same identifier {identifier!r}: {identifiers[identifier].folder} and "
                             f"{case.folder} (the same patient twice?)")
        identifiers[identifier] = case

    # ---- write
    entries: list[dict[str, Any]] = []
    with atomic.atomic_directory(target, overwrite=overwrite, owned=OUTPUT_FILES) as tmp:
        (tmp / "imagesTr").mkdir()
        (tmp / "labelsTr").mkdir()
        for number, (identifier, case) in enumerate(identifiers.items()):
            step = sub_progress(progress, number / len(identifiers), (number + 1) / len(identifiers))
            step(0.0, f"case {number + 1}/{len(identifiers)}")
            try:
                entry = _write_case(tmp, identifier, case, channels, labels, registration, deidentifier, step,
                                    **register_options)
            except InputError as exc:
                excluded.append({"case": identifier if deidentifier else case.case_id,
                                 "reason": manifest_module.scrub([str(exc)], deidentifier, identities)[0]})
                log.warning("excluded %s: %s", case.case_id, exc)
                for stale in list((tmp / "imagesTr").glob(f"{identifier}_*")) + list((tmp / "labelsTr").glob(f"{identifier}.*")):
                    stale.unlink()
                continue
            entries.append(entry)
        if not entries:
            raise InputError("no case could be exported: " + "; ".join(f"{e['case']}: {e['reason']}" for e in excluded))
        dataset = {
            "name": name,
            "description": "Primary cervical tumour" + (f" and {', '.join(organs)}" if organs else "")
                           + " on T2WI-grid MRI, exported by CervicalAI",
            "channel_names": {str(i): role for i, role in enumerate(channels)},
            "labels": dict(labels),
            "numTraining": len(entries),
            "file_ending": FILE_ENDING,
            "overwrite_image_reader_writer": "SimpleITKIO",
        }
        atomic.write_json(tmp / "dataset.json", dataset)
        problems = check_nnunet_dataset(tmp)
        if problems:  # a bug, not bad input: never let a broken data set appear
            raise RuntimeError("exported nnU-Net data set fails the integrity check: " + "; ".join(problems[:5]))
        files = manifest_module.file_hashes(tmp)
        for entry in entries:
            entry["warnings"] = manifest_module.scrub(entry["warnings"], deidentifier, identities)
        document = manifest_module.build_manifest(
            "nnunet", entries, files, excluded=excluded, deidentifier=deidentifier,
            warnings=manifest_module.scrub(warnings, deidentifier, identities),
            details={"dataset": {"id": int(dataset_id), "name": name, "folder": folder_name, "channels": channels,
                                 "labels": dict(labels), "registration": registration}},
        )
        manifest_module.write_manifest(tmp / manifest_module.MANIFEST_FILE, document)
    progress(1.0, f"nnU-Net data set written: {target} ({len(entries)} cases)")
    return NnUNetExport(path=target, cases=[e["case"] for e in entries], channels=channels, excluded=excluded,
                        warnings=warnings)


def _write_case(tmp: Path, identifier: str, case: _Case, channels: list[str], labels: dict[str, int],
                registration: str, deidentifier: Any, progress: ProgressCallback,
                **register_options: Any) -> dict[str, Any]:
    images = {role: read_image(case.image_paths[role]) for role in channels}
    moved, records = _on_t2_grid(images, registration, sub_progress(progress, 0.05, 0.8), **register_options)
    t2 = moved[REQUIRED_ROLE]
    name = identifier if deidentifier is not None else case.case_id  # never a raw case name in a de-identified export
    prepared = mask_on_reference(read_image(case.label_path), t2, f"{name} tumour label", case.label_path)
    for index, role in enumerate(channels):
        image = _float_without_nan(moved[role], f"{name} {role}")
        write_image(image, tmp / "imagesTr" / f"{identifier}_{index:04d}{FILE_ENDING}")
    label_map, organ_voxels = _label_map(prepared.mask, case, labels, t2, name)
    write_image(label_map, tmp / "labelsTr" / f"{identifier}{FILE_ENDING}")
    provenance = manifest_module.mask_provenance(case.label_path)
    entry: dict[str, Any] = {
        "case": identifier,
        "sequences": channels,
        "mask": deidentifier.review_record(provenance, case.patient_id) if deidentifier else provenance,
        "registration": records,
        "tumour_voxels": int(sitk.GetArrayViewFromImage(prepared.mask).sum()),
        "warnings": prepared.warnings,
    }
    if organ_voxels:
        entry["organ_voxels"] = organ_voxels
        organ_provenance = manifest_module.mask_provenance(case.organ_path)
        entry["organ_labels"] = (deidentifier.review_record(organ_provenance, case.patient_id) if deidentifier
                                 else organ_provenance)
    if deidentifier is None:
        entry["source"] = str(case.folder)
    progress(1.0, f"{identifier} written")
    return entry


def _label_map(tumour: sitk.Image, case: _Case, labels: dict[str, int], t2: sitk.Image,
               name: str) -> tuple[sitk.Image, dict[str, int]]:
    """The case's label file: its organs (by name, nearest-neighbour onto the T2WI grid) with the
    tumour over them; (image, voxels per organ). Just the tumour when no organ is asked for."""
    organs = [structure for structure in labels if structure not in LABELS]
    if not organs:
        return tumour, {}
    organ_image = read_image(case.organ_path)
    if not same_grid(organ_image, t2):
        organ_image = resample_to_reference(organ_image, t2, None, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt16)
    organ_values = sitk.GetArrayFromImage(organ_image)
    table = case.organ_table
    combined = np.zeros(organ_values.shape, dtype=np.uint8)
    counts = {}
    for structure in organs:
        inside = label_mask(organ_values, table[structure])
        if not inside.any():
            raise InputError(f"{name}: its organ label map holds no {structure} voxel on the T2WI grid")
        combined[inside] = labels[structure]
    combined[sitk.GetArrayViewFromImage(tumour) > 0] = labels[TUMOR]  # the tumour over the organ it grows in
    for structure in organs:
        counts[structure] = int(np.count_nonzero(combined == labels[structure]))
    image = sitk.GetImageFromArray(combined)
    image.CopyInformation(t2)
    return image, counts


def check_nnunet_dataset(folder: str | Path) -> list[str]:
    """nnU-Net v2's raw data set rules (as its verify_dataset_integrity checks them); [] when valid.

    dataset.json with labels/channel_names/numTraining/file_ending; one label file per case and
    numTraining cases; every case has every channel `_0000 ...`; labels consecutive from 0 and
    only those values in the label files; images and label of a case with the same size,
    spacing, origin and direction; no NaN in images.
    """
    folder = Path(folder)
    problems: list[str] = []
    try:
        dataset = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        return [f"dataset.json missing or unreadable ({exc})"]
    missing = [k for k in ("labels", "channel_names", "numTraining", "file_ending") if k not in dataset]
    if missing:
        return [f"dataset.json lacks {', '.join(missing)}"]
    ending = dataset["file_ending"]
    n_channels = len(dataset["channel_names"])
    label_values = sorted(int(v) for v in dataset["labels"].values())
    if label_values != list(range(len(label_values))):
        problems.append(f"labels must be consecutive from 0, got {label_values}")
    images_dir, labels_dir = folder / "imagesTr", folder / "labelsTr"
    if not images_dir.is_dir() or not labels_dir.is_dir():
        return problems + ["imagesTr/ or labelsTr/ missing"]
    identifiers = sorted({p.name[: -len(ending) - 5] for p in images_dir.iterdir() if p.name.endswith(ending)})
    if len(identifiers) != dataset["numTraining"]:
        problems.append(f"numTraining is {dataset['numTraining']} but imagesTr holds {len(identifiers)} cases")
    for identifier in identifiers:
        label_path = labels_dir / f"{identifier}{ending}"
        if not label_path.is_file():
            problems.append(f"{identifier}: no label file")
            continue
        label = sitk.ReadImage(str(label_path))
        values = np.unique(sitk.GetArrayViewFromImage(label))
        unexpected = [int(v) for v in values if int(v) not in label_values]
        if unexpected:
            problems.append(f"{identifier}: unexpected label values {unexpected}")
        for channel in range(n_channels):
            path = images_dir / f"{identifier}_{channel:04d}{ending}"
            if not path.is_file():
                problems.append(f"{identifier}: channel {channel:04d} missing")
                continue
            image = sitk.ReadImage(str(path))
            if not same_grid(image, label):
                problems.append(f"{identifier}: channel {channel:04d} and label are on different grids")
            if np.isnan(sitk.GetArrayViewFromImage(image)).any():
                problems.append(f"{identifier}: channel {channel:04d} contains NaN")
    return problems
