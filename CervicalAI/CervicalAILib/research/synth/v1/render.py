"""Render one synthetic case: every series on its own grid, labels, noise; `generate_case`.

Rendering evaluates each structure's implicit shape only inside its bounding box on the series'
own voxel grid (patient motion folded into the index -> anatomy mapping) and paints it over
what is there with a partial-volume weight: the fraction of the voxel inside the surface,
from the signed distance and the voxel's extent along the surface normal (in-plane pixel size
for walls seen edge-on, slice thickness for surfaces parallel to the slices). Labels are
voxels more than half inside. Then come the coil bias field (smooth, separable), the centre's
gain, and Rician noise; DWI gets a b=0 and a b-high image and the ADC map is computed from
both, as on a scanner. Images are stored as 12-bit integers (int16).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import special

from CervicalAILib.core.errors import InputError
from CervicalAILib.research.synth.case import SyntheticCase
from CervicalAILib.research.synth.clinical import sample_patient
from CervicalAILib.research.synth.params import STREAM_SERIES, SynthParams, case_rng
from CervicalAILib.research.synth.v1 import VERSION as GENERATOR_VERSION
from CervicalAILib.research.synth.v1.anatomy import ORGAN_LABELS, Anatomy, build_anatomy
from CervicalAILib.research.synth.v1.scanner import (
    MAX_STORED_VALUE,
    CenterProfile,
    Protocol,
    SeriesGeometry,
    center_profile,
    series_geometry,
)
from CervicalAILib.research.synth.v1.shapes import F32, GridSampler, Layer, Structure
from CervicalAILib.research.synth.v1.tissues import (
    CONTRAST_REFERENCE,
    TISSUES,
    TUMOUR_CELLULARITY_TEXTURE,
    tissue_channels,
)

# Image roles in the order they are made; ADC comes from the DWI acquisition.
IMAGE_ROLES = ("T2W", "ADC", "DWI", "CET1")
# Latent values that only change how the tumour looks (generate_case's latent_overrides).
OVERRIDABLE_LATENTS = (
    "latent_adc", "latent_heterogeneity", "latent_enhancement_heterogeneity", "latent_enhancement_level",
)


# --------------------------------------------------------------------------------------------
# Tissue values of one series
# --------------------------------------------------------------------------------------------


def _contrast(value: float, gamma: float) -> float:
    if value <= 0 or gamma == 1.0:
        return value
    return CONTRAST_REFERENCE * (value / CONTRAST_REFERENCE) ** gamma


class _SeriesSignals:
    """Per-tissue channel values of one series, textures applied on demand."""

    def __init__(self, role: str, center: CenterProfile, anatomy: Anatomy, latent: dict[str, Any]):
        self.role = role
        self.center = center
        self.protocol: Protocol = center.protocol(role)
        self.anatomy = anatomy
        self.latent = latent
        self.b = center.b_value
        self.channels = {"T2W": ("t2",), "DWI": ("s0", "sb"), "CET1": ("t1c",)}[role]
        self._cache: dict[str, dict[str, float]] = {}

    def base(self, tissue: str) -> dict[str, float]:
        """Channel values of a tissue with patient variation, centre contrast and gain."""
        if tissue in self._cache:
            return self._cache[tissue]
        raw = tissue_channels(tissue, self.center.t2_fat_suppression)
        factors = self.anatomy.tissue_factors.get(tissue, {})
        p = self.protocol
        if tissue == "tumour":
            raw = dict(raw)
            raw["adc"] = float(self.latent["latent_adc"])
            raw["t1c"] = raw["t1c"] * float(self.latent["latent_enhancement_level"])
        if self.role == "T2W":
            out = {"t2": _contrast(raw["t2"] * factors.get("t2", 1.0), p.gamma) * p.gain}
        elif self.role == "DWI":
            s0 = raw["s0"] * factors.get("s0", 1.0) * p.gain
            adc = raw["adc"] * factors.get("adc", 1.0) * self.center.adc_scale
            out = {"s0": s0, "adc": adc, "sb": s0 * math.exp(-self.b * adc * 1e-6)}
        else:
            out = {"t1c": _contrast(raw["t1c"] * factors.get("t1c", 1.0), p.gamma) * p.gain}
        self._cache[tissue] = out
        return out

    def values(self, layer: Layer, sampler: GridSampler) -> dict[str, float | np.ndarray]:
        """Channel values for a layer: scalars, or arrays over the sampler's box for textures."""
        base = self.base(layer.tissue)
        if layer.tissue == "tumour":
            return self._tumour(base, sampler)
        if layer.texture is not None and layer.texture_amplitude:
            amplitudes = layer.texture_amplitude
            if not isinstance(amplitudes, dict):
                amplitudes = {"t2": amplitudes, "s0": amplitudes, "t1c": amplitudes}
            group = {"t2": "t2", "s0": "s0", "sb": "s0", "t1c": "t1c"}
            field = layer.texture.evaluate(sampler)
            out = {}
            for channel in self.channels:
                factor = field * F32(amplitudes.get(group[channel], 0.0))
                factor += F32(1.0)
                np.maximum(factor, F32(0.05), out=factor)
                factor *= F32(base[channel])
                out[channel] = factor
            return out
        return {channel: base[channel] for channel in self.channels}

    def _tumour(self, base: dict[str, float], sampler: GridSampler) -> dict[str, np.ndarray]:
        het = float(self.latent["latent_heterogeneity"])
        if self.role == "CET1":
            field = self.anatomy.enhancement_field.evaluate(sampler) * F32(
                float(self.latent["latent_enhancement_heterogeneity"]))
            field += F32(1.0)
            np.maximum(field, F32(0.05), out=field)
            field *= F32(base["t1c"])
            return {"t1c": field}
        cell = self.anatomy.cellularity_field.evaluate(sampler)
        if self.role == "T2W":
            t2 = cell * F32(het * TUMOUR_CELLULARITY_TEXTURE["t2"])
            t2 += F32(1.0)
            np.maximum(t2, F32(0.05), out=t2)
            t2 *= F32(base["t2"])
            return {"t2": t2}
        s0 = cell * F32(het * TUMOUR_CELLULARITY_TEXTURE["s0"])
        s0 += F32(1.0)
        np.maximum(s0, F32(0.05), out=s0)
        s0 *= F32(base["s0"])
        adc = cell * F32(het * TUMOUR_CELLULARITY_TEXTURE["adc"])
        adc += F32(1.0)
        np.maximum(adc, F32(0.2), out=adc)
        adc *= F32(base["adc"] * -self.b * 1e-6)
        np.exp(adc, out=adc)
        adc *= s0
        return {"s0": s0, "sb": adc}


# --------------------------------------------------------------------------------------------
# Painting structures onto a grid
# --------------------------------------------------------------------------------------------


def _index_box(bounds: tuple[np.ndarray, np.ndarray], a_inv: np.ndarray, b: np.ndarray,
               size: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray] | None:
    lo, hi = bounds
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    idx = (corners - b) @ a_inv.T
    start = np.maximum(np.floor(idx.min(axis=0)).astype(int) - 2, 0)
    stop = np.minimum(np.ceil(idx.max(axis=0)).astype(int) + 3, np.asarray(size))
    if np.any(stop <= start):
        return None
    return start, stop


def _occupancy(d: np.ndarray, pixel: float, thickness: float, slice_spacing: float,
               in_plane_normals: bool = False) -> np.ndarray:
    """Fraction of each voxel inside the surface (box profile along the surface normal)."""
    if d.shape[0] >= 2 and thickness > pixel and not in_plane_normals:
        nz = np.gradient(d, axis=0)
        nz *= F32(1.0 / slice_spacing)
        nz *= nz
        np.minimum(nz, F32(1.0), out=nz)
        nz *= F32(thickness**2 - pixel**2)
        nz += F32(pixel**2)
        np.sqrt(nz, out=nz)
        occ = np.divide(d, nz, out=nz)
    else:
        occ = d * F32(1.0 / pixel)
    np.subtract(F32(0.5), occ, out=occ)
    np.clip(occ, F32(0.0), F32(1.0), out=occ)
    return occ


@dataclass
class _Rendered:
    channels: dict[str, np.ndarray]
    tumour: np.ndarray
    organs: np.ndarray | None = None
    nodes: np.ndarray | None = None
    necrosis: np.ndarray | None = None


def _paint(geometry: SeriesGeometry, structures: list[Structure], bounds: dict[int, tuple], signals: _SeriesSignals,
           with_organ_labels: bool) -> _Rendered:
    a, b = geometry.index_to_anatomy()
    a_inv = np.linalg.inv(a)
    shape = tuple(int(v) for v in geometry.size[::-1])
    channels = {c: np.zeros(shape, F32) for c in signals.channels}
    tumour = np.zeros(shape, np.uint8)
    organs = np.zeros(shape, np.uint8) if with_organ_labels else None
    nodes = np.zeros(shape, np.uint8) if with_organ_labels else None
    necrosis = np.zeros(shape, np.uint8) if with_organ_labels else None
    pixel = float(np.mean(geometry.spacing[:2]))
    for structure in structures:
        if not structure.paints_intensity and not with_organ_labels:
            continue
        box = _index_box(bounds[id(structure)], a_inv, b, geometry.size)
        if box is None:
            continue
        start, stop = box
        sampler = GridSampler((a, b), start, stop)
        view = (slice(start[2], stop[2]), slice(start[1], stop[1]), slice(start[0], stop[0]))
        for li, layer in enumerate(structure.layers):
            d = layer.shape.evaluate(sampler)
            occ = _occupancy(d, pixel, geometry.slice_thickness, geometry.spacing[2], structure.in_plane_normals)
            if structure.paints_intensity:
                values = signals.values(layer, sampler)
                for channel, target in channels.items():
                    region = target[view]
                    diff = np.subtract(values[channel], region)
                    diff *= occ
                    region += diff
            if li == 0 or (layer.label is not None and with_organ_labels):
                inside = occ > 0.5
                if structure.name == "tumor" and li == 0:
                    tumour[view][inside] = 1
                if with_organ_labels:
                    organs[view][inside] = ORGAN_LABELS[layer.label or structure.label]
                    if "node_id" in structure.extra:
                        nodes[view][inside] = structure.extra["node_id"]
                    if structure.name == "tumor_necrosis":
                        necrosis[view][inside] = 1
    if with_organ_labels:
        nodes[organs != ORGAN_LABELS["lymph_node"]] = 0
    return _Rendered(channels, tumour, organs, nodes, necrosis)


# --------------------------------------------------------------------------------------------
# Scanner effects
# --------------------------------------------------------------------------------------------


def _bias_field(geometry: SeriesGeometry, rng: np.random.Generator, amplitude: float):
    """Separable smooth coil sensitivity: brighter near the anterior/posterior coil elements."""
    nx, ny, nz = geometry.size
    sx, sy, sz = geometry.spacing
    u = (np.arange(nx) - (nx - 1) / 2) * sx / 200.0
    v = (np.arange(ny) - (ny - 1) / 2) * sy / 200.0
    w = (np.arange(nz) - (nz - 1) / 2) * sz / 200.0
    c = rng.normal(0, 1, size=5)
    bx = np.exp(amplitude * (0.3 * u**2 + 0.4 * c[0] * u))
    by = np.exp(amplitude * ((0.8 + 0.3 * c[1]) * v**2 + 0.5 * c[2] * v))
    bz = np.exp(amplitude * (0.3 * c[3] * w + 0.2 * c[4] * w**2))
    plane = (by[:, None] * bx[None, :]).astype(F32)
    return plane, bz.astype(F32)


def _apply_bias(array: np.ndarray, plane: np.ndarray, bz: np.ndarray) -> None:
    array *= plane[None, :, :]
    array *= bz[:, None, None]


# Standard normal quantiles at the 65536 mid-points of (0, 1): a 16-bit inverse-CDF table.
# Drawing 16 random bits per value and looking them up is about four times faster than numpy's
# normal sampler, and for image noise the discretisation (and tails cut at 4.3 sd) is invisible.
_NORMAL_TABLE = special.ndtri((np.arange(65536) + 0.5) / 65536).astype(F32)


def _normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal noise (float32) from raw generator bits via the quantile table."""
    n = int(np.prod(shape))
    raw = rng.bit_generator.random_raw((n + 3) // 4)
    bits = raw.view(np.uint16)[:n]
    return _NORMAL_TABLE[bits].reshape(shape)


def _rician(array: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """|signal + complex Gaussian noise| (magnitude image), in place where possible."""
    real = _normal(rng, array.shape)
    real *= F32(sigma)
    real += array
    real *= real
    imag = _normal(rng, array.shape)
    imag *= F32(sigma)
    imag *= imag
    real += imag
    np.sqrt(real, out=real)
    return real


def _to_int16(array: np.ndarray) -> np.ndarray:
    np.clip(array, 0, MAX_STORED_VALUE, out=array)
    array += F32(0.5)
    return array.astype(np.int16)


def _image(array: np.ndarray, geometry: SeriesGeometry) -> sitk.Image:
    return geometry.apply(sitk.GetImageFromArray(array))


# --------------------------------------------------------------------------------------------
# One case
# --------------------------------------------------------------------------------------------


def _geometries(anatomy: Anatomy, center: CenterProfile, seed: int, case_index: int,
                params: SynthParams) -> dict[str, SeriesGeometry]:
    rng = case_rng(seed, case_index, STREAM_SERIES)
    cervix = anatomy.cervix_center
    pose_origin = np.asarray(anatomy.truth["pose"]["origin_mm"])
    t2_center = cervix + np.array([rng.normal(0, 5), rng.normal(0, 5), rng.normal(8, 6)])
    dwi_center = np.array([pose_origin[0] + rng.normal(0, 5), cervix[1] + 15 + rng.normal(0, 6), cervix[2] + rng.normal(6, 6)])
    cet1_center = np.array([pose_origin[0] + rng.normal(0, 5), cervix[1] + 15 + rng.normal(0, 6), cervix[2] + rng.normal(6, 6)])
    return {
        "T2W": series_geometry(center.t2, rng, t2_center, params, cervix, moved=False),
        "DWI": series_geometry(center.dwi, rng, dwi_center, params, cervix, moved=True),
        "CET1": series_geometry(center.cet1, rng, cet1_center, params, cervix, moved=True),
    }


def generate_case(case_index: int, seed: int, params: SynthParams | None = None, n_centers: int = 1,
                  latent_overrides: dict[str, float] | None = None) -> SyntheticCase:
    """Generate one patient: T2W, DWI, ADC, CE-T1 images, labels, clinical values and truth.

    The case depends only on (case_index, seed, params, n_centers): the same arguments give
    the same voxels in any process, in any order. `latent_overrides` replaces image-visible
    latent values (e.g. {"latent_adc": 700.0}) for what-if renderings of the same patient;
    the clinical values and outcomes are not redrawn, and the truth file records the change.
    """
    import time

    params = (params or SynthParams()).validate()
    if case_index < 0 or seed < 0:
        raise InputError(f"case index and seed must not be negative (got {case_index}, {seed})")
    if n_centers < 1:
        raise InputError(f"number of centres must be at least 1, got {n_centers}")
    timings: dict[str, float] = {}
    t0 = time.process_time()
    bio = sample_patient(case_index, seed, params, n_centers)
    if latent_overrides:
        unknown = set(latent_overrides) - set(OVERRIDABLE_LATENTS)
        if unknown:
            raise InputError(f"cannot override {sorted(unknown)}; allowed: {', '.join(OVERRIDABLE_LATENTS)}")
        bio.latent.update({k: float(v) for k, v in latent_overrides.items()})
        bio.latent["overridden"] = sorted(latent_overrides)
    anatomy = build_anatomy(bio, seed, params)
    center = center_profile(bio.center_index, params)
    geometries = _geometries(anatomy, center, seed, case_index, params)
    bounds = {id(s): s.bounds() for s in anatomy.structures}
    timings["anatomy"] = time.process_time() - t0

    images: dict[str, sitk.Image] = {}
    labels: dict[str, sitk.Image] = {}
    for series_index, role in enumerate(("T2W", "DWI", "CET1")):
        t = time.process_time()
        geometry = geometries[role]
        signals = _SeriesSignals(role, center, anatomy, bio.latent)
        rendered = _paint(geometry, anatomy.structures, bounds, signals, with_organ_labels=role == "T2W")
        rng = case_rng(seed, case_index, STREAM_SERIES + 1 + series_index)
        plane, bz = _bias_field(geometry, rng, center.bias_amplitude)
        protocol = center.protocol(role)
        sigma = protocol.noise * protocol.gain
        if role == "DWI":
            s0, sb = rendered.channels["s0"], rendered.channels["sb"]
            _apply_bias(s0, plane, bz)
            _apply_bias(sb, plane, bz)
            s0n = _rician(s0, sigma, rng)
            sbn = _rician(sb, sigma, rng)
            adc = np.log(np.maximum(s0n, F32(1e-3)) / np.maximum(sbn, F32(1e-3)))
            adc *= F32(1e6 / center.b_value)
            adc[s0n < F32(5 * sigma)] = 0  # scanners blank the ADC of background noise
            dwi_b0 = _image(_to_int16(s0n.copy()), geometry)
            images["DWI"] = _image(_to_int16(sbn), geometry)
            images["ADC"] = _image(_to_int16(adc), geometry)
            labels["tumor_DWI"] = _image(rendered.tumour, geometry)
            labels["tumor_ADC"] = _image(rendered.tumour.copy(), geometry)
        else:
            array = rendered.channels["t2" if role == "T2W" else "t1c"]
            _apply_bias(array, plane, bz)
            noisy = _rician(array, sigma, rng)
            images[role] = _image(_to_int16(noisy), geometry)
            if role == "T2W":
                labels["tumor"] = _image(rendered.tumour, geometry)
                labels["organs"] = _image(rendered.organs, geometry)
                labels["lymph_nodes"] = _image(rendered.nodes, geometry)
                labels["tumor_necrosis"] = _image(rendered.necrosis, geometry)
            else:
                labels["tumor_CET1"] = _image(rendered.tumour, geometry)
        timings[role] = time.process_time() - t

    clinical = dict(bio.clinical)
    clinical["tumor_volume_ml"] = round(anatomy.tumour_volume_ml, 3)
    clinical["tumor_max_diameter_mm"] = round(anatomy.tumour_max_diameter_mm, 1)
    truth = case_truth(bio, anatomy, center, geometries, seed, params)
    images = {role: images[role] for role in IMAGE_ROLES}
    return SyntheticCase(bio.case_id, case_index, images, labels, clinical, dict(bio.latent), truth, timings,
                         center, dwi_b0, generator_version=GENERATOR_VERSION)


def case_truth(bio, anatomy: Anatomy, center: CenterProfile, geometries: dict[str, SeriesGeometry], seed: int,
               params: SynthParams) -> dict[str, Any]:
    """Content of a case's generator_truth.json."""
    series = {}
    for role in ("T2W", "DWI", "CET1"):
        entry = geometries[role].truth()
        protocol = center.protocol(role)
        entry["protocol"] = protocol.description
        series[role] = entry
    series["ADC"] = dict(series["DWI"], protocol=f"{center.dwi.description} ADC")
    return {
        "generator": {"version": GENERATOR_VERSION, "seed": int(seed), "case_index": int(bio.case_index)},
        "case_id": bio.case_id,
        "center": center.letter,
        "scanner": {"model": center.model, "field_strength_t": center.field_strength_t,
                    "t2_fat_suppression": center.t2_fat_suppression, "b_value": center.b_value,
                    "adc_scale": round(center.adc_scale, 5)},
        "series": series,
        "latent": dict(bio.latent),
        "anatomy": anatomy.truth,
        "lymph_nodes": anatomy.nodes,
        "units": {"ADC": params.adc_unit, "lengths": "mm", "volume": "ml", "coordinates": "LPS (DICOM/ITK)"},
        "labels": {
            "organs": {str(v): k for k, v in ORGAN_LABELS.items()},
            "lymph_nodes": "instance label = 'id' in lymph_nodes",
            "tumor": "whole tumour (necrosis included) on the T2W grid; tumor_<ROLE> on each sequence's own grid",
            "tumor_necrosis": "necrotic part of the tumour on the T2W grid",
        },
    }


__all__ = ["IMAGE_ROLES", "SyntheticCase", "generate_case", "TISSUES"]
