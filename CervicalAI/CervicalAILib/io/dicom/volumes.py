"""DICOM series and volumes: frames grouped by series, plane geometry and the keys that split frames
sharing slice positions; each volume checked (sorted along the slice normal, uniform spacing: a
missing or duplicated slice is reported, never interpolated) before it becomes a 3D image."""


from __future__ import annotations

import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from CervicalAILib.core.errors import InputError
from CervicalAILib.core.progress import ProgressCallback
from CervicalAILib.io.dicom.frames import DicomFrame, ScanResult, SeriesHeader, scan_paths
from CervicalAILib.io.image_checks import MAX_SPACING_MM, MIN_SPACING_MM

# Tolerances (mm). Positions are written with many decimals by scanners; some round to 0.01 mm.
DUPLICATE_POSITION_MM = 0.01
ORIENTATION_TOLERANCE = 1e-3  # per direction-cosine component
RELATIVE_SPACING_TOLERANCE = 0.01  # 1 % of the slice spacing
MIN_SPACING_TOLERANCE_MM = 0.005


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
