"""Tiny synthetic DICOM MR series for tests (pydicom), with the volume they must load as.

Every voxel gets a distinct stored value (volume, slice, row and column encoded), so a slice in
the wrong place, a transposed plane or a mixed-up b-value shows up as a value mismatch. The
expected SimpleITK image carries the geometry the tags describe: origin at the first slice
along the slice normal, direction columns (row cosines, column cosines, normal), spacing
(column spacing, row spacing, slice spacing).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from CervicalAILib.io.dicom_write import save_dicom_file

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


@dataclass
class SyntheticSeries:
    files: list[Path]
    expected: dict[float | None, sitk.Image]  # b-value (None: not diffusion) -> expected volume
    series_uid: str
    study_uid: str
    datasets: list[pydicom.Dataset] = field(default_factory=list, repr=False)

    @property
    def image(self) -> sitk.Image:
        return next(iter(self.expected.values()))


def _unit(vector) -> np.ndarray:
    vector = np.asarray(vector, dtype=float)
    return vector / np.linalg.norm(vector)


def make_series(
    folder: str | Path,
    *,
    n_slices: int = 6,
    rows: int = 8,
    columns: int = 10,
    pixel_spacing: tuple[float, float] = (0.8, 0.6),  # DICOM order: between rows, between columns
    slice_spacing: float = 3.0,
    row_direction=(1.0, 0.0, 0.0),
    column_direction=(0.0, 1.0, 0.0),
    origin=(-20.0, -30.0, 10.0),
    series_number: int = 2,
    description: str = "t2_tse_tra",
    protocol: str | None = None,
    modality: str = "MR",
    patient_id: str = "PAT1",
    study_uid: str | None = None,
    series_uid: str | None = None,
    b_values: list[float] | None = None,
    b_tag: str = "standard",  # standard, siemens, siemens-ob, ge, philips, sequence-name, comments
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "M", "ND"),
    scanning_sequence: str = "SE",
    sequence_name: str | None = None,
    echo_time: float | None = 100.0,
    repetition_time: float | None = 4000.0,
    flip_angle: float | None = 90.0,
    contrast_agent: str | None = None,
    slope: float = 1.0,
    intercept: float = 0.0,
    drop_slices: tuple[int, ...] = (),
    duplicate_slices: tuple[int, ...] = (),
    names: str = "random",  # random: random names in nested folders, shuffled; ordered: IM0001.dcm ...
    seed: int = 0,
    base_value: int = 0,
    write: bool = True,
) -> SyntheticSeries:
    """Write one series (several volumes when several b-values) and return the expected volumes."""
    folder = Path(folder)
    rng = random.Random(seed)
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    frame_of_reference = generate_uid()
    row = _unit(row_direction)
    column = _unit(column_direction)
    normal = np.cross(row, column)
    volumes = b_values if b_values is not None else [None]
    datasets: list[tuple[pydicom.Dataset, str]] = []
    expected: dict[float | None, sitk.Image] = {}
    instance = 0
    for volume_index, b_value in enumerate(volumes):
        stored = np.zeros((n_slices, rows, columns), dtype=np.int32)
        for k in range(n_slices):
            r, c = np.meshgrid(np.arange(rows), np.arange(columns), indexing="ij")
            stored[k] = base_value + 1000 * volume_index + 100 * k + 10 * (r % 10) + c % 10 + 1
        image = sitk.GetImageFromArray((stored * slope + intercept).astype(np.float64 if slope != 1 or intercept % 1 else np.int32))
        image.SetSpacing((pixel_spacing[1], pixel_spacing[0], slice_spacing))
        image.SetOrigin(tuple(float(v) for v in origin))
        image.SetDirection(tuple(np.column_stack([row, column, normal]).reshape(-1)))
        expected[b_value] = image
        slices = [k for k in range(n_slices) if k not in drop_slices] + list(duplicate_slices)
        for k in slices:
            instance += 1
            ds = _dataset(stored[k], modality)
            position = np.asarray(origin, dtype=float) + k * slice_spacing * normal
            ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
            ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*row, *column)]
            ds.PixelSpacing = [f"{v:g}" for v in pixel_spacing]
            ds.SliceThickness = f"{slice_spacing:g}"
            ds.PatientID = patient_id
            ds.PatientName = f"Test^{patient_id}"
            ds.StudyInstanceUID = study_uid
            ds.SeriesInstanceUID = series_uid
            ds.FrameOfReferenceUID = frame_of_reference
            ds.SeriesNumber = series_number
            ds.InstanceNumber = instance
            ds.StudyDate = "20260101"
            ds.SeriesDescription = description
            ds.ProtocolName = protocol if protocol is not None else description
            ds.ImageType = list(image_type)
            if modality == "MR":
                ds.ScanningSequence = scanning_sequence
                ds.SequenceVariant = "NONE"
                if echo_time is not None:
                    ds.EchoTime = f"{echo_time:g}"
                if repetition_time is not None:
                    ds.RepetitionTime = f"{repetition_time:g}"
                if flip_angle is not None:
                    ds.FlipAngle = f"{flip_angle:g}"
                if sequence_name is not None:
                    ds.SequenceName = sequence_name
            if contrast_agent is not None:
                ds.ContrastBolusAgent = contrast_agent
            if slope != 1.0 or intercept != 0.0:
                ds.RescaleSlope = f"{slope:g}"
                ds.RescaleIntercept = f"{intercept:g}"
                ds.RescaleType = "US"
            if b_value is not None:
                _set_b_value(ds, b_value, b_tag)
            datasets.append((ds, f"IM{instance:04d}.dcm"))
    files: list[Path] = []
    if write:
        order = list(range(len(datasets)))
        if names == "random":
            rng.shuffle(order)
        for index in order:
            ds, ordered_name = datasets[index]
            if names == "random":
                sub = folder / f"{rng.getrandbits(24):06x}" / f"{rng.getrandbits(16):04x}"
                path = sub / f"{rng.getrandbits(48):012x}"
            else:
                path = folder / ordered_name
            path.parent.mkdir(parents=True, exist_ok=True)
            save_dicom_file(ds, path)  # pydicom 2.4 (Slicer 5.10) or 3.x
            files.append(path)
    return SyntheticSeries(files, expected, series_uid, study_uid, [d for d, _ in datasets])


def _dataset(pixels: np.ndarray, modality: str) -> pydicom.Dataset:
    meta = FileMetaDataset()
    sop_class = MRImageStorage if modality == "MR" else CT_IMAGE_STORAGE
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.Manufacturer = "SYNTHETIC"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    return ds


def _set_b_value(ds: pydicom.Dataset, b_value: float, b_tag: str) -> None:
    b = int(b_value)
    if b_tag == "standard":
        ds.DiffusionBValue = float(b_value)
    elif b_tag == "siemens":
        ds.private_block(0x0019, "SIEMENS MR HEADER", create=True).add_new(0x0C, "IS", str(b))
    elif b_tag == "siemens-ob":  # as anonymisers/explicit-VR writers leave it (ProstateX)
        ds.private_block(0x0019, "SIEMENS MR HEADER", create=True).add_new(0x0C, "OB", f"{b} ".encode()[: len(str(b)) + (len(str(b)) % 2)])
    elif b_tag == "ge":
        ds.private_block(0x0043, "GEMS_PARM_01", create=True).add_new(0x39, "IS", [str(1_000_000_000 + b), "8", "0", "0"])
    elif b_tag == "philips":
        ds.private_block(0x2001, "Philips Imaging DD 001", create=True).add_new(0x03, "FL", float(b_value))
    elif b_tag == "sequence-name":
        ds.SequenceName = f"*ep_b{b}t"
    elif b_tag == "comments":
        ds.ImageComments = f"b = {b} s/mm2"
    else:
        raise ValueError(b_tag)


def dwi_kwargs(**overrides) -> dict:
    """Keyword arguments for an acquired echo-planar diffusion series."""
    kwargs = dict(
        description="ep2d_diff_tra",
        image_type=("ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"),
        scanning_sequence="EP",
        echo_time=63.0,
        repetition_time=2700.0,
        b_values=[0.0, 400.0, 800.0],
        rows=6,
        columns=5,
        pixel_spacing=(2.0, 2.0),
        series_number=6,
    )
    kwargs.update(overrides)
    return kwargs
