"""Centres, scanners, protocols and the voxel grid of each series (with patient motion).

Each centre (A, B, ...) has a fixed scanner profile drawn from `SynthParams.center_seed`: field
strength, fat suppression on T2WI, DWI b-value, matrices, slice thickness, echo/repetition
times, and the effects harmonisation must remove: intensity gain, contrast (gamma), noise level,
ADC calibration and coil bias-field strength. The same letter is the same hospital in every
cohort. Per patient, each series gets its own field of view centre, slice positions and (for
DWI/ADC and CE-T1WI) a small rigid patient motion relative to the T2WI.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import SimpleITK as sitk

from CervicalAILib.research.synth.params import SynthParams, center_letter
from CervicalAILib.research.synth.v1.shapes import rotation_matrix

# Series written per case and the image roles they produce (ADC is computed from the DWI).
SERIES = ("T2W", "DWI", "CET1")
MAX_STORED_VALUE = 4095  # 12-bit unsigned, as MR scanners store


@dataclass
class Protocol:
    """Acquisition settings of one series at one centre."""

    role: str
    description: str
    fov_mm: float  # read-out (left-right) field of view
    phase_fov: float  # anterior-posterior field of view as a fraction of fov_mm
    matrix: int  # read-out matrix
    thickness_mm: float
    gap_fraction: float  # slice gap as a fraction of the thickness
    coverage_mm: float  # craniocaudal coverage
    echo_time_ms: float
    repetition_time_ms: float
    flip_angle_deg: float
    echo_train_length: int
    gain: float  # scanner intensity scale
    gamma: float  # contrast curve around CONTRAST_REFERENCE
    noise: float  # noise sd before gain (relative signal units)
    scanning_sequence: str
    sequence_variant: str
    scan_options: str
    acquisition_type: str  # "2D" or "3D"


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
    bias_amplitude: float  # strength of the coil bias field
    t2: Protocol
    dwi: Protocol
    cet1: Protocol

    def protocol(self, role: str) -> Protocol:
        return {"T2W": self.t2, "DWI": self.dwi, "ADC": self.dwi, "CET1": self.cet1}[role]

    def to_dict(self) -> dict:
        return asdict(self)


def center_profile(index: int, params: SynthParams) -> CenterProfile:
    """The scanner and protocols of centre `index` (deterministic in params.center_seed)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(params.center_seed), int(index), 7]))
    field = 3.0 if rng.random() < 0.55 else 1.5
    fat_sat = bool(rng.random() < 0.65)
    b_value = 1000.0 if rng.random() < 0.6 else 800.0
    snr = 1.0 if field == 3.0 else 1.35  # noise multiplier at 1.5 T
    t2 = Protocol(
        role="T2W",
        description="T2 TSE TRA FS" if fat_sat else "T2 TSE TRA",
        fov_mm=float(rng.uniform(200, 240)),
        phase_fov=1.0,
        matrix=int(rng.choice([288, 320, 320, 320])),
        thickness_mm=float(rng.choice([3.0, 3.5, 4.0, 4.0, 4.5, 5.0])),
        gap_fraction=float(rng.choice([0.0, 0.1, 0.1, 0.2])),
        coverage_mm=float(rng.uniform(95, 115)),
        echo_time_ms=float(rng.uniform(85, 110)),
        repetition_time_ms=float(rng.uniform(3500, 6500)),
        flip_angle_deg=float(rng.choice([120.0, 150.0, 160.0])),
        echo_train_length=int(rng.integers(14, 26)),
        gain=float(rng.uniform(1.1, 2.0)),
        gamma=float(rng.uniform(0.88, 1.12)),
        noise=float(rng.uniform(6.0, 12.0) * snr),
        scanning_sequence="SE",
        sequence_variant="SK\\SP\\OSP",
        scan_options="FS\\PFP" if fat_sat else "PFP",
        acquisition_type="2D",
    )
    dwi_matrix = int(rng.choice([144, 160, 176, 192]))
    dwi = Protocol(
        role="DWI",
        description=f"ep2d_diff_tra b{int(b_value)}",
        fov_mm=float(np.clip(dwi_matrix * rng.uniform(1.6, 2.3), 300, 380)),
        phase_fov=float(rng.uniform(0.75, 0.85)),
        matrix=dwi_matrix,
        thickness_mm=float(rng.choice([4.0, 4.0, 4.5, 5.0])),
        gap_fraction=float(rng.choice([0.0, 0.1, 0.2])),
        coverage_mm=float(rng.uniform(105, 125)),
        echo_time_ms=float(rng.uniform(55, 78)),
        repetition_time_ms=float(rng.uniform(4000, 7500)),
        flip_angle_deg=90.0,
        echo_train_length=1,
        gain=float(rng.uniform(0.8, 1.6)),
        gamma=1.0,
        noise=float(rng.uniform(5.0, 9.0) * snr),
        scanning_sequence="EP",
        sequence_variant="SK\\SP",
        scan_options="FS",
        acquisition_type="2D",
    )
    cet1_matrix = int(rng.choice([288, 300, 320]))
    cet1 = Protocol(
        role="CET1",
        description="T1 VIBE TRA POST GD",
        fov_mm=float(np.clip(cet1_matrix * rng.uniform(1.0, 1.2), 290, 370)),
        phase_fov=float(rng.uniform(0.75, 0.85)),
        matrix=cet1_matrix,
        thickness_mm=float(rng.choice([2.0, 2.5, 2.5, 3.0])),
        gap_fraction=0.0,
        coverage_mm=float(rng.uniform(92, 110)),
        echo_time_ms=float(rng.uniform(1.4, 2.5)),
        repetition_time_ms=float(rng.uniform(3.5, 5.5)),
        flip_angle_deg=float(rng.choice([9.0, 10.0, 12.0])),
        echo_train_length=1,
        gain=float(rng.uniform(1.4, 2.6)),
        gamma=float(rng.uniform(0.88, 1.12)),
        noise=float(rng.uniform(6.0, 12.0) * snr),
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
        bias_amplitude=float(rng.uniform(0.06, 0.25)),
        t2=t2,
        dwi=dwi,
        cet1=cet1,
    )


@dataclass
class SeriesGeometry:
    """Voxel grid of one series and the patient motion it saw (anatomy = T2WI physical space).

    A point a of the patient (T2WI space) appears in this series at R (a - c) + c + t.
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

    def index_to_anatomy(self) -> tuple[np.ndarray, np.ndarray]:
        """(A, b): anatomy point = A @ (i, j, k) + b."""
        rt = self.motion_rotation.T
        a = rt @ self.direction @ np.diag(self.spacing)
        b = rt @ (self.origin - self.motion_center - self.motion_translation) + self.motion_center
        return a, b

    def empty_image(self, pixel_type=sitk.sitkInt16) -> sitk.Image:
        image = sitk.Image([int(v) for v in self.size], pixel_type)
        self.apply(image)
        return image

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
            "motion_from_t2": {
                "convention": "x_series = R (x_t2 - center) + center + translation (LPS mm); "
                "as a SimpleITK Euler3DTransform it resamples this series onto the T2W grid",
                "rotation_deg_xyz": [round(float(v), 5) for v in self.motion_angles_deg],
                "matrix": [round(float(v), 10) for v in self.motion_rotation.flatten()],
                "translation_mm": [round(float(v), 5) for v in self.motion_translation],
                "center_mm": [round(float(v), 5) for v in self.motion_center],
            },
        }


def series_geometry(protocol: Protocol, rng: np.random.Generator, fov_center: np.ndarray, params: SynthParams,
                    motion_center: np.ndarray, moved: bool) -> SeriesGeometry:
    """Grid of one series around `fov_center` (scanner LPS), axial, with optional patient motion."""
    fov = protocol.fov_mm * float(rng.uniform(0.96, 1.04))
    nx = max(16, int(round(protocol.matrix * params.matrix_scale)))
    ny = max(16, int(round(nx * protocol.phase_fov)))
    pixel = fov / nx
    spacing_z = protocol.thickness_mm * (1 + protocol.gap_fraction)
    nz = max(4, int(round(protocol.coverage_mm * float(rng.uniform(0.95, 1.05)) / spacing_z)))
    spacing = (pixel, pixel, spacing_z)
    direction = np.eye(3)
    size = (nx, ny, nz)
    origin = np.asarray(fov_center, dtype=float) - direction @ (np.asarray(spacing) * (np.asarray(size) - 1) / 2)
    if moved:
        angles = tuple(float(a) for a in rng.normal(0, params.motion_rotation_sd_deg, size=3))
        rotation = rotation_matrix(*(math.radians(a) for a in angles))
        translation = rng.normal(0, params.motion_translation_sd_mm, size=3)
    else:
        angles, rotation, translation = (0.0, 0.0, 0.0), np.eye(3), np.zeros(3)
    return SeriesGeometry(
        role=protocol.role,
        size=size,
        spacing=spacing,
        slice_thickness=protocol.thickness_mm,
        origin=origin,
        direction=direction,
        motion_rotation=rotation,
        motion_translation=np.asarray(translation, dtype=float),
        motion_center=np.asarray(motion_center, dtype=float),
        motion_angles_deg=angles,
    )
