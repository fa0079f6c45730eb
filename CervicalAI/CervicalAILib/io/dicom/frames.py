"""DICOM frames and scanning: a folder is scanned at any depth and file names are ignored (a file is
DICOM when it says so: the `DICM` marker, or a raw data set starting with a DICOM group); every 2D
image (a single-frame file, or one frame of an enhanced multi-frame file) becomes a `DicomFrame` that
carries what grouping and geometry need, with the series' `SeriesHeader`."""


from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from CervicalAILib.core.progress import ProgressCallback, no_progress
from CervicalAILib.io.dicom.tags import (
    plausible_b_value,
    read_b_value,
    read_contrast_agent,
    tag_integer,
    tag_number,
    tag_numbers,
    tag_text,
)
from CervicalAILib.io.images import is_image_file

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
    # values that can tell apart volumes sharing slice positions (see volumes.SPLIT_KEYS)
    split_values: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name if self.frame is None else f"{self.path.name}[frame {self.frame + 1}]"


def _header(ds: Any) -> SeriesHeader:
    return SeriesHeader(
        modality=tag_text(ds.get("Modality")).upper(),
        sop_class_uid=tag_text(ds.get("SOPClassUID")),
        study_uid=tag_text(ds.get("StudyInstanceUID")),
        patient_id=tag_text(ds.get("PatientID")) or tag_text(ds.get("PatientName")),
        study_date=tag_text(ds.get("StudyDate")),
        study_description=tag_text(ds.get("StudyDescription")),
        accession_number=tag_text(ds.get("AccessionNumber")),
        series_uid=tag_text(ds.get("SeriesInstanceUID")),
        series_number=tag_integer(ds.get("SeriesNumber")),
        series_description=tag_text(ds.get("SeriesDescription")),
        protocol_name=tag_text(ds.get("ProtocolName")),
        sequence_name=tag_text(ds.get("SequenceName")) or tag_text(ds.get("PulseSequenceName")),
        scanning_sequence=tag_text(ds.get("ScanningSequence")).upper(),
        sequence_variant=tag_text(ds.get("SequenceVariant")).upper(),
        scan_options=tag_text(ds.get("ScanOptions")).upper(),
        image_type=tuple(v.strip().upper() for v in tag_text(ds.get("ImageType")).split("\\") if v.strip()),
        echo_time=tag_number(ds.get("EchoTime")),
        repetition_time=tag_number(ds.get("RepetitionTime")),
        inversion_time=tag_number(ds.get("InversionTime")),
        flip_angle=tag_number(ds.get("FlipAngle")),
        contrast_agent=read_contrast_agent(ds),
        image_comments=tag_text(ds.get("ImageComments")),
        manufacturer=tag_text(ds.get("Manufacturer")),
        acquisition_type=tag_text(ds.get("MRAcquisitionType")).upper(),
        frame_of_reference_uid=tag_text(ds.get("FrameOfReferenceUID")),
        samples_per_pixel=tag_integer(ds.get("SamplesPerPixel")) or 1,
    )


def _single_frame(path: Path, ds: Any, header: SeriesHeader) -> DicomFrame:
    gradient = tag_numbers(ds.get("DiffusionGradientOrientation"), 3)
    return DicomFrame(
        path=path,
        frame=None,
        sop_uid=tag_text(ds.get("SOPInstanceUID")),
        header=header,
        rows=tag_integer(ds.get("Rows")) or 0,
        columns=tag_integer(ds.get("Columns")) or 0,
        pixel_spacing=tag_numbers(ds.get("PixelSpacing"), 2),
        orientation=tag_numbers(ds.get("ImageOrientationPatient"), 6),
        position=tag_numbers(ds.get("ImagePositionPatient"), 3),
        b_value=read_b_value(ds),
        slope=tag_number(ds.get("RescaleSlope")) or 1.0,
        intercept=tag_number(ds.get("RescaleIntercept")) or 0.0,
        instance_number=tag_integer(ds.get("InstanceNumber")),
        split_values={
            "gradient": tuple(round(g, 3) for g in gradient) if gradient else None,
            "temporal_position": tag_integer(ds.get("TemporalPositionIdentifier")),
            "trigger_time": tag_number(ds.get("TriggerTime")),
            "echo": (tag_integer(ds.get("EchoNumbers")), tag_number(ds.get("EchoTime"))),
            "acquisition_number": tag_integer(ds.get("AcquisitionNumber")),
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
    count = tag_integer(ds.get("NumberOfFrames")) or 1
    shared = ds.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in ds else None
    per_frame = ds.PerFrameFunctionalGroupsSequence
    if len(per_frame) != count:
        raise ValueError(f"NumberOfFrames is {count} but there are {len(per_frame)} per-frame groups")
    if header.echo_time is None:
        header.echo_time = tag_number(_functional(per_frame[0], shared, "MREchoSequence", "EffectiveEchoTime"))
    if header.repetition_time is None:
        header.repetition_time = tag_number(
            _functional(per_frame[0], shared, "MRTimingAndRelatedParametersSequence", "RepetitionTime")
        )
    if header.flip_angle is None:
        header.flip_angle = tag_number(
            _functional(per_frame[0], shared, "MRTimingAndRelatedParametersSequence", "FlipAngle")
        )
    frames = []
    sop_uid = tag_text(ds.get("SOPInstanceUID"))
    for index in range(count):
        group = per_frame[index]

        def get(sequence: str, attribute: str, group=group) -> Any:
            return _functional(group, shared, sequence, attribute)

        b_value = plausible_b_value(tag_number(get("MRDiffusionSequence", "DiffusionBValue")))
        gradient = None
        if "MRDiffusionSequence" in group:
            diffusion = group.MRDiffusionSequence[0]
            if "DiffusionGradientDirectionSequence" in diffusion:
                gradient = tag_numbers(
                    diffusion.DiffusionGradientDirectionSequence[0].get("DiffusionGradientOrientation"), 3
                )
        frame_type = tuple(
            v.strip().upper() for v in tag_text(get("MRImageFrameTypeSequence", "FrameType")).split("\\") if v.strip()
        )
        frames.append(
            DicomFrame(
                path=path,
                frame=index,
                sop_uid=f"{sop_uid}#{index + 1}",
                header=header,
                rows=tag_integer(ds.get("Rows")) or 0,
                columns=tag_integer(ds.get("Columns")) or 0,
                pixel_spacing=tag_numbers(get("PixelMeasuresSequence", "PixelSpacing"), 2),
                orientation=tag_numbers(get("PlaneOrientationSequence", "ImageOrientationPatient"), 6),
                position=tag_numbers(get("PlanePositionSequence", "ImagePositionPatient"), 3),
                b_value=b_value,
                slope=tag_number(get("PixelValueTransformationSequence", "RescaleSlope")) or 1.0,
                intercept=tag_number(get("PixelValueTransformationSequence", "RescaleIntercept")) or 0.0,
                instance_number=index + 1,
                split_values={
                    "gradient": tuple(round(g, 3) for g in gradient) if gradient else None,
                    "temporal_position": tag_integer(get("FrameContentSequence", "TemporalPositionIndex")),
                    "trigger_time": tag_number(get("CardiacSynchronizationSequence", "NominalCardiacTriggerDelayTime")),
                    "echo": (None, tag_number(get("MREchoSequence", "EffectiveEchoTime"))),
                    "acquisition_number": None,
                    "image_type": frame_type or header.image_type,
                    "stack": tag_text(get("FrameContentSequence", "StackID")) or None,
                },
            )
        )
    return frames


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
    if file_meta is not None and tag_text(file_meta.get("MediaStorageSOPClassUID")) == MEDIA_DIRECTORY_SOP_CLASS:
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
    if (tag_integer(ds.get("NumberOfFrames")) or 1) > 1:
        raise ValueError("multi-frame image without per-frame geometry (functional groups): not supported")
    return [_single_frame(path, ds, header)]


def scan_paths(paths: Iterable[str | Path], progress: ProgressCallback | None = None) -> ScanResult:
    """Scan files and folders (any depth, any file names) for DICOM images and image files."""
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
