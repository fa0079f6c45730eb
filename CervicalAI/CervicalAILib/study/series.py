"""`Series` (one DICOM series or one image file: what it looks like, the role it plays, its images) and
`Study` (one patient's series; `missing_role_error` when it lacks one), and the role names a user may
type (`normalise_role`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from CervicalAILib.core.errors import InputError
from CervicalAILib.io.case import ROLES, Case
from CervicalAILib.io.dicom.frames import SeriesHeader
from CervicalAILib.io.dicom.tags import sequence_name_b_range
from CervicalAILib.io.dicom.volumes import DicomVolume
from CervicalAILib.io.geometry import orientation_label
from CervicalAILib.io.image_checks import sequence_problem
from CervicalAILib.study.recognition import OTHER, ROLE_NAMES


@dataclass(eq=False)
class Series:
    """One series (DICOM) or one image file, with what it looks like and the role it plays."""

    key: str  # what `--role KEY=ROLE` names: series number for DICOM ("4", "4.2"), file stem for files
    uid: str
    number: int | None
    description: str
    source: str  # "dicom" or "file"
    path: Path  # the folder holding most of the series' files, or the image file
    kind: str = OTHER  # what it looks like: T2W, DWI, ADC, CET1, T1W or other
    reason: str = ""
    role: str = OTHER  # the role it plays in this study
    role_source: str = ""  # "auto", "override" or "case folder"
    is_calculated: bool = False
    fat_suppressed: bool = False
    derived: bool = False
    modality: str = ""
    n_files: int = 1
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    header: SeriesHeader | None = None
    volumes: list[DicomVolume] = field(default_factory=list)
    split_by: list[str] = field(default_factory=list)
    default_volume: int = 0
    _image: sitk.Image | None = field(default=None, repr=False)
    _cache: dict[int, sitk.Image] = field(default_factory=dict, repr=False)

    # -- geometry of the image `image()` returns --------------------------------------------
    @property
    def _volume(self) -> DicomVolume | None:
        return self.volumes[self.default_volume] if self.volumes else None

    @property
    def size(self) -> tuple[int, ...] | None:
        if self._image is not None:
            return tuple(self._image.GetSize())
        return self._volume.size if self._volume else None

    @property
    def spacing(self) -> tuple[float, ...] | None:
        if self._image is not None:
            return tuple(self._image.GetSpacing())
        return self._volume.spacing if self._volume else None

    @property
    def direction(self) -> tuple[float, ...] | None:
        if self._image is not None:
            return tuple(self._image.GetDirection())
        return self._volume.direction if self._volume else None

    @property
    def orientation(self) -> str:
        direction = self.direction
        if direction is None or len(direction) != 9:
            return "unknown"
        return orientation_label(np.asarray(direction))

    @property
    def b_values(self) -> list[float]:
        """All b-values of a diffusion series (s/mm^2), ascending; [] for other series."""
        if self.kind == "ADC" and self.header is not None:
            b_range = sequence_name_b_range(self.header.sequence_name)
            if b_range:
                return [b_range[0], b_range[1]]
        if self.kind not in ("DWI", "ADC"):
            return []
        return sorted({v.b_value for v in self.volumes if v.b_value is not None})

    @property
    def b_value(self) -> float | None:
        """b-value of the image `image()` returns (the highest acquired one for DWI)."""
        return self._volume.b_value if self._volume and self.kind == "DWI" else None

    @property
    def usable(self) -> bool:
        if self.source == "file":
            return self._image is not None
        return self._volume is not None and self._volume.usable

    @property
    def volume_labels(self) -> list[str]:
        return [v.label for v in self.volumes]

    def image(self, b_value: float | None = None, volume: int | str | None = None) -> sitk.Image:
        """The 3D image (SimpleITK, LPS); for a series with several volumes the default one
        (DWI: the highest b-value), or the one with `b_value` or `volume` (index or label)."""
        if self.source == "file":
            if self._image is None:
                raise InputError(f"image cannot be used: {'; '.join(self.problems)}", self.path)
            return self._image
        index = self._volume_index(b_value, volume)
        if index not in self._cache:
            try:
                self._cache[index] = self.volumes[index].image()
            except InputError as exc:
                raise InputError(f"series {self.key} ({self.description}): {exc}", exc.path) from exc
        return self._cache[index]

    def _volume_index(self, b_value: float | None, volume: int | str | None) -> int:
        if b_value is not None:
            for index, candidate in enumerate(self.volumes):
                if candidate.b_value is not None and abs(candidate.b_value - b_value) < 0.5:
                    return index
            raise InputError(
                f"series {self.key} has no b={b_value:g} volume (b-values: "
                f"{', '.join(f'{b:g}' for b in self.b_values) or 'none'})",
                self.path,
            )
        if volume is None:
            return self.default_volume
        if isinstance(volume, int):
            if not 0 <= volume < len(self.volumes):
                raise InputError(f"series {self.key} has {len(self.volumes)} volume(s), not {volume + 1}", self.path)
            return volume
        if volume in self.volume_labels:
            return self.volume_labels.index(volume)
        raise InputError(f"series {self.key} has no volume '{volume}' (volumes: {', '.join(self.volume_labels)})", self.path)

    def to_dict(self) -> dict[str, Any]:
        header = self.header
        return {
            "key": self.key,
            "number": self.number,
            "uid": self.uid,
            "description": self.description,
            "role": self.role,
            "role_source": self.role_source,
            "kind": self.kind,
            "reason": self.reason,
            "is_calculated": self.is_calculated,
            "modality": self.modality,
            "orientation": self.orientation,
            "size": list(self.size) if self.size else None,
            "spacing": [round(float(s), 5) for s in self.spacing] if self.spacing else None,
            "b_values": [float(b) for b in self.b_values],
            "b_value": self.b_value,
            "n_files": self.n_files,
            "volumes": [
                {
                    "label": v.label,
                    "b_value": v.b_value,
                    "n_slices": len(v.frames),
                    "usable": v.usable,
                    "problems": list(v.problems),
                }
                for v in self.volumes
            ],
            "default_volume": self.volumes[self.default_volume].label if self.volumes else None,
            "usable": self.usable,
            "problems": list(self.problems),
            "notes": list(self.notes),
            "echo_time_ms": header.echo_time if header else None,
            "repetition_time_ms": header.repetition_time if header else None,
            "contrast_agent": header.contrast_agent if header else None,
            "image_type": list(header.image_type) if header else None,
            "path": str(self.path),
        }


@dataclass
class Study:
    """A patient's sequences with their roles, from a DICOM folder, a case folder or files."""

    path: Path
    source: str  # "dicom", "case" or "files"
    series: list[Series]
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped_files: list[tuple[Path, str]] = field(default_factory=list)
    patient_id: str = ""
    study_uid: str = ""
    study_date: str = ""
    study_description: str = ""
    case: Case | None = None  # the case folder (labels, clinical.json) when loaded from one

    @property
    def case_id(self) -> str:
        """How outputs name the case: the case folder's name, else the DICOM PatientID, else the folder's name."""
        if self.case is not None:
            return self.case.case_id
        return self.patient_id or self.path.name

    @property
    def label_paths(self) -> dict[str, Path]:
        """Label files of a case folder (labels/<name>.nii.gz); {} for DICOM studies and files."""
        return dict(self.case.label_paths) if self.case else {}

    def label(self, name: str = "tumor") -> sitk.Image:
        if self.case is None:
            raise InputError(f"study has no label {name!r} (labels come with case folders)", self.path)
        return self.case.label(name)

    @property
    def clinical(self) -> dict[str, Any] | None:
        """clinical.json of a case folder, else None."""
        return self.case.clinical if self.case else None

    def series_for(self, role: str) -> Series | None:
        """The series playing `role` (T2W, DWI, ADC, CET1), or None."""
        role = normalise_role(role)
        return next((s for s in self.series if s.role == role), None)

    def image(self, role: str) -> sitk.Image:
        """The image for `role`; InputError naming the role when the study has none, or naming the
        file when its image cannot be an MR sequence (blank, a single slice)."""
        series = self.series_for(role)
        if series is None:
            raise missing_role_error(self, normalise_role(role))
        image = series.image()
        problem = sequence_problem(image)
        if problem:
            where = series.path if series.source == "file" else f"{series.path} (series {series.key})"
            raise InputError(f"cannot be used as the {normalise_role(role)}: {problem}", where)
        return image

    def roles_present(self) -> list[str]:
        return [role for role in ROLES if self.series_for(role) is not None]

    def find_series(self, name: str) -> Series:
        """The series a user names: key ("4", "4.2"), series number, SeriesInstanceUID or file name."""
        name = str(name).strip()
        for attribute in ("key", "uid"):
            exact = [s for s in self.series if getattr(s, attribute) == name]
            if len(exact) == 1:
                return exact[0]
        by_number = [s for s in self.series if s.number is not None and str(s.number) == name]
        if len(by_number) == 1:
            return by_number[0]
        if len(by_number) > 1:
            raise InputError(
                f"series number {name} is ambiguous: it names {', '.join(s.key for s in by_number)}; use one of those keys",
                self.path,
            )
        by_file = [s for s in self.series if s.source == "file" and name in (s.path.name, str(s.path))]
        if len(by_file) == 1:
            return by_file[0]
        raise InputError(
            f"no series '{name}' in this study (series: {', '.join(s.key for s in self.series)})", self.path
        )

    def to_dict(self) -> dict[str, Any]:
        """Everything `cervicalai study inspect --json` prints (plain JSON types)."""
        return {
            "path": str(self.path),
            "source": self.source,
            "patient_id": self.patient_id,
            "study_uid": self.study_uid,
            "study_date": self.study_date,
            "study_description": self.study_description,
            "roles": {role: (s.key if (s := self.series_for(role)) else None) for role in ROLES},
            "missing_roles": [role for role in ROLES if self.series_for(role) is None],
            "series": [s.to_dict() for s in self.series],
            "problems": list(self.problems),
            "notes": list(self.notes),
            "skipped_files": [{"path": str(p), "reason": r} for p, r in self.skipped_files],
        }


def missing_role_error(study: Study, role: str, why: str = "") -> InputError:
    """The InputError of a study without a usable series for `role` (a role name), naming the series that
    looked like one and why it cannot be used (missing slices, broken geometry, unreadable files), if any."""
    unusable = [s for s in study.series if s.kind == role and not s.usable]
    skipped = ""
    if study.skipped_files:
        first_path, first_reason = study.skipped_files[0]
        skipped = (f"; {len(study.skipped_files)} file(s) could not be read, e.g. {Path(first_path).name} "
                   f"({first_reason})")
    if unusable:
        series = unusable[0]
        defect = "; ".join(series.problems) or "its images cannot be read"
        where = series.path
        return InputError(f"series {series.key} ({series.description or 'no description'}) looks like the {role} but "
                          f"cannot be used: {defect}{skipped}", where)
    present = ", ".join(study.roles_present()) or "none"
    others = ", ".join(f"{s.key} ({s.description or s.kind})" for s in study.series[:6])
    return InputError(
        f"study has no {role} series ({ROLE_NAMES.get(role, role)}; roles present: {present}; series: "
        f"{others or 'none'}{skipped})" + (f"; {why}" if why else "") + f"; assign one with --role SERIES={role}",
        study.path)


def normalise_role(role: str) -> str:
    """'t2w' -> 'T2W', 'none' -> 'other'; InputError for anything that is not a role."""
    text = str(role).strip()
    aliases = {"T2": "T2W", "T2WI": "T2W", "CE-T1WI": "CET1", "CET1WI": "CET1", "T1C": "CET1", "NONE": OTHER}
    upper = text.upper()
    upper = aliases.get(upper, upper)
    if upper in ROLES:
        return upper
    if upper == OTHER.upper():
        return OTHER
    raise InputError(f"unknown role '{role}' (roles: {', '.join(ROLES)}, other)")


def describe_series(series: Series) -> str:
    """How messages name a series: 'series 4 (t2_tse_tra)'."""
    return f"series {series.key} ({series.description or 'no description'})"
