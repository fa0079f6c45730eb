"""Studies: one patient's MRI sequences, each with its role (T2W, DWI, ADC, CET1 or other).

`load_study` accepts a DICOM folder (any depth, any file names), a case folder
(`T2W.nii.gz`, ...), or image files (NIfTI/NRRD/MHA, DICOM), and gives the same `Study` API:

    study = load_study("patient01/", role_overrides={"8": "DWI"})
    study.series_for("DWI").b_values      # [50.0, 400.0, 800.0]
    t2 = study.image("T2W")               # SimpleITK image, LPS

What a DICOM series *is* comes from its tags, never from file names: ImageType (DIFFUSION,
ADC, ...), b-values (standard and vendor tags), SeriesDescription/ProtocolName keywords,
ScanningSequence with EchoTime/RepetitionTime, ContrastBolusAgent. Each role then goes to the
best candidate of that kind:

- T2W: axial, then oblique-axial, before sagittal/coronal; original before derived images;
  without fat suppression before with.
- DWI: acquired before calculated (computed b-value) series, axial first, highest b-value; its
  image is the highest acquired b-value volume, all b-values are listed.
- ADC: axial first, on the chosen DWI's grid first.
- CET1: a T1-weighted series with contrast evidence (ContrastBolusAgent, or "+c", "post",
  "gad", ... in its description); a T1 without such evidence is reported, not used.

The user can override any role (`role_overrides`, CLI `--role SERIES=ROLE`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from CervicalAILib.core.errors import InputError
from CervicalAILib.core.progress import ProgressCallback, no_progress, sub_progress
from CervicalAILib.io.case import ROLES, Case, is_case_folder, load_case
from CervicalAILib.io.dicom import (
    TEMPORAL_KEYS,
    DicomSeries,
    DicomVolume,
    ScanResult,
    SeriesHeader,
    description_b_value,
    group_series,
    scan_paths,
    sequence_name_b_range,
)
from CervicalAILib.io.geometry import orientation_label
from CervicalAILib.io.images import IMAGE_SUFFIXES, read_image

OTHER = "other"
ROLE_NAMES = {
    "T2W": "T2-weighted (T2WI)",
    "DWI": "diffusion-weighted, high b-value (DWI)",
    "ADC": "apparent diffusion coefficient map (ADC)",
    "CET1": "contrast-enhanced T1-weighted (CE-T1WI)",
}
# Kinds a series can be recognised as (roles plus T1W: a T1 without contrast evidence).
T1_WITHOUT_CONTRAST = "T1W"


# --------------------------------------------------------------------------------------------
# Recognition from DICOM tags
# --------------------------------------------------------------------------------------------

_B = r"(?<![a-z0-9])"  # start of a word (underscores and punctuation separate words)
_E = r"(?![a-z0-9])"  # end of a word


def _any(patterns: Iterable[str], text: str) -> str | None:
    """The first pattern that matches `text` (for the reason shown to the user), or None."""
    for pattern in patterns:
        match = re.search(pattern, text)
        if match:
            return match.group(0).strip()
    return None


LOCALIZER_WORDS = [
    _B + r"(loc|localizer|localiser|scout|survey|tri-?pilot|3[-_ ]?plane|aahscout|calibration|asset[-_ ]?cal|ref)" + _E
]
ADC_WORDS = [_B + r"d?adc" + r"(?![a-z])", r"adc(?=map)", r"apparent[-_ ]diffusion"]
DIFFUSION_MAP_WORDS = [_B + r"(eadc|exp|fa|colfa|tensor|trace[-_]?adc|md)" + _E, r"exponential"]
DIFFUSION_WORDS = [
    _B + r"(dwi|diff|diffusion|dw|ep2d[-_ ]?diff|resolve|zoomit|ivim|readout[-_ ]segmented)" + _E,
    _B + r"b\s*=?\s*\d{2,4}" + _E,
]
CALCULATED_WORDS = [r"calc", r"comput", r"synth", _B + r"c-?dwi" + _E, r"extrapol"]
CALCULATED_IMAGE_TYPES = {"CALC", "CALCULATED", "COMPUTED", "SYNTHETIC", "CALC_BVAL", "CALC_IMAGE"}
DIFFUSION_IMAGE_TYPES = {"DIFFUSION", "TRACEW", "TRACE", "ISODWI", "DWI"}
T2_STAR_WORDS = [r"t2\s*\*", r"t2[-_ ]?star", _B + r"(swi|swan|medic|merge|hemo)" + _E]
T2_WORDS = [_B + r"[sr]?t2(?![0-9*])", _B + r"(haste|ssfse|ss-fse)" + _E]
T1_WORDS = [
    _B + r"[sr]?t1(?![0-9])",
    r"vibe",
    _B + r"(lava|thrive|e-?thrive|flash|mprage|spgr|fspgr|bravo|twist|disco|fl3d|quick3d)",
]
PD_WORDS = [_B + r"pd(w|fs)?" + _E, r"proton[-_ ]density"]
OTHER_CONTRAST_WORDS = [r"flair", _B + r"(trufi|fiesta|bffe|b-ffe|ssfp|true[-_ ]?fisp|fisp)" + _E]
PROCESSED_WORDS = [
    _B + r"(sub|subtraction|mip|mpr|perfusion|ktrans|kep|map|colou?r|screen ?shot|report)" + _E,
]
FAT_SUPPRESSION_WORDS = [_B + r"(fs|fatsat|fat[-_ ]?sat|spair|spir|stir|tirm|fat[-_ ]?supp\w*|dixon[-_ ]?w)" + _E]
PRE_CONTRAST_WORDS = [
    _B + r"pre(?![a-z])",
    r"pre[-_ ]?contrast",
    _B + r"nati(ve|v)" + _E,
    r"unenhanced",
    r"non[-_ ]?contrast",
    r"without[-_ ]contrast",
    r"w/o",
    _B + r"plain" + _E,
]
POST_CONTRAST_WORDS = [
    r"\+\s*c(?![a-z])",
    _B + r"c\s*\+",
    _B + r"post",
    r"gado",
    _B + r"(gad|gd|ce|dce|dyn|dynamic|delayed|late|enhanced)" + _E,
    r"\+\s*gd",
    r"contrast",
]


@dataclass
class Recognition:
    """What a series looks like, and why."""

    kind: str  # T2W, DWI, ADC, CET1, T1W (T1 without contrast evidence) or other
    reason: str
    is_calculated: bool = False
    fat_suppressed: bool = False
    derived: bool = False


def _weighting_from_parameters(header: SeriesHeader) -> tuple[str | None, str]:
    """T2 / T1 / PD weighting from ScanningSequence, TR, TE, TI (ms) when keywords are silent."""
    te, tr, ti = header.echo_time, header.repetition_time, header.inversion_time
    if te is None or tr is None:
        return None, ""
    sequence = header.scanning_sequence
    params = f"TR {tr:g} ms, TE {te:g} ms"
    if "EP" in sequence:
        return None, ""
    if "IR" in sequence and ti is not None:
        if ti >= 1500:
            return "FLAIR", f"inversion recovery with TI {ti:g} ms (FLAIR)"
        if ti <= 250 and te >= 40:
            return "T2", f"STIR: TI {ti:g} ms, {params}"
    if "GR" in sequence and "SE" not in sequence:
        if tr <= 50 and te <= 10 and (header.flip_angle is None or header.flip_angle >= 8):
            return "T1", f"spoiled gradient echo, {params}"
        return None, ""
    if tr >= 1500 and te >= 60:
        return "T2", f"long TR and TE ({params})"
    if tr <= 1000 and te <= 30:
        return "T1", f"short TR and TE ({params})"
    if tr >= 1500 and te <= 40:
        return "PD", f"long TR, short TE ({params})"
    return None, ""


def recognise(header: SeriesHeader, b_values: Sequence[float]) -> Recognition:
    """Recognise a DICOM series from its tags (never from file names).

    Keywords that distinguish series made by one protocol (ADC, calculated b-value, subtraction)
    are read from SeriesDescription only, since ProtocolName is shared by all of them (a Siemens
    protocol "..._ADC" also names its trace-weighted series); weighting and contrast keywords
    come from SeriesDescription first, then ProtocolName, then the timing tags.
    """
    description = (header.series_description or header.protocol_name).lower()
    protocol = header.protocol_name.lower()
    text = f"{description} {protocol}"
    image_type = set(header.image_type)
    derived = bool(header.image_type) and header.image_type[0] == "DERIVED"
    fat = _any(FAT_SUPPRESSION_WORDS, text) is not None or any(
        option in header.scan_options.split("\\") for option in ("FS", "SFS", "FAT_SAT", "SPAIR", "FSA")
    )
    if header.modality and header.modality != "MR":
        return Recognition(OTHER, f"modality {header.modality}, not MR")
    if "LOCALIZER" in image_type:
        return Recognition(OTHER, "localizer (ImageType LOCALIZER)")
    if word := _any(LOCALIZER_WORDS, text):
        return Recognition(OTHER, f"localizer/reference scan ('{word}' in description)")
    if image_type & {"EADC", "FA", "EXP"} or (word := _any(DIFFUSION_MAP_WORDS, description)):
        return Recognition(OTHER, "diffusion map other than ADC (exponential ADC, FA, ...)", derived=True)
    if "ADC" in image_type:
        return Recognition("ADC", "ImageType ADC", derived=True)
    several_b = len(set(b_values)) > 1
    if (word := _any(ADC_WORDS, description)) and not ("TRACEW" in image_type or several_b):
        return Recognition("ADC", f"'{word}' in description", derived=True)
    diffusion_type = image_type & DIFFUSION_IMAGE_TYPES
    diffusion_word = _any(DIFFUSION_WORDS, text)
    has_b = any(b > 0 for b in b_values)
    if diffusion_type or has_b or (diffusion_word and "EP" in header.scanning_sequence):
        evidence = (
            f"ImageType {'/'.join(sorted(diffusion_type))}" if diffusion_type
            else "b-values in the headers" if has_b
            else f"echo-planar with '{diffusion_word}' in description"
        )
        calculated = image_type & CALCULATED_IMAGE_TYPES
        word = _any(CALCULATED_WORDS, description)
        b_range = sequence_name_b_range(header.sequence_name)
        if calculated or word or b_range:
            why = (
                f"ImageType {'/'.join(sorted(calculated))}" if calculated
                else f"'{word}' in description" if word
                else f"SequenceName {header.sequence_name}: computed from b {b_range[0]:g}-{b_range[1]:g}"
            )
            return Recognition("DWI", f"{evidence}; calculated b-value image ({why})", is_calculated=True, derived=True)
        return Recognition("DWI", evidence, derived=derived)
    if word := _any(T2_STAR_WORDS, text):
        return Recognition(OTHER, f"T2*-weighted ('{word}' in description)")
    if word := _any(OTHER_CONTRAST_WORDS, text):
        return Recognition(OTHER, f"'{word}' in description (not used for any role)")
    if word := _any(PROCESSED_WORDS, description):
        return Recognition(OTHER, f"processed image ('{word}' in description)", derived=True)
    if "EP" in header.scanning_sequence and not (_any(T2_WORDS, text) or _any(T1_WORDS, text)):
        return Recognition(OTHER, "echo-planar series without diffusion information")

    weighting, why = None, ""
    for source in (description, protocol):
        t2_word, t1_word, pd_word = _any(T2_WORDS, source), _any(T1_WORDS, source), _any(PD_WORDS, source)
        if pd_word and not (t2_word or t1_word):
            return Recognition(OTHER, f"proton-density weighted ('{pd_word}' in description)")
        if t2_word and not t1_word:
            weighting, why = "T2", f"'{t2_word}' in description"
        elif t1_word and not t2_word:
            weighting, why = "T1", f"'{t1_word}' in description"
        if weighting:
            break
    if weighting is None:
        weighting, why = _weighting_from_parameters(header)
    if weighting == "T2":
        return Recognition("T2W", f"T2-weighted: {why}", fat_suppressed=fat, derived=derived)
    if weighting == "T1":
        pre = _any(PRE_CONTRAST_WORDS, description)
        post = _any(POST_CONTRAST_WORDS, description)
        if not (pre or post):
            pre, post = _any(PRE_CONTRAST_WORDS, protocol), _any(POST_CONTRAST_WORDS, protocol)
        if pre:
            return Recognition(T1_WITHOUT_CONTRAST, f"T1-weighted ({why}), pre-contrast ('{pre}' in description)")
        if header.contrast_agent or post:
            evidence = f"ContrastBolusAgent '{header.contrast_agent}'" if header.contrast_agent else f"'{post}' in description"
            return Recognition("CET1", f"T1-weighted ({why}) after contrast ({evidence})", fat_suppressed=fat, derived=derived)
        return Recognition(T1_WITHOUT_CONTRAST, f"T1-weighted ({why}) without contrast evidence")
    if weighting in ("PD", "FLAIR"):
        return Recognition(OTHER, f"{weighting}: {why}")
    return Recognition(OTHER, "no role recognised from description, sequence and timing tags")


# --------------------------------------------------------------------------------------------
# Series and Study
# --------------------------------------------------------------------------------------------


def _orientation_rank(orientation: str) -> int:
    return {"axial": 0, "oblique-axial": 1}.get(orientation, 2)


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
        from CervicalAILib.io.image_checks import sequence_problem

        series = self.series_for(role)
        if series is None:
            require_role(self, role)
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


def require_role(study: Study, role: str, why: str = "") -> None:
    """InputError when the study has no usable series for `role`, naming the series that looked like
    one and why it cannot be used (missing slices, broken geometry, unreadable files), if any."""
    role = normalise_role(role)
    if study.series_for(role) is not None:
        return
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
        raise InputError(f"series {series.key} ({series.description or 'no description'}) looks like the {role} but "
                         f"cannot be used: {defect}{skipped}", where)
    present = ", ".join(study.roles_present()) or "none"
    others = ", ".join(f"{s.key} ({s.description or s.kind})" for s in study.series[:6])
    raise InputError(
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


# --------------------------------------------------------------------------------------------
# Role assignment
# --------------------------------------------------------------------------------------------


def _rank(series: Series, role: str, chosen: dict[str, Series]) -> tuple:
    orientation = _orientation_rank(series.orientation)
    number = series.number if series.number is not None else 10**6
    if role == "T2W":
        return (orientation, series.derived, series.fat_suppressed, number)
    if role == "DWI":
        return (series.is_calculated, orientation, -(series.b_value or 0.0), number)
    if role == "ADC":
        dwi = chosen.get("DWI")
        same_grid = dwi is not None and dwi.size == series.size and dwi.direction is not None and series.direction is not None and np.allclose(dwi.direction, series.direction, atol=1e-3)
        return (orientation, not same_grid, number)
    if role == "CET1":
        return (orientation, series.derived, -number)  # later series: later (more complete) enhancement
    return (number,)


def _describe(series: Series) -> str:
    return f"series {series.key} ({series.description or 'no description'})"


def assign_roles(study: Study, role_overrides: dict[str, str] | None = None) -> None:
    """Give each role to its best candidate; overrides first, then automatic for the rest."""
    pinned: dict[str, str] = {}
    for name, role in (role_overrides or {}).items():
        series = study.find_series(name)
        role = normalise_role(role)
        if role != OTHER:
            if role in pinned.values():
                other = next(k for k, r in pinned.items() if r == role)
                raise InputError(f"role {role} given to two series ({other} and {series.key}); give it to one")
            if series.modality not in ("", "MR"):
                raise InputError(f"{_describe(series)} is {series.modality}, not MR: it cannot be used as {role}", series.path)
            if not series.usable:
                raise InputError(
                    f"{_describe(series)} cannot be used as {role}: {'; '.join(series.problems) or 'not an image volume'}",
                    series.path,
                )
        pinned[series.key] = role
    for series in study.series:
        if series.key in pinned:
            series.role, series.role_source = pinned[series.key], "override"
        elif study.source != "case" or series.role in pinned.values():
            # automatic roles are decided afresh; a case-folder role yields to an override
            series.role, series.role_source = OTHER, ""

    chosen: dict[str, Series] = {s.role: s for s in study.series if s.role in ROLES}
    for role in ("T2W", "DWI", "ADC", "CET1"):  # DWI before ADC: ADC prefers the DWI grid
        if role in chosen:
            continue
        candidates = [s for s in study.series if s.kind == role and s.key not in pinned]
        usable = [s for s in candidates if s.usable]
        for series in candidates:
            if not series.usable:
                study.problems.append(
                    f"{_describe(series)} looks like {role} but cannot be used: {'; '.join(series.problems)}"
                )
        if not usable:
            continue
        usable.sort(key=lambda s: _rank(s, role, chosen))
        best = usable[0]
        best.role, best.role_source = role, "auto"
        chosen[role] = best
        if len(usable) > 1:
            others = ", ".join(f"{s.key} ({s.orientation}{', calculated' if s.is_calculated else ''})" for s in usable[1:])
            study.notes.append(
                f"{role}: chose series {best.key} ({best.orientation}{', calculated' if best.is_calculated else ''}) "
                f"over {others}; change with --role SERIES={role}"
            )
        if role == "DWI" and best.is_calculated:
            study.notes.append(f"DWI: only a calculated b-value series was found ({_describe(best)})")

    for series in study.series:
        if series.kind == T1_WITHOUT_CONTRAST and series.role == OTHER:
            study.notes.append(
                f"{_describe(series)} looks like a T1-weighted series without contrast evidence; "
                f"if it is post-contrast, use --role {series.key}=CET1"
            )
    for role in ROLES:
        if role not in chosen:
            study.problems.append(f"no {ROLE_NAMES[role]} series found (role {role} is empty)")


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


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
        from CervicalAILib.io.image_checks import sequence_problem

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
        result.problems.extend(f"{_describe(item)}: {problem}" for problem in item.problems)
    if scan.non_image:
        result.notes.append(f"{len(scan.non_image)} DICOM object(s) without pixel data ignored (e.g. {scan.non_image[0][0].name})")
    return result
