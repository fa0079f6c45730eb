"""Centres, scanners, protocols and the voxel grid of each series (generator 2).

Each centre (A, B, ...) has a fixed scanner and protocol drawn from `SynthParams.center_seed`,
over the ranges of the ESUR cervical cancer protocol and what sites actually run: field
strength (1.5 or 3 T), T2WI axial or oblique axial perpendicular to the cervical canal (and a
sagittal T2WI), field of view, acquisition and reconstruction matrices (scanners interpolate),
slice thickness 3-6 mm with gaps, echo/repetition times, bandwidth, number of averages (SNR),
phase-encoding direction, fat suppression, DWI b-value 800 or 1000, EPI parameters (phase
bandwidth: distortion), CE-T1WI 3D spoiled gradient echo. The same letter is the same
hospital in every cohort. Per patient each series gets its own field-of-view centre, a little
variation of the field of view, and (all but the T2WI) a small rigid patient motion.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import SimpleITK as sitk
from scipy import fft as sfft

from CervicalAILib.research.synth.params import SynthParams, center_letter
from CervicalAILib.research.synth.shapes import rotation_matrix
from CervicalAILib.research.synth.tissues import SequenceParameters

SERIES = ("T2W", "T2W_SAG", "DWI", "CET1")  # acquired series; ADC is computed from the DWI
MAX_STORED_VALUE = 4095  # 12-bit unsigned, as MR scanners store


@dataclass
class Protocol:
    """Acquisition settings of one series at one centre."""

    role: str
    description: str
    orientation: str  # "axial", "oblique_axial" or "sagittal"
    sequence: str  # "tse", "se_epi" or "gre3d"
    fov_mm: float  # field of view along the read-out direction
    phase_fov: float  # phase field of view as a fraction of fov_mm
    acq_matrix: int  # acquired read-out samples
    phase_resolution: float  # acquired phase lines / (acq_matrix * phase_fov)
    recon_matrix: int  # reconstructed read-out matrix (>= acq_matrix: zero-filled interpolation)
    phase_direction: str  # "ROW" (left-right in axial images) or "COL" (anterior-posterior)
    thickness_mm: float
    gap_fraction: float  # slice gap as a fraction of the thickness
    coverage_mm: float  # extent along the slice normal
    echo_time_ms: float
    repetition_time_ms: float
    flip_angle_deg: float
    echo_train_length: int
    averages: int
    bandwidth_hz_px: float  # read-out bandwidth per pixel (EPI: bandwidth per pixel along the phase)
    fat_sat: bool
    fat_sat_residual: float  # fraction of fat signal left by the fat suppression (at the centre)
    snr: float  # SNR of the reference tissue at the acquired resolution (T2WI: pure fat; DWI, CE-T1WI: muscle)
    ghost: float  # strength of motion ghosts (phase error amplitude, radians)
    gain: float  # scanner intensity scale (muscle stored at about this value)
    scanning_sequence: str
    sequence_variant: str
    scan_options: str
    acquisition_type: str  # "2D" or "3D"

    def acquired_pixel_mm(self, along_phase: bool) -> float:
        """Size of an acquired pixel at the full protocol matrix (what bandwidth per pixel refers to;
        displacements in mm do not change when a preview scales the matrices down)."""
        return self.fov_mm / (self.acq_matrix * (self.phase_resolution if along_phase else 1.0))

    def sequence_parameters(self, field_strength: float):
        return SequenceParameters(self.sequence, field_strength, self.echo_time_ms, self.repetition_time_ms,
                                  self.flip_angle_deg)


@dataclass
class CenterProfile:
    index: int
    letter: str
    manufacturer: str
    model: str
    field_strength_t: float
    t2_fat_suppression: bool
    b_value: float
    adc_scale: float  # scanner ADC calibration (multiplies every tissue's diffusivity)
    coil_strength: float  # how strongly the receive-coil profile shows (0 = fully normalised)
    t2: Protocol
    t2_sag: Protocol
    dwi: Protocol
    cet1: Protocol

    def protocol(self, role: str) -> Protocol:
        return {"T2W": self.t2, "T2W_SAG": self.t2_sag, "DWI": self.dwi, "ADC": self.dwi, "CET1": self.cet1}[role]

    def to_dict(self) -> dict:
        return asdict(self)


def _choice(rng: np.random.Generator, values) -> float:
    return values[int(rng.integers(0, len(values)))]


def _t2_protocol(rng: np.random.Generator, role: str, field: float, fat_sat: bool, snr_scale: float,
                 orientation: str) -> Protocol:
    sagittal = orientation == "sagittal"
    acq = int(_choice(rng, [256, 288, 320, 320, 384, 384, 448]))
    recon = int(min(max(acq * _choice(rng, [1.0, 1.0, 1.25, 1.5, 1.75]), acq), 448))
    averages = int(_choice(rng, [1, 2, 2, 3, 4]))
    thickness = float(_choice(rng, [3.0, 3.0, 3.5, 4.0, 4.0, 5.0, 6.0] if not sagittal else [3.0, 3.5, 4.0, 4.0, 5.0]))
    name = {"axial": "T2 TSE TRA", "oblique_axial": "T2 TSE OBL TRA", "sagittal": "T2 TSE SAG"}[orientation]
    fov = float(rng.uniform(200, 280) if sagittal else rng.uniform(180, 260))
    phase_resolution = float(rng.uniform(0.7, 1.0))
    bandwidth = float(rng.uniform(150, 320))
    # SNR of pure fat at the acquired resolution: proportional to the voxel volume, the square
    # root of the averages and 1/sqrt(bandwidth); a few tens at 3 T for 0.5 x 0.5 x 3 mm voxels
    voxel_mm3 = (fov / acq) ** 2 / phase_resolution * thickness
    snr = float(rng.uniform(12, 30)) * snr_scale * voxel_mm3 * math.sqrt(averages) * math.sqrt(200.0 / bandwidth)
    return Protocol(
        role=role,
        description=name + (" FS" if fat_sat else ""),
        orientation=orientation,
        sequence="tse",
        fov_mm=fov,
        phase_fov=float(_choice(rng, [0.75, 0.8, 0.875, 0.9, 1.0, 1.0])),
        acq_matrix=acq,
        phase_resolution=phase_resolution,
        recon_matrix=recon,
        phase_direction="COL" if sagittal else str(_choice(rng, ["ROW", "COL"])),
        thickness_mm=thickness,
        gap_fraction=float(_choice(rng, [0.0, 0.1, 0.1, 0.2, 0.3])),
        coverage_mm=float(rng.uniform(60, 90) if sagittal else rng.uniform(90, 130)),
        echo_time_ms=float(rng.uniform(85, 125)),
        repetition_time_ms=float(rng.uniform(3000, 7000)),
        flip_angle_deg=float(_choice(rng, [120.0, 140.0, 150.0, 160.0])),
        echo_train_length=int(rng.integers(13, 28)),
        averages=averages,
        bandwidth_hz_px=bandwidth,
        fat_sat=fat_sat,
        fat_sat_residual=float(rng.uniform(0.04, 0.14)),
        snr=snr,
        ghost=float(rng.choice([0.0, 0.05, 0.12, 0.25], p=[0.25, 0.35, 0.25, 0.15])),
        gain=float(rng.uniform(70, 260)),
        scanning_sequence="SE",
        sequence_variant="SK\\SP\\OSP",
        scan_options="FS\\PFP" if fat_sat else "PFP",
        acquisition_type="2D",
    )


def center_profile(index: int, params: SynthParams) -> CenterProfile:
    """The scanner and protocols of centre `index` (deterministic in params.center_seed)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(params.center_seed), int(index), 20]))
    field = 3.0 if rng.random() < 0.55 else 1.5
    snr_scale = 1.0 if field == 3.0 else 0.55
    fat_sat = bool(rng.random() < 0.15)  # ESUR: T2WI without fat suppression; some sites add it
    b_value = 1000.0 if rng.random() < 0.6 else 800.0
    t2_orientation = "oblique_axial" if rng.random() < 0.6 else "axial"
    t2 = _t2_protocol(rng, "T2W", field, fat_sat, snr_scale, t2_orientation)
    t2_sag = _t2_protocol(rng, "T2W_SAG", field, False, snr_scale, "sagittal")
    dwi_acq = int(_choice(rng, [96, 112, 128, 128, 144, 160, 176, 192]))
    dwi = Protocol(
        role="DWI",
        description=f"ep2d_diff_tra b{int(b_value)}",
        orientation="axial",
        sequence="se_epi",
        fov_mm=float(rng.uniform(260, 380)),
        phase_fov=float(rng.uniform(0.65, 1.0)),
        acq_matrix=dwi_acq,
        phase_resolution=float(rng.uniform(0.75, 1.0)),
        recon_matrix=int(min(dwi_acq * _choice(rng, [1.0, 1.0, 1.5, 2.0]), 256)),
        phase_direction="COL",
        thickness_mm=float(_choice(rng, [4.0, 4.0, 5.0, 5.0, 6.0])),
        gap_fraction=float(_choice(rng, [0.0, 0.1, 0.2])),
        coverage_mm=float(rng.uniform(100, 140)),
        echo_time_ms=float(rng.uniform(55, 85)),
        repetition_time_ms=float(rng.uniform(3000, 8000)),
        flip_angle_deg=90.0,
        echo_train_length=1,
        averages=int(_choice(rng, [2, 4, 6, 8])),
        bandwidth_hz_px=float(rng.uniform(12, 30) * (1.0 if field == 3.0 else 1.4)),  # along the phase
        fat_sat=True,
        fat_sat_residual=float(rng.uniform(0.01, 0.04)),
        snr=float(rng.uniform(10, 22) * snr_scale),
        ghost=float(rng.uniform(0.02, 0.09)),  # EPI Nyquist ghost (phase error between odd/even lines)
        gain=float(rng.uniform(60, 220)),
        scanning_sequence="EP",
        sequence_variant="SK\\SP",
        scan_options="FS",
        acquisition_type="2D",
    )
    cet1_acq = int(_choice(rng, [256, 288, 320]))
    cet1 = Protocol(
        role="CET1",
        description="T1 VIBE TRA POST GD",
        orientation="axial",
        sequence="gre3d",
        fov_mm=float(rng.uniform(280, 380)),
        phase_fov=float(rng.uniform(0.72, 0.85)),
        acq_matrix=cet1_acq,
        phase_resolution=float(rng.uniform(0.7, 0.9)),
        recon_matrix=int(min(cet1_acq * _choice(rng, [1.0, 1.0, 1.25]), 384)),
        phase_direction="COL",
        thickness_mm=float(_choice(rng, [2.0, 2.5, 3.0, 3.0])),
        gap_fraction=0.0,
        coverage_mm=float(rng.uniform(80, 110)),
        echo_time_ms=float(rng.uniform(1.3, 2.5)),
        repetition_time_ms=float(rng.uniform(3.5, 5.5)),
        flip_angle_deg=float(_choice(rng, [9.0, 10.0, 12.0, 15.0])),
        echo_train_length=1,
        averages=1,
        bandwidth_hz_px=float(rng.uniform(350, 650)),
        fat_sat=True,
        fat_sat_residual=float(rng.uniform(0.04, 0.12)),
        snr=float(rng.uniform(12, 26) * snr_scale),
        ghost=float(rng.choice([0.0, 0.05, 0.1], p=[0.4, 0.4, 0.2])),
        gain=float(rng.uniform(80, 260)),
        scanning_sequence="GR",
        sequence_variant="SP\\SK",
        scan_options="FS",
        acquisition_type="3D",
    )
    return CenterProfile(
        index=index,
        letter=center_letter(index),
        manufacturer="CervicalAI Synthetic",
        model=f"SynthScanner {field:.1f}T",
        field_strength_t=field,
        t2_fat_suppression=fat_sat,
        b_value=b_value,
        adc_scale=float(rng.uniform(0.94, 1.06)),
        coil_strength=float(rng.uniform(0.25, 0.9)),
        t2=t2,
        t2_sag=t2_sag,
        dwi=dwi,
        cet1=cet1,
    )


@dataclass
class SeriesGeometry:
    """Reconstructed voxel grid of one series and the patient motion it saw (anatomy = T2WI space).

    A point a of the patient (T2WI space) appears in this series at R (a - c) + c + t.
    `acq_size` is the acquired k-space matrix (x, y) in the grid's in-plane axes.
    """

    role: str
    size: tuple[int, int, int]  # (x, y, z) = (columns, rows, slices)
    spacing: tuple[float, float, float]  # z = spacing between slice centres
    slice_thickness: float
    origin: np.ndarray
    direction: np.ndarray
    motion_rotation: np.ndarray
    motion_translation: np.ndarray
    motion_center: np.ndarray
    motion_angles_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    acq_size: tuple[int, int] = (0, 0)
    phase_axis: int = 1  # in-plane array axis of the phase encoding: 1 = columns of the image (x), 0 = rows (y)

    def pixel_mm(self, along_phase: bool) -> float:
        """Pixel size of this grid along the phase (or read-out) direction."""
        return float(self.spacing[0] if (self.phase_axis == 1) == along_phase else self.spacing[1])

    def acquisition_grid(self) -> SeriesGeometry:
        """The grid of the acquired matrix: the same field of view with the acquired number of
        pixels (the reconstruction only interpolates; a series can be rendered there)."""
        nx, ny, nz = self.size
        ax, ay = self.acq_size
        sx, sy = self.spacing[0] * nx / ax, self.spacing[1] * ny / ay
        origin = self.origin + self.direction @ np.array([0.5 * (sx - self.spacing[0]), 0.5 * (sy - self.spacing[1]), 0.0])
        return replace(self, size=(ax, ay, nz), spacing=(sx, sy, self.spacing[2]), origin=origin)

    def index_to_anatomy(self) -> tuple[np.ndarray, np.ndarray]:
        """(A, b): anatomy point = A @ (i, j, k) + b."""
        rt = self.motion_rotation.T
        a = rt @ self.direction @ np.diag(self.spacing)
        b = rt @ (self.origin - self.motion_center - self.motion_translation) + self.motion_center
        return a, b

    def apply(self, image: sitk.Image) -> sitk.Image:
        image.SetSpacing([float(v) for v in self.spacing])
        image.SetOrigin([float(v) for v in self.origin])
        image.SetDirection([float(v) for v in self.direction.flatten()])
        return image

    def transform_from_t2(self) -> sitk.Euler3DTransform:
        """Maps T2WI physical points to this series' physical points (SimpleITK resampling convention)."""
        transform = sitk.Euler3DTransform()
        transform.SetCenter([float(v) for v in self.motion_center])
        transform.SetMatrix([float(v) for v in self.motion_rotation.flatten()])
        transform.SetTranslation([float(v) for v in self.motion_translation])
        return transform

    def truth(self) -> dict:
        return {
            "size": list(self.size),
            "spacing_mm": [round(float(v), 6) for v in self.spacing],
            "slice_thickness_mm": round(float(self.slice_thickness), 4),
            "origin_mm": [round(float(v), 4) for v in self.origin],
            "direction": [round(float(v), 8) for v in self.direction.flatten()],
            "acquired_matrix": [int(v) for v in self.acq_size],
            "phase_encoding": "columns (left-right)" if self.phase_axis == 1 else "rows",
            "motion_from_t2": {
                "convention": "x_series = R (x_t2 - center) + center + translation (LPS mm); "
                "as a SimpleITK Euler3DTransform it resamples this series onto the T2W grid",
                "rotation_deg_xyz": [round(float(v), 5) for v in self.motion_angles_deg],
                "matrix": [float(v) for v in self.motion_rotation.flatten()],  # full precision: orthogonal
                "translation_mm": [round(float(v), 5) for v in self.motion_translation],
                "center_mm": [round(float(v), 5) for v in self.motion_center],
            },
        }


def motion_transform(series_truth: dict) -> sitk.Euler3DTransform:
    """The true patient motion of one series (generator_truth.json "series"/<role>) as a transform
    from T2W physical points to that series' points; its inverse resamples T2W labels onto it."""
    motion = series_truth["motion_from_t2"]
    transform = sitk.Euler3DTransform()
    transform.SetCenter([float(v) for v in motion["center_mm"]])
    transform.SetMatrix([float(v) for v in motion["matrix"]], 1e-6)
    transform.SetTranslation([float(v) for v in motion["translation_mm"]])
    return transform


def orientation_matrix(orientation: str, slice_normal: np.ndarray | None = None) -> np.ndarray:
    """Direction matrix (columns: image x, image y, slice normal) in LPS.

    axial: identity; sagittal: x = posterior, y = inferior, normal = right (DICOM's usual sagittal);
    oblique_axial: the axial frame tilted so that the slice normal is `slice_normal`.
    """
    if orientation == "sagittal":
        return np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    if orientation == "axial" or slice_normal is None:
        return np.eye(3)
    n = np.asarray(slice_normal, dtype=float)
    n = n / np.linalg.norm(n)
    if n[2] < 0:
        n = -n
    x = np.array([1.0, 0.0, 0.0]) - n * n[0]  # stays as close to left-right as possible
    x /= np.linalg.norm(x)
    y = np.cross(n, x)
    return np.stack([x, y, n], axis=1)


def series_geometry(protocol: Protocol, rng: np.random.Generator, fov_center: np.ndarray, params: SynthParams,
                    motion_center: np.ndarray, moved: bool, slice_normal: np.ndarray | None = None) -> SeriesGeometry:
    """Grid of one series around `fov_center` (scanner LPS), with optional patient motion."""
    fov = protocol.fov_mm * float(rng.uniform(0.95, 1.05))
    scale = params.matrix_scale
    # reconstructed matrices have small prime factors, as scanners' (fast Fourier transforms)
    read = sfft.next_fast_len(max(16, int(round(protocol.recon_matrix * scale))))
    phase = sfft.next_fast_len(max(16, int(round(read * protocol.phase_fov))))
    acq_read = max(12, min(read, int(round(protocol.acq_matrix * scale))))
    acq_phase = max(12, min(phase, int(round(acq_read * protocol.phase_fov * protocol.phase_resolution))))
    pixel = fov / read
    phase_axis = 1 if protocol.phase_direction == "ROW" else 0  # ROW: phase along the image columns index (x)
    if phase_axis == 1:
        size = (phase, read)
        acq = (acq_phase, acq_read)
    else:
        size = (read, phase)
        acq = (acq_read, acq_phase)
    spacing_z = protocol.thickness_mm * (1 + protocol.gap_fraction)
    nz = max(4, int(round(protocol.coverage_mm * float(rng.uniform(0.95, 1.05)) / spacing_z)))
    spacing = (pixel, pixel, spacing_z)
    direction = orientation_matrix(protocol.orientation, slice_normal)
    full_size = (int(size[0]), int(size[1]), nz)
    origin = np.asarray(fov_center, dtype=float) - direction @ (np.asarray(spacing) * (np.asarray(full_size) - 1) / 2)
    if moved:
        angles = tuple(float(a) for a in rng.normal(0, params.motion_rotation_sd_deg, size=3))
        rotation = rotation_matrix(*(math.radians(a) for a in angles))
        translation = rng.normal(0, params.motion_translation_sd_mm, size=3)
    else:
        angles, rotation, translation = (0.0, 0.0, 0.0), np.eye(3), np.zeros(3)
    return SeriesGeometry(
        role=protocol.role,
        size=full_size,
        spacing=spacing,
        slice_thickness=protocol.thickness_mm,
        origin=origin,
        direction=direction,
        motion_rotation=rotation,
        motion_translation=np.asarray(translation, dtype=float),
        motion_center=np.asarray(motion_center, dtype=float),
        motion_angles_deg=angles,
        acq_size=(int(acq[0]), int(acq[1])),
        phase_axis=phase_axis,
    )
