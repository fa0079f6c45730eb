"""Studies: one patient's MRI sequences, each with its role (T2W, DWI, ADC, CET1 or other).

`load_study` accepts a DICOM folder (any depth, any file names), a case folder
(`T2W.nii.gz`, ...), or image files (NIfTI/NRRD/MHA, DICOM), and gives the same `Study` API:

    study = load_study("patient01/", role_overrides={"8": "DWI"})
    study.series_for("DWI").b_values      # [50.0, 400.0, 800.0]
    t2 = study.image("T2W")               # SimpleITK image, LPS

What each series looks like is `recognition.recognise` (from its tags, never from file names);
which series plays each role is `roles.assign_roles`; the user can override any role (`role_overrides`,
CLI `--role SERIES=ROLE`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from CervicalAILib.core.errors import InputError
from CervicalAILib.core.progress import ProgressCallback, no_progress, sub_progress
from CervicalAILib.io.case import is_case_folder, load_case
from CervicalAILib.io.dicom.frames import ScanResult, scan_paths
from CervicalAILib.io.dicom.tags import description_b_value
from CervicalAILib.io.dicom.volumes import TEMPORAL_KEYS, DicomSeries, group_series
from CervicalAILib.io.image_checks import sequence_problem
from CervicalAILib.io.images import IMAGE_SUFFIXES, read_image
from CervicalAILib.study.recognition import OTHER, recognise
from CervicalAILib.study.roles import assign_roles
from CervicalAILib.study.series import Series, Study, describe_series, missing_role_error, normalise_role


def require_role(study: Study, role: str, why: str = "") -> None:
    """InputError when the study has no usable series for `role`, naming the series that looked like
    one and why it cannot be used (missing slices, broken geometry, unreadable files), if any."""
    role = normalise_role(role)
    if study.series_for(role) is not None:
        return
    raise missing_role_error(study, role, why)


def _series_from_dicom(dicom: DicomSeries) -> Series:
    header = dicom.header
    b_values = [v.b_value for v in dicom.volumes if v.b_value is not None]
    recognition = recognise(header, b_values)
    series = Series(
        key=dicom.key,
        uid=dicom.uid,
        number=header.series_number,
        description=header.description,
        source="dicom",
        path=Counter(f.path.parent for f in dicom.frames).most_common(1)[0][0],
        kind=recognition.kind,
        reason=recognition.reason,
        is_calculated=recognition.is_calculated,
        fat_suppressed=recognition.fat_suppressed,
        derived=recognition.derived,
        modality=header.modality,
        n_files=len(dicom.files),
        header=header,
        volumes=dicom.volumes,
        split_by=dicom.split_by,
    )
    if series.kind == "DWI" and len(series.volumes) == 1 and series.volumes[0].b_value is None:
        series.volumes[0].description_b = description_b_value(header.series_description)
    series.default_volume = _default_volume(series)
    several = len(dicom.volumes) > 1
    for volume in dicom.volumes:
        for problem in volume.problems:
            series.problems.append(f"{volume.label}: {problem}" if several else problem)
    for note in dicom.notes:  # exact copies of files: harmless, ignored, but a sign of a messy export
        series.problems.append(f"duplicated file: {note}")
    if several:
        chosen = dicom.volumes[series.default_volume]
        series.notes.append(
            f"{len(dicom.volumes)} volumes at the same slice positions, split by {', '.join(dicom.split_by)}; "
            f"image() gives {chosen.label}"
        )
    if header.modality and header.modality != "MR":
        series.problems.append(f"modality {header.modality}: not an MR series, not used for any role")
    return series


def _default_volume(series: Series) -> int:
    volumes = series.volumes
    usable = [i for i, v in enumerate(volumes) if v.usable] or list(range(len(volumes)))
    if series.kind == "DWI":
        with_b = [i for i in usable if volumes[i].b_value is not None]
        if with_b:
            return max(with_b, key=lambda i: volumes[i].b_value)
        return usable[-1]
    if TEMPORAL_KEYS & set(series.split_by):
        return usable[-1]  # the last time point (e.g. late phase of a dynamic series)
    return usable[0]


def _image_stem(path: Path) -> str:
    name = path.name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _series_from_file(path: Path, key: str, role: str = OTHER, strict: bool = True) -> Series:
    series = Series(
        key=key, uid=str(path), number=None, description=path.name, source="file", path=path,
        kind=role, role=role, role_source="case folder" if role != OTHER else "",
        reason="case-folder file name" if role != OTHER else "image file (set its role with --role)",
    )
    try:
        series._image = read_image(path)
    except InputError as exc:
        if strict:
            raise
        series.problems.append(str(exc))
    if series._image is not None:
        problem = sequence_problem(series._image)
        if problem:  # `inspect` lists it; using the image as a sequence is refused (Study.image)
            series.problems.append(problem)
    return series


def _select_study(frames: list, study: str | None, path: Path) -> list:
    """Keep one patient's one study; refuse to merge several unless `study` picks one."""
    groups: dict[tuple[str, str], list] = {}
    for frame in frames:
        groups.setdefault((frame.header.patient_id, frame.header.study_uid), []).append(frame)
    if study is not None:
        wanted = str(study).strip()
        picked = {
            k: v for k, v in groups.items()
            if wanted in (k[0], k[1], v[0].header.accession_number) and wanted
        }
        if not picked:
            raise InputError(f"no study matches '{wanted}' ({_list_studies(groups)})", path)
        groups = picked
    if len(groups) == 1:
        return next(iter(groups.values()))
    patients = sorted({k[0] for k in groups})
    if len(patients) > 1:
        what = f"images of {len(patients)} different patients ({', '.join(repr(p or '(no PatientID)') for p in patients)})"
    else:
        what = f"{len(groups)} different studies of patient {patients[0]!r}"
    raise InputError(
        f"folder holds {what}; refusing to merge them: {_list_studies(groups)}. "
        "Pick one with --study PATIENT_ID or --study STUDY_UID (API: load_study(..., study=...))",
        path,
    )


def _list_studies(groups: dict[tuple[str, str], list]) -> str:
    parts = []
    for (patient, uid), frames in sorted(groups.items()):
        header = frames[0].header
        n_series = len({f.header.series_uid for f in frames})
        parts.append(
            f"PatientID {patient or '(none)'!r} study {uid or '(no StudyInstanceUID)'}"
            f"{' of ' + header.study_date if header.study_date else ''}"
            f"{' ' + repr(header.study_description) if header.study_description else ''} ({n_series} series)"
        )
    return "; ".join(parts)


def _nothing_found_message(scan: ScanResult) -> str:
    if scan.files_seen == 0:
        return "folder is empty (no files at any depth)"
    parts = []
    if scan.unreadable:
        examples = ", ".join(f"{p.name} ({r})" for p, r in scan.unreadable[:3])
        parts.append(f"{len(scan.unreadable)} unreadable file(s), e.g. {examples}")
    if scan.non_image:
        parts.append(f"{len(scan.non_image)} DICOM object(s) without pixel data (reports, structures, DICOMDIR)")
    if scan.ignored:
        parts.append(f"{len(scan.ignored)} other file(s), e.g. {', '.join(p.name for p in scan.ignored[:3])}")
    return f"no image series found among {scan.files_seen} file(s): " + "; ".join(parts)


def load_study(
    path: str | Path | Sequence[str | Path],
    role_overrides: dict[str, str] | None = None,
    progress: ProgressCallback | None = None,
    *,
    study: str | None = None,
) -> Study:
    """Load a DICOM folder, a case folder, or image files as a `Study` with roles assigned.

    `role_overrides` maps a series (key/number, SeriesInstanceUID or file name) to a role
    (T2W, DWI, ADC, CET1 or other). `study` picks one patient/study (PatientID,
    StudyInstanceUID or AccessionNumber) from a folder that holds several; without it such a
    folder is refused. Raises InputError naming the path when nothing usable is found.
    """
    progress = progress or no_progress
    paths = [Path(path)] if isinstance(path, (str, Path)) else [Path(p) for p in path]
    if not paths:
        raise InputError("no input given")
    for item in paths:
        if not item.exists():
            raise InputError("not found", item)
    root = paths[0] if len(paths) == 1 else paths[0].parent

    if len(paths) == 1 and is_case_folder(paths[0]):
        result = _load_case_study(paths[0])
    else:
        result = _load_scanned_study(paths, root, sub_progress(progress, 0.0, 0.9), study)
    progress(0.95, "assigning sequence roles")
    assign_roles(result, role_overrides)
    progress(1.0, f"study loaded: {len(result.series)} series, roles {', '.join(result.roles_present()) or 'none'}")
    return result


def _load_case_study(folder: Path) -> Study:
    case = load_case(folder)
    series = [_series_from_file(p, key=role, role=role) for role, p in case.image_paths.items()]
    study = Study(path=folder, source="case", series=series, case=case, patient_id=case.case_id)
    study.problems.extend(f"{item.path.name}: {problem}" for item in series for problem in item.problems)
    return study


def _load_scanned_study(paths: list[Path], root: Path, progress: ProgressCallback, study: str | None) -> Study:
    scan = scan_paths(paths, progress)
    explicit_files = [p for p in paths if p.is_file()]
    nested_cases = sorted(
        {p.parent for p in scan.image_files if p.parent not in paths and is_case_folder(p.parent)}
    )
    if nested_cases and all(p.is_file() for p in paths) and {p.parent for p in paths} <= set(nested_cases):
        raise InputError(f"is one image of the case folder {paths[0].parent}: give the case folder itself", paths[0])
    if nested_cases:
        names = ", ".join(str(c) for c in nested_cases[:5])
        raise InputError(
            f"holds {len(nested_cases)} case folder(s) ({names}{' ...' if len(nested_cases) > 5 else ''}); "
            "give one case folder, or a cohort to the cohort commands",
            root,
        )
    frames = _select_study(scan.frames, study, root) if scan.frames else []
    series = [_series_from_dicom(d) for d in group_series(frames)]
    stems = Counter(_image_stem(p) for p in scan.image_files)
    for path in scan.image_files:
        stem = _image_stem(path)
        key = stem if stems[stem] == 1 else path.name
        # a file the user named must load; one met while scanning a folder is skipped if broken
        series.append(_series_from_file(path, key=key, strict=path in explicit_files or len(scan.image_files) == 1 and not frames))
    if not series:
        raise InputError(_nothing_found_message(scan), root)
    first = frames[0].header if frames else None
    result = Study(
        path=root,
        source="dicom" if frames else "files",
        series=series,
        skipped_files=list(scan.unreadable),
        patient_id=first.patient_id if first else "",
        study_uid=first.study_uid if first else "",
        study_date=first.study_date if first else "",
        study_description=first.study_description if first else "",
    )
    mr_series = [s for s in series if s.source == "file" or s.modality in ("", "MR")]
    if not mr_series:
        modalities = ", ".join(f"{m} ({n} series)" for m, n in Counter(s.modality for s in series).items())
        raise InputError(f"no MR image series: found only {modalities}; CervicalAI reads MR studies", root)
    for file_path, reason in scan.unreadable:
        result.problems.append(f"skipped {file_path}: {reason}")
    for item in series:
        result.problems.extend(f"{describe_series(item)}: {problem}" for problem in item.problems)
    if scan.non_image:
        result.notes.append(f"{len(scan.non_image)} DICOM object(s) without pixel data ignored (e.g. {scan.non_image[0][0].name})")
    return result
