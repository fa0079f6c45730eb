"""DICOM folders: find the files, group them into series and volumes, build 3D images.

A folder is scanned at any depth and file names are ignored: a file is DICOM when it says so
(the `DICM` marker, or a raw data set starting with a DICOM group). Every 2D image (a
single-frame file, or one frame of an enhanced multi-frame file) becomes a `DicomFrame` that
carries what grouping and geometry need. Frames are grouped

    SeriesInstanceUID -> same plane geometry (orientation, matrix, pixel spacing)
                      -> volumes (frames that share slice positions are split, first by b-value,
                         then by gradient direction, temporal position, echo, ...)

and each volume is checked before it may become an image: slices sorted along the slice normal
(from ImagePositionPatient and ImageOrientationPatient, never from file names or instance
numbers), uniform spacing (a missing or duplicated slice is reported, never interpolated),
slices stacked along the normal. The image is built with numpy from the sorted frames with the
rescale slope/intercept applied, and its origin/spacing/direction come from the tags.

Nothing here decides what a series *is* (T2W, DWI, ...): that is `io.study`.
"""

from __future__ import annotations

import os
import re
import struct
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from CervicalAILib.core.errors import InputError
from CervicalAILib.core.progress import ProgressCallback, no_progress

# Files that are certainly not DICOM: skipped without trying to parse them.
NON_DICOM_SUFFIXES = (
    ".txt", ".json", ".xml", ".csv", ".tsv", ".md", ".html", ".htm", ".pdf", ".png", ".jpg", ".jpeg",
    ".gif", ".bmp", ".tif", ".tiff", ".zip", ".gz", ".tar", ".7z", ".py", ".yaml", ".yml", ".ini",
    ".log", ".exe", ".bat", ".sh", ".db", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".raw", ".bval",
    ".bvec", ".doc", ".docx", ".xls", ".xlsx",
)
# Suffixes under which a file that fails to parse is reported as a corrupt DICOM file.
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima", ".dic")
MEDIA_DIRECTORY_SOP_CLASS = "1.2.840.10008.1.3.10"  # DICOMDIR

# Tolerances (mm). Positions are written with many decimals by scanners; some round to 0.01 mm.
DUPLICATE_POSITION_MM = 0.01
ORIENTATION_TOLERANCE = 1e-3  # per direction-cosine component
RELATIVE_SPACING_TOLERANCE = 0.01  # 1 % of the slice spacing
MIN_SPACING_TOLERANCE_MM = 0.005


# --------------------------------------------------------------------------------------------
# Header values
# --------------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("latin-1", errors="replace")
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(_text(v) for v in value)
    return str(value).strip().strip("\x00").strip()


def _number(value: Any) -> float | None:
    """A finite float from a DS/IS/FD value (first of several), or None."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        if len(value) == 0:
            return None
        value = value[0]
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _numbers(value: Any, count: int) -> tuple[float, ...] | None:
    """Exactly `count` finite floats from a multi-valued element, or None."""
    if value is None:
        return None
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    if len(numbers) != count or not all(np.isfinite(numbers)):
        return None
    return numbers


def _integer(value: Any) -> int | None:
    number = _number(value)
    return int(round(number)) if number is not None else None


def _private_number(element: Any, binary_float: bool = False) -> float | None:
    """Number from a private element that may arrive as text (IS/DS), a float (FL/FD) or raw bytes.

    Anonymisers and explicit-VR writers often turn private tags into OB/UN, so the same tag can
    come as b'800 ' (Siemens, text) or 4 bytes of a little-endian float (Philips FL).
    """
    value = element.value
    if isinstance(value, bytes):
        if binary_float and len(value) in (4, 8):
            return struct.unpack("<f" if len(value) == 4 else "<d", value)[0]
        text = value.decode("latin-1", errors="replace").strip("\x00 ").split("\\")[0].strip()
        try:
            return float(text)
        except ValueError:
            if len(value) in (4, 8):
                return struct.unpack("<f" if len(value) == 4 else "<d", value)[0]
            return None
    return _number(value)


def _private_element(ds: Any, group: int, offset: int, creator: str, fallback_tag: int) -> Any | None:
    """A private element found through its creator block, else at the conventional tag."""
    try:
        return ds.private_block(group, creator)[offset]
    except (KeyError, ValueError):
        pass
    return ds[fallback_tag] if fallback_tag in ds else None


_SEQUENCE_NAME_B = re.compile(r"b(\d{1,5})(?:t|#|$|[^\d_])")
_SEQUENCE_NAME_B_RANGE = re.compile(r"b(\d{1,5})_(\d{1,5})")
_TEXT_B = re.compile(r"(?<![a-z])b[\s_-]*(?:value)?[\s_:=-]*(\d{1,5})(?![\d.])")


def _plausible_b(value: float | None) -> float | None:
    if value is None or not np.isfinite(value) or value < 0 or value > 100000:
        return None
    return float(value)


def read_b_value(ds: Any) -> float | None:
    """The diffusion b-value (s/mm^2) of a single-frame image, or None.

    Sources in order: DiffusionBValue (0018,9087); Siemens B_value (0019,100C); GE
    slop_int_6 (0043,1039), first value, with GE's 10^9 offset removed; Philips (2001,1003);
    a single b-value in SequenceName ("*ep_b800t"); ImageComments ("b=800").
    """
    if "DiffusionBValue" in ds:
        b = _plausible_b(_number(ds.DiffusionBValue))
        if b is not None:
            return b
    element = _private_element(ds, 0x0019, 0x0C, "SIEMENS MR HEADER", 0x0019100C)
    if element is not None:
        b = _plausible_b(_private_number(element))
        if b is not None:
            return b
    element = _private_element(ds, 0x0043, 0x39, "GEMS_PARM_01", 0x00431039)
    if element is not None:
        raw = _private_number(element)
        if raw is not None:
            while raw >= 1e9:  # some GE software versions add 1,000,000,000
                raw -= 1e9
            b = _plausible_b(raw)
            if b is not None:
                return b
    element = _private_element(ds, 0x2001, 0x03, "Philips Imaging DD 001", 0x20011003)
    if element is not None:
        b = _plausible_b(_private_number(element, binary_float=True))
        if b is not None:
            return b
    sequence_name = _text(ds.get("SequenceName")).lower()
    if sequence_name and not _SEQUENCE_NAME_B_RANGE.search(sequence_name):
        match = _SEQUENCE_NAME_B.search(sequence_name)
        if match:
            return float(match.group(1))
    comments = _text(ds.get("ImageComments")).lower()
    found = {float(m) for m in _TEXT_B.findall(comments)}
    if len(found) == 1:
        return found.pop()
    return None


def description_b_value(description: str) -> float | None:
    """A single b-value named in a series description ("DWI_b1000", "diff b=800"), else None.

    Used only for series already recognised as diffusion with no b-value in any tag: a
    description names the series, not each image, and several b-values in it are ambiguous.
    """
    found = {float(m) for m in _TEXT_B.findall(description.lower())}
    return found.pop() if len(found) == 1 else None


def sequence_name_b_range(sequence_name: str) -> tuple[float, float] | None:
    """The b-value range a derived Siemens image was computed from ("*ep_b50_800" -> (50, 800))."""
    match = _SEQUENCE_NAME_B_RANGE.search(sequence_name.lower())
    return (float(match.group(1)), float(match.group(2))) if match else None


def _contrast_agent(ds: Any) -> str:
    agent = _text(ds.get("ContrastBolusAgent"))
    if not agent and "ContrastBolusAgentSequence" in ds:
        for item in ds.ContrastBolusAgentSequence:
            agent = _text(item.get("CodeMeaning")) or _text(item.get("CodeValue"))
            if agent:
                break
    if agent.lower() in {"", "none", "no", "n", "0", "-", "nil", "na", "n/a", "no contrast", "without"}:
        return ""
    return agent


# --------------------------------------------------------------------------------------------
# Frames and headers
# --------------------------------------------------------------------------------------------


@dataclass
class SeriesHeader:
    """Descriptive tags of one file, used to recognise what a series is."""

    modality: str = ""
    sop_class_uid: str = ""
    study_uid: str = ""
    patient_id: str = ""
    study_date: str = ""
    study_description: str = ""
    accession_number: str = ""
    series_uid: str = ""
    series_number: int | None = None
    series_description: str = ""
    protocol_name: str = ""
    sequence_name: str = ""
    scanning_sequence: str = ""
    sequence_variant: str = ""
    scan_options: str = ""
    image_type: tuple[str, ...] = ()
    echo_time: float | None = None
    repetition_time: float | None = None
    inversion_time: float | None = None
    flip_angle: float | None = None
    contrast_agent: str = ""
    image_comments: str = ""
    manufacturer: str = ""
    acquisition_type: str = ""
    frame_of_reference_uid: str = ""
    samples_per_pixel: int = 1

    @property
    def description(self) -> str:
        return self.series_description or self.protocol_name


@dataclass
class DicomFrame:
    """One 2D image: a single-frame file or one frame of a multi-frame file."""

    path: Path
    frame: int | None  # frame index in a multi-frame file; None for single-frame files
    sop_uid: str
    header: SeriesHeader
    rows: int
    columns: int
    pixel_spacing: tuple[float, float] | None  # (between rows, between columns) = (y, x), mm
    orientation: tuple[float, ...] | None  # ImageOrientationPatient: row cosines, column cosines
    position: tuple[float, float, float] | None  # ImagePositionPatient of the first voxel, LPS mm
    b_value: float | None
    slope: float = 1.0
    intercept: float = 0.0
    instance_number: int | None = None
    # values that can tell apart volumes sharing slice positions (see SPLIT_KEYS)
    split_values: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name if self.frame is None else f"{self.path.name}[frame {self.frame + 1}]"


# Keys that may split frames sharing slice positions into volumes, in the order they are tried.
SPLIT_KEYS: tuple[tuple[str, str], ...] = (
    ("b_value", "b"),
    ("gradient", "direction"),
    ("temporal_position", "phase"),
    ("trigger_time", "trigger"),
    ("echo", "echo"),
    ("acquisition_number", "acquisition"),
    ("image_type", "type"),
    ("stack", "stack"),
)
# Splits along these keys are successive time points: the last one is the default volume.
TEMPORAL_KEYS = {"temporal_position", "trigger_time", "acquisition_number"}


def _header(ds: Any) -> SeriesHeader:
    return SeriesHeader(
        modality=_text(ds.get("Modality")).upper(),
        sop_class_uid=_text(ds.get("SOPClassUID")),
        study_uid=_text(ds.get("StudyInstanceUID")),
        patient_id=_text(ds.get("PatientID")) or _text(ds.get("PatientName")),
        study_date=_text(ds.get("StudyDate")),
        study_description=_text(ds.get("StudyDescription")),
        accession_number=_text(ds.get("AccessionNumber")),
        series_uid=_text(ds.get("SeriesInstanceUID")),
        series_number=_integer(ds.get("SeriesNumber")),
        series_description=_text(ds.get("SeriesDescription")),
        protocol_name=_text(ds.get("ProtocolName")),
        sequence_name=_text(ds.get("SequenceName")) or _text(ds.get("PulseSequenceName")),
        scanning_sequence=_text(ds.get("ScanningSequence")).upper(),
        sequence_variant=_text(ds.get("SequenceVariant")).upper(),
        scan_options=_text(ds.get("ScanOptions")).upper(),
        image_type=tuple(v.strip().upper() for v in _text(ds.get("ImageType")).split("\\") if v.strip()),
        echo_time=_number(ds.get("EchoTime")),
        repetition_time=_number(ds.get("RepetitionTime")),
        inversion_time=_number(ds.get("InversionTime")),
        flip_angle=_number(ds.get("FlipAngle")),
        contrast_agent=_contrast_agent(ds),
        image_comments=_text(ds.get("ImageComments")),
        manufacturer=_text(ds.get("Manufacturer")),
        acquisition_type=_text(ds.get("MRAcquisitionType")).upper(),
        frame_of_reference_uid=_text(ds.get("FrameOfReferenceUID")),
        samples_per_pixel=_integer(ds.get("SamplesPerPixel")) or 1,
    )


def _single_frame(path: Path, ds: Any, header: SeriesHeader) -> DicomFrame:
    gradient = _numbers(ds.get("DiffusionGradientOrientation"), 3)
    return DicomFrame(
        path=path,
        frame=None,
        sop_uid=_text(ds.get("SOPInstanceUID")),
        header=header,
        rows=_integer(ds.get("Rows")) or 0,
        columns=_integer(ds.get("Columns")) or 0,
        pixel_spacing=_numbers(ds.get("PixelSpacing"), 2),
        orientation=_numbers(ds.get("ImageOrientationPatient"), 6),
        position=_numbers(ds.get("ImagePositionPatient"), 3),
        b_value=read_b_value(ds),
        slope=_number(ds.get("RescaleSlope")) or 1.0,
        intercept=_number(ds.get("RescaleIntercept")) or 0.0,
        instance_number=_integer(ds.get("InstanceNumber")),
        split_values={
            "gradient": tuple(round(g, 3) for g in gradient) if gradient else None,
            "temporal_position": _integer(ds.get("TemporalPositionIdentifier")),
            "trigger_time": _number(ds.get("TriggerTime")),
            "echo": (_integer(ds.get("EchoNumbers")), _number(ds.get("EchoTime"))),
            "acquisition_number": _integer(ds.get("AcquisitionNumber")),
            "image_type": header.image_type,
            "stack": None,
        },
    )


def _functional(frame_group: Any, shared: Any, sequence: str, attribute: str) -> Any:
    """Attribute from a per-frame functional group macro, else from the shared one."""
    for group in (frame_group, shared):
        if group is not None and sequence in group and len(group[sequence].value) > 0:
            item = group[sequence].value[0]
            if attribute in item:
                return item.get(attribute)
    return None


def _multi_frame(path: Path, ds: Any, header: SeriesHeader) -> list[DicomFrame]:
    """Frames of an enhanced (multi-frame) image, geometry from the functional groups."""
    count = _integer(ds.get("NumberOfFrames")) or 1
    shared = ds.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in ds else None
    per_frame = ds.PerFrameFunctionalGroupsSequence
    if len(per_frame) != count:
        raise ValueError(f"NumberOfFrames is {count} but there are {len(per_frame)} per-frame groups")
    if header.echo_time is None:
        header.echo_time = _number(_functional(per_frame[0], shared, "MREchoSequence", "EffectiveEchoTime"))
    if header.repetition_time is None:
        header.repetition_time = _number(
            _functional(per_frame[0], shared, "MRTimingAndRelatedParametersSequence", "RepetitionTime")
        )
    if header.flip_angle is None:
        header.flip_angle = _number(
            _functional(per_frame[0], shared, "MRTimingAndRelatedParametersSequence", "FlipAngle")
        )
    frames = []
    sop_uid = _text(ds.get("SOPInstanceUID"))
    for index in range(count):
        group = per_frame[index]

        def get(sequence: str, attribute: str, group=group) -> Any:
            return _functional(group, shared, sequence, attribute)

        b_value = _plausible_b(_number(get("MRDiffusionSequence", "DiffusionBValue")))
        gradient = None
        if "MRDiffusionSequence" in group:
            diffusion = group.MRDiffusionSequence[0]
            if "DiffusionGradientDirectionSequence" in diffusion:
                gradient = _numbers(
                    diffusion.DiffusionGradientDirectionSequence[0].get("DiffusionGradientOrientation"), 3
                )
        frame_type = tuple(
            v.strip().upper() for v in _text(get("MRImageFrameTypeSequence", "FrameType")).split("\\") if v.strip()
        )
        frames.append(
            DicomFrame(
                path=path,
                frame=index,
                sop_uid=f"{sop_uid}#{index + 1}",
                header=header,
                rows=_integer(ds.get("Rows")) or 0,
                columns=_integer(ds.get("Columns")) or 0,
                pixel_spacing=_numbers(get("PixelMeasuresSequence", "PixelSpacing"), 2),
                orientation=_numbers(get("PlaneOrientationSequence", "ImageOrientationPatient"), 6),
                position=_numbers(get("PlanePositionSequence", "ImagePositionPatient"), 3),
                b_value=b_value,
                slope=_number(get("PixelValueTransformationSequence", "RescaleSlope")) or 1.0,
                intercept=_number(get("PixelValueTransformationSequence", "RescaleIntercept")) or 0.0,
                instance_number=index + 1,
                split_values={
                    "gradient": tuple(round(g, 3) for g in gradient) if gradient else None,
                    "temporal_position": _integer(get("FrameContentSequence", "TemporalPositionIndex")),
                    "trigger_time": _number(get("CardiacSynchronizationSequence", "NominalCardiacTriggerDelayTime")),
                    "echo": (None, _number(get("MREchoSequence", "EffectiveEchoTime"))),
                    "acquisition_number": None,
                    "image_type": frame_type or header.image_type,
                    "stack": _text(get("FrameContentSequence", "StackID")) or None,
                },
            )
        )
    return frames


# --------------------------------------------------------------------------------------------
# Scanning a folder
# --------------------------------------------------------------------------------------------


@dataclass
class ScanResult:
    """What a folder scan found: image frames and every file that was not used, with why."""

    frames: list[DicomFrame] = field(default_factory=list)
    image_files: list[Path] = field(default_factory=list)  # NIfTI/NRRD/MHA files met on the way
    unreadable: list[tuple[Path, str]] = field(default_factory=list)  # looked like DICOM, could not be read
    non_image: list[tuple[Path, str]] = field(default_factory=list)  # DICOM without pixels (SR, PR, DICOMDIR...)
    ignored: list[Path] = field(default_factory=list)  # other files (text, hidden files, ...)
    files_seen: int = 0


def iter_files(paths: Iterable[Path]) -> list[Path]:
    """Every regular file under the given files/folders, at any depth, hidden entries skipped."""
    found: list[Path] = []
    for path in paths:
        if path.is_file():
            found.append(path)
            continue
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found.extend(Path(root) / name for name in sorted(files))
    return found


def _looks_like_dicom(path: Path) -> bool | None:
    """True: DICM marker; None: no marker but starts like a raw DICOM data set; False: not DICOM."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    if len(head) >= 8:
        group = int.from_bytes(head[0:2], "little")
        if group in (0x0002, 0x0008):
            return None
    return False


# The attributes read from each file (pydicom skips the rest, e.g. vendor blobs and sequences
# that are not needed, which makes scanning several times faster).
HEADER_KEYWORDS = (
    "SOPClassUID", "SOPInstanceUID", "Modality", "StudyInstanceUID", "PatientID", "PatientName", "StudyDate",
    "StudyDescription", "AccessionNumber", "SeriesInstanceUID", "SeriesNumber", "SeriesDescription",
    "ProtocolName", "SequenceName", "PulseSequenceName", "ScanningSequence", "SequenceVariant", "ScanOptions",
    "ImageType", "EchoTime", "RepetitionTime", "InversionTime", "FlipAngle", "ContrastBolusAgent",
    "ContrastBolusAgentSequence", "ImageComments", "Manufacturer", "MRAcquisitionType", "FrameOfReferenceUID",
    "SamplesPerPixel", "Rows", "Columns", "PixelSpacing", "ImageOrientationPatient", "ImagePositionPatient",
    "RescaleSlope", "RescaleIntercept", "InstanceNumber", "DiffusionBValue", "DiffusionGradientOrientation",
    "TemporalPositionIdentifier", "TriggerTime", "EchoNumbers", "AcquisitionNumber", "NumberOfFrames",
    "PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence",
    "PixelData", "FloatPixelData", "DoubleFloatPixelData",
)
# Vendor b-value tags, with their private creators in the usual and the next reserved blocks.
PRIVATE_B_VALUE_GROUPS = ((0x0019, 0x0C), (0x0043, 0x39), (0x2001, 0x03))


def _header_tags() -> list[int]:
    from pydicom.datadict import tag_for_keyword

    tags = [tag_for_keyword(keyword) for keyword in HEADER_KEYWORDS]
    for group, offset in PRIVATE_B_VALUE_GROUPS:
        for block in range(0x10, 0x14):
            tags += [(group << 16) | block, (group << 16) | (block << 8) | offset]
    return sorted(tags)


def _named_like_dicom(name: str) -> bool:
    """A name DICOM exports use: *.dcm/*.ima, no extension (IM0001), or a UID (1.3.12.2...)."""
    if name.endswith(NON_DICOM_SUFFIXES) or name in ("thumbs.db", "dicomdir", "readme", "license"):
        return False
    suffix = name.rsplit(".", 1)[-1] if "." in name else ""
    return name.endswith(DICOM_SUFFIXES) or not suffix or suffix.isdigit()


_HEADER_TAGS: list[int] | None = None


def read_frames(path: Path) -> list[DicomFrame]:
    """The image frames in one DICOM file ([] for a DICOM object without pixel data).

    Raises ValueError (with the reason) for a file that cannot be used, e.g. truncated pixel data.
    """
    import pydicom

    # defer_size: large values (pixel data, vendor blobs) are not read now, only located
    global _HEADER_TAGS
    if _HEADER_TAGS is None:
        _HEADER_TAGS = _header_tags()
    ds = pydicom.dcmread(str(path), defer_size=2048, force=True, specific_tags=_HEADER_TAGS)
    file_meta = getattr(ds, "file_meta", None)
    if file_meta is not None and _text(file_meta.get("MediaStorageSOPClassUID")) == MEDIA_DIRECTORY_SOP_CLASS:
        return []  # DICOMDIR: an index, not an image
    if "SOPClassUID" not in ds and "SeriesInstanceUID" not in ds:
        raise ValueError("not a DICOM file (no SOP class or series UID)")
    pixel_tags = (0x7FE00010, 0x7FE00008, 0x7FE00009)
    pixel_tag = next((tag for tag in pixel_tags if tag in ds), None)
    if pixel_tag is None:
        return []
    raw = ds._dict.get(pixel_tag)  # unread RawDataElement: check the declared length fits the file
    length = getattr(raw, "length", None)
    value_tell = getattr(raw, "value_tell", None)
    if length is not None and value_tell is not None and length != 0xFFFFFFFF:
        if value_tell + length > path.stat().st_size:
            raise ValueError(
                f"pixel data truncated (file has {path.stat().st_size - value_tell} of {length} bytes)"
            )
    header = _header(ds)
    if "PerFrameFunctionalGroupsSequence" in ds:
        return _multi_frame(path, ds, header)
    if (_integer(ds.get("NumberOfFrames")) or 1) > 1:
        raise ValueError("multi-frame image without per-frame geometry (functional groups): not supported")
    return [_single_frame(path, ds, header)]


def scan_paths(paths: Iterable[str | Path], progress: ProgressCallback | None = None) -> ScanResult:
    """Scan files and folders (any depth, any file names) for DICOM images and image files."""
    from CervicalAILib.io.images import is_image_file

    progress = progress or no_progress
    files = iter_files([Path(p) for p in paths])
    result = ScanResult(files_seen=len(files))
    step = max(1, len(files) // 20)
    for index, path in enumerate(files):
        if index % step == 0:
            progress(index / max(1, len(files)), f"reading DICOM headers ({index}/{len(files)} files)")
        name = path.name.lower()
        if is_image_file(path):
            result.image_files.append(path)
            continue
        if path.name.startswith("."):
            result.ignored.append(path)
            continue
        kind = _looks_like_dicom(path)
        if kind is False:
            if _named_like_dicom(name):
                result.unreadable.append((path, "not a DICOM file (no DICM marker, no DICOM header)"))
            else:
                result.ignored.append(path)
            continue
        try:
            with warnings.catch_warnings():  # pydicom warns about odd headers; problems are reported below
                warnings.simplefilter("ignore")
                frames = read_frames(path)
        except Exception as exc:  # any parse failure: skip the file, report it, continue
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            result.unreadable.append((path, f"cannot read DICOM file ({reason})"))
            continue
        if not frames:
            result.non_image.append((path, "DICOM object without pixel data"))
            continue
        result.frames.extend(frames)
    progress(1.0, f"read {len(result.frames)} DICOM images")
    return result


# --------------------------------------------------------------------------------------------
# Volumes
# --------------------------------------------------------------------------------------------


def _normal(orientation: tuple[float, ...]) -> np.ndarray:
    row = np.asarray(orientation[:3], dtype=float)
    column = np.asarray(orientation[3:], dtype=float)
    normal = np.cross(row, column)
    norm = np.linalg.norm(normal)
    return normal / norm if norm > 0 else normal


def _fmt(values: Iterable[float], digits: int = 2) -> str:
    return ", ".join(f"{v:.{digits}f}" for v in values)


@dataclass
class DicomVolume:
    """Frames of one 3D volume (one b-value, one time point, ...), sorted along the slice normal."""

    frames: list[DicomFrame]
    label: str = ""  # e.g. "b=800" when split from a series with several volumes
    split: dict[str, Any] = field(default_factory=dict)  # split key -> value for this volume
    problems: list[str] = field(default_factory=list)
    origin: tuple[float, float, float] | None = None
    direction: tuple[float, ...] | None = None  # 9 values, row-major, columns = row, column, normal
    spacing: tuple[float, float, float] | None = None
    size: tuple[int, int, int] | None = None
    description_b: float | None = None  # b-value from the series description, when no tag has one

    @property
    def usable(self) -> bool:
        return not self.problems

    @property
    def b_value(self) -> float | None:
        b_value = self.split.get("b_value", self.frames[0].b_value if self.frames else None)
        return b_value if b_value is not None else self.description_b

    @property
    def folder(self) -> Path:
        folders = Counter(frame.path.parent for frame in self.frames)
        return folders.most_common(1)[0][0]

    def check(self) -> None:
        """Sort the frames along the slice normal and check they form a regular volume."""
        self.problems = []
        first = self.frames[0]
        if first.header.samples_per_pixel != 1:
            self.problems.append("colour (RGB) images, not a greyscale MR volume")
        if first.orientation is None or first.position is None or first.pixel_spacing is None:
            missing = [
                name
                for name, value in (
                    ("ImageOrientationPatient", first.orientation),
                    ("ImagePositionPatient", first.position),
                    ("PixelSpacing", first.pixel_spacing),
                )
                if value is None
            ]
            self.problems.append(f"no slice geometry ({', '.join(missing)} missing): cannot place it in space")
            return
        from CervicalAILib.io.image_checks import MAX_SPACING_MM, MIN_SPACING_MM

        pixel_spacing = np.asarray(first.pixel_spacing, dtype=float)
        if not np.all(np.isfinite(pixel_spacing)) or np.any(pixel_spacing <= 0):
            self.problems.append(f"PixelSpacing {_fmt(first.pixel_spacing, 4)} mm is not positive: the voxel size is "
                                 "unknown, so nothing can be measured")
            return
        if np.any(pixel_spacing < MIN_SPACING_MM) or np.any(pixel_spacing > MAX_SPACING_MM):
            self.problems.append(f"PixelSpacing {_fmt(first.pixel_spacing, 4)} mm is not plausible for MRI (each "
                                 f"must lie between {MIN_SPACING_MM:g} and {MAX_SPACING_MM:g} mm)")
            return
        row = np.asarray(first.orientation[:3], dtype=float)
        column = np.asarray(first.orientation[3:], dtype=float)
        if not (np.all(np.isfinite(row)) and np.all(np.isfinite(column))) or abs(np.linalg.norm(row) - 1) > 0.01 or abs(np.linalg.norm(column) - 1) > 0.01 or abs(row @ column) > 0.01:
            self.problems.append(f"ImageOrientationPatient ({_fmt(first.orientation, 4)}) is not two orthogonal unit vectors")
            return
        row /= np.linalg.norm(row)
        column /= np.linalg.norm(column)
        normal = np.cross(row, column)
        distances = np.array([np.asarray(f.position) @ normal for f in self.frames])
        order = np.argsort(distances, kind="stable")
        self.frames = [self.frames[i] for i in order]
        distances = distances[order]
        self.size = (first.columns, first.rows, len(self.frames))
        self.origin = tuple(float(v) for v in self.frames[0].position)
        self.direction = tuple(float(v) for v in np.column_stack([row, column, normal]).reshape(-1))
        spacing_xy = (first.pixel_spacing[1], first.pixel_spacing[0])  # PixelSpacing is (row, column)
        if len(self.frames) < 2:
            self.spacing = (*spacing_xy, 0.0)
            self.problems.append(f"single slice ({first.name}): a 2D image, not usable as a 3D volume")
            return
        steps = np.diff(distances)
        duplicated = np.flatnonzero(steps < DUPLICATE_POSITION_MM)
        if duplicated.size:
            i = int(duplicated[0])
            self.problems.append(
                f"duplicated slices: {duplicated.size} slice position(s) occur more than once, e.g. "
                f"{self.frames[i].name} and {self.frames[i + 1].name} both at {distances[i]:.2f} mm along the "
                f"slice normal, in {self.folder}"
            )
            self.spacing = (*spacing_xy, float(np.median(steps)))
            return
        spacing = float(np.median(steps))
        if spacing > MAX_SPACING_MM:
            self.problems.append(f"slices are {spacing:g} mm apart: not plausible for MRI (at most {MAX_SPACING_MM:g} mm)")
            return
        tolerance = max(MIN_SPACING_TOLERANCE_MM, RELATIVE_SPACING_TOLERANCE * spacing)
        irregular = np.flatnonzero(np.abs(steps - spacing) > tolerance)
        if irregular.size:
            details = []
            for i in irregular[:3]:
                gap = steps[i]
                if gap > spacing:
                    missing = round(gap / spacing) - 1
                    what = f"about {missing} slice{'s' if missing != 1 else ''} missing" if missing >= 1 else "irregular gap"
                else:
                    what = "slices closer than the rest"
                details.append(
                    f"{gap:.2f} mm between {self.frames[i].name} and {self.frames[i + 1].name} ({what})"
                )
            self.problems.append(
                f"non-uniform slice spacing (expected {spacing:.2f} mm): {'; '.join(details)}"
                f"{' ...' if irregular.size > 3 else ''} in {self.folder}; not interpolated"
            )
        offsets = np.array([np.asarray(f.position) - np.asarray(self.origin) for f in self.frames])
        in_plane = offsets - np.outer(offsets @ normal, normal)
        shift = float(np.max(np.linalg.norm(in_plane, axis=1)))
        if shift > max(0.05, 0.05 * min(spacing_xy)):
            self.problems.append(
                f"slices are not stacked along the slice normal (in-plane shift up to {shift:.2f} mm, "
                "tilted or sheared stack)"
            )
        # the grid spacing: mean step over the whole stack (equal to each step within tolerance)
        self.spacing = (*spacing_xy, float((distances[-1] - distances[0]) / (len(distances) - 1)))

    def image(self) -> sitk.Image:
        """Build the 3D image (LPS), rescale slope/intercept applied; InputError if not usable."""
        if self.problems:
            raise InputError(f"cannot build a volume: {self.problems[0]}", self.folder)
        planes = []
        decoded: dict[Path, np.ndarray] = {}
        rescaled = False
        for frame in self.frames:
            pixels = _frame_pixels(frame, decoded)
            if pixels.shape != (frame.rows, frame.columns):
                raise InputError(
                    f"pixel data is {pixels.shape[1]}x{pixels.shape[0]}, header says {frame.columns}x{frame.rows}",
                    frame.path,
                )
            if frame.slope != 1.0 or frame.intercept != 0.0:
                rescaled = True
                pixels = pixels.astype(np.float64) * frame.slope + frame.intercept
            planes.append(pixels)
        volume = np.stack(planes)
        volume = _compact_dtype(volume) if not rescaled or _is_integral(volume) else volume.astype(np.float32)
        image = sitk.GetImageFromArray(volume)
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image


def _is_integral(array: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(array)) and np.all(np.equal(np.mod(array, 1), 0)))


def _compact_dtype(array: np.ndarray) -> np.ndarray:
    """Integer data in the smallest of int16 / uint16 / int32 that holds it."""
    if array.dtype.kind == "f" and not _is_integral(array):
        return array.astype(np.float32)
    low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
    if low >= -32768 and high <= 32767:
        return array.astype(np.int16)
    if low >= 0 and high <= 65535:
        return array.astype(np.uint16)
    if low >= -(2**31) and high <= 2**31 - 1:
        return array.astype(np.int32)
    return array.astype(np.float32)


def _frame_pixels(frame: DicomFrame, decoded: dict[Path, np.ndarray]) -> np.ndarray:
    """The stored pixel values of one frame (before rescale); multi-frame files decoded once."""
    import pydicom

    if frame.path not in decoded:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(str(frame.path), force=True)
                array = ds.pixel_array
        except Exception as pydicom_error:  # e.g. a compression pydicom has no decoder for: try GDCM
            try:
                array = sitk.GetArrayFromImage(sitk.ReadImage(str(frame.path)))
            except RuntimeError:
                raise InputError(f"cannot decode pixel data ({pydicom_error})", frame.path) from pydicom_error
            array = array.reshape((-1, frame.rows, frame.columns)) if array.size % (frame.rows * frame.columns) == 0 else array
            if frame.frame is None and array.ndim == 3 and array.shape[0] == 1:
                array = array[0]
        if frame.frame is None:
            decoded.clear()  # single-frame files are used once: keep memory flat
        decoded[frame.path] = np.asarray(array)
    array = decoded[frame.path]
    if frame.frame is not None:
        if array.ndim == 2 and frame.frame == 0:
            return array
        return array[frame.frame]
    return array


# --------------------------------------------------------------------------------------------
# Grouping
# --------------------------------------------------------------------------------------------


@dataclass
class DicomSeries:
    """Frames of one series with one plane geometry, split into volumes."""

    key: str  # short unique name: "4", or "4.1"/"4.2" when one SeriesInstanceUID holds several geometries
    uid: str
    header: SeriesHeader
    volumes: list[DicomVolume]
    split_by: list[str] = field(default_factory=list)  # SPLIT_KEYS names that separated the volumes
    notes: list[str] = field(default_factory=list)

    @property
    def frames(self) -> list[DicomFrame]:
        return [frame for volume in self.volumes for frame in volume.frames]

    @property
    def files(self) -> list[Path]:
        return sorted({frame.path for frame in self.frames})


def _same_geometry(a: DicomFrame, b: DicomFrame) -> bool:
    if (a.rows, a.columns) != (b.rows, b.columns):
        return False
    if (a.orientation is None) != (b.orientation is None) or (a.pixel_spacing is None) != (b.pixel_spacing is None):
        return False
    if a.orientation is not None and not np.allclose(a.orientation, b.orientation, atol=ORIENTATION_TOLERANCE):
        return False
    if a.pixel_spacing is not None and not np.allclose(a.pixel_spacing, b.pixel_spacing, rtol=1e-3, atol=1e-4):
        return False
    return _map_class(a) == _map_class(b)


def _map_class(frame: DicomFrame) -> str:
    """Parametric maps stored inside an image series (Philips puts ADC beside the b-images)."""
    image_type = set(frame.split_values.get("image_type") or frame.header.image_type)
    for name in ("EADC", "ADC", "FA", "TRACE_ADC"):
        if name in image_type:
            return name
    return ""


def _position_key(frame: DicomFrame, normal: np.ndarray) -> float:
    return round(float(np.asarray(frame.position) @ normal) / DUPLICATE_POSITION_MM) if frame.position else 0


def _split_volumes(frames: list[DicomFrame]) -> tuple[list[DicomVolume], list[str]]:
    """Split frames that share slice positions into volumes (b-value first, then other keys).

    A key is accepted when it yields exactly as many groups as the most repeated position occurs
    (each group then a complete volume); keys that split finer (e.g. a per-slice trigger time)
    are skipped. Unresolved repeats stay in one volume, whose check reports them as duplicates.
    """
    if frames[0].orientation is None or frames[0].position is None:
        return [DicomVolume(frames=frames)], []
    normal = _normal(frames[0].orientation)
    repeats = max(Counter(_position_key(f, normal) for f in frames).values())
    if repeats == 1:
        return [DicomVolume(frames=frames)], []

    def value(frame: DicomFrame, key: str) -> Any:
        return frame.b_value if key == "b_value" else frame.split_values.get(key)

    def unique_positions(group: list[DicomFrame]) -> bool:
        return len({_position_key(f, normal) for f in group}) == len(group)

    used: list[str] = []
    for key, _ in SPLIT_KEYS:
        if len({_hashable(value(f, key)) for f in frames}) < 2:
            continue
        trial = used + [key]
        groups: dict[tuple, list[DicomFrame]] = defaultdict(list)
        for frame in frames:
            groups[tuple(_hashable(value(frame, k)) for k in trial)].append(frame)
        if len(groups) > repeats:
            continue  # splits finer than whole volumes: not a volume key for this series
        used = trial
        if all(unique_positions(g) for g in groups.values()):
            break
    if not used:
        return [DicomVolume(frames=frames)], []
    groups = defaultdict(list)
    for frame in frames:
        groups[tuple(_hashable(value(frame, k)) for k in used)].append(frame)
    volumes = []
    for values, group in sorted(groups.items(), key=lambda item: _sort_key(item[0])):
        split = dict(zip(used, values))
        labels = dict(SPLIT_KEYS)
        label = ", ".join(f"{labels[k]}={_label_value(v)}" for k, v in split.items())
        volumes.append(DicomVolume(frames=group, label=label, split=split))
    return volumes, used


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(value)
    return value


def _sort_key(values: tuple) -> tuple:
    return tuple((v is None, v if isinstance(v, (int, float)) else str(v)) for v in values)


def _label_value(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, tuple):
        return "/".join(_label_value(v) for v in value if v is not None)
    return str(value)


def group_series(frames: list[DicomFrame]) -> list[DicomSeries]:
    """Group frames into series (SeriesInstanceUID, then plane geometry) and volumes."""
    by_uid: dict[str, list[DicomFrame]] = defaultdict(list)
    for frame in frames:
        uid = frame.header.series_uid or f"(no SeriesInstanceUID: series {frame.header.series_number})"
        by_uid[uid].append(frame)
    series: list[DicomSeries] = []
    for uid, uid_frames in by_uid.items():
        notes = []
        unique: dict[str, DicomFrame] = {}
        for frame in uid_frames:
            if frame.sop_uid and frame.sop_uid in unique:
                notes.append(f"{frame.path} is a copy of {unique[frame.sop_uid].path} (same SOPInstanceUID): ignored")
                continue
            unique[frame.sop_uid or str(id(frame))] = frame
        clusters: list[list[DicomFrame]] = []
        for frame in sorted(unique.values(), key=lambda f: (f.instance_number or 0, str(f.path), f.frame or 0)):
            for cluster in clusters:
                if _same_geometry(cluster[0], frame):
                    cluster.append(frame)
                    break
            else:
                clusters.append([frame])
        for index, cluster in enumerate(clusters):
            volumes, split_by = _split_volumes(cluster)
            for volume in volumes:
                volume.check()
            header = cluster[0].header
            number = header.series_number
            base = str(number) if number is not None else "x"
            key = base if len(clusters) == 1 else f"{base}.{index + 1}"
            series.append(
                DicomSeries(key=key, uid=uid, header=header, volumes=volumes, split_by=split_by, notes=list(notes))
            )
    _make_keys_unique(series)
    series.sort(key=lambda s: (s.header.series_number is None, s.header.series_number or 0, s.key))
    return series


def _make_keys_unique(series: list[DicomSeries]) -> None:
    """Two SeriesInstanceUIDs with the same SeriesNumber get suffixes a, b, ..."""
    counts = Counter(s.key for s in series)
    seen: dict[str, int] = defaultdict(int)
    for item in sorted(series, key=lambda s: s.uid):
        if counts[item.key] > 1:
            suffix = "abcdefghijklmnopqrstuvwxyz"[seen[item.key] % 26]
            seen[item.key] += 1
            item.key = f"{item.key}{suffix}"


def load_dicom_series(
    paths: Iterable[str | Path], progress: ProgressCallback | None = None
) -> tuple[list[DicomSeries], ScanResult]:
    """Scan files/folders and group the DICOM images found into series."""
    scan = scan_paths(paths, progress)
    return group_series(scan.frames), scan

