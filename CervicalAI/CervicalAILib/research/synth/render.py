"""Render one synthetic case (generator 2): every series on its own grid, labels, MR physics.

Per series: each structure's implicit shape is evaluated only inside its bounding box on the
series' own reconstructed grid (patient motion folded into the index -> anatomy mapping) and
painted over what is there with a partial-volume weight (the fraction of the voxel inside the
surface: in-plane pixel size for walls seen edge-on, slice thickness for surfaces parallel to the
slices; wider for soft, infiltrative edges). What is painted is the water and the fat signal of
the tissue given by its MR properties through the sequence's signal equation (`tissues`),
times the tissue's texture (`textures`). The acquisition (`acquisition`) then applies the coil
profile, fat suppression and chemical shift, EPI distortion (DWI), k-space truncation, ghosts
and complex noise. Labels are voxels more than half inside. DWI gets a b=0 and a b-high image
and the ADC map is computed from both, as on a scanner. Images are stored as 12-bit integers.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import SimpleITK as sitk

from CervicalAILib.core.errors import InputError
from CervicalAILib.research.synth.acquisition import (
    Artefacts,
    acquire,
    b0_offset_field,
    coil_profile,
    epi_distortion,
    fat_residual_map,
)
from CervicalAILib.research.synth.anatomy import Anatomy, build_anatomy
from CervicalAILib.research.synth.case import SyntheticCase
from CervicalAILib.research.synth.clinical import sample_patient
from CervicalAILib.research.synth.labels import ORGAN_LABELS, label_table
from CervicalAILib.research.synth.params import GENERATOR_VERSION, STREAM_SERIES, SynthParams, case_rng
from CervicalAILib.research.synth.scanner import (
    MAX_STORED_VALUE,
    CenterProfile,
    SeriesGeometry,
    center_profile,
    series_geometry,
)
from CervicalAILib.research.synth.shapes import F32, GridSampler, Layer, Structure
from CervicalAILib.research.synth.textures import SeriesTextures
from CervicalAILib.research.synth.tissues import (
    FAT_ADC,
    TISSUES,
    Tissue,
    chemical_shift_pixels,
    fat_signal,
    jittered,
    water_signal,
)
from CervicalAILib.research.synth.v1.render import generate_case as generate_v1

# Image roles in the order they are made; ADC comes from the DWI acquisition.
IMAGE_ROLES = ("T2W", "ADC", "DWI", "CET1")
EXTRA_ROLES = ("T2W_SAG",)
# Latent values that only change how the tumour looks (generate_case's latent_overrides).
OVERRIDABLE_LATENTS = (
    "latent_adc", "latent_heterogeneity", "latent_enhancement_heterogeneity", "latent_enhancement_level",
)
# Relative texture amplitude per channel of the tumour's cellularity field (scaled by the latent
# heterogeneity): cellular regions are a little darker on T2WI, brighter on S0, lower on ADC.
TUMOUR_CELLULARITY_TEXTURE = {"t2": -1.0, "s0": 0.5, "adc": -0.6}


# --------------------------------------------------------------------------------------------
# Tissue signals of one series
# --------------------------------------------------------------------------------------------


class _SeriesSignals:
    """Water/fat channel values of every tissue in one series, textures applied on demand."""

    def __init__(self, role: str, center: CenterProfile, anatomy: Anatomy, latent: dict[str, Any],
                 textures: SeriesTextures):
        self.role = role
        self.center = center
        self.protocol = center.protocol(role)
        self.seq = self.protocol.sequence_parameters(center.field_strength_t)
        self.anatomy = anatomy
        self.latent = latent
        self.textures = textures
        self.b = center.b_value
        self.dwi = self.protocol.sequence == "se_epi"
        self.channels = ("w0", "wb", "f") if self.dwi else ("w", "f")
        self._cache: dict[tuple, dict[str, float]] = {}
        self.fat_pure = fat_signal(self.seq)

    def tissue(self, name: str) -> Tissue:
        tissue = TISSUES[name]
        factors = dict(self.anatomy.tissue_factors.get(name, {}))
        fat_factor = factors.pop("fat", 1.0)
        tissue = jittered(tissue, factors) if factors else tissue
        if fat_factor != 1.0:
            tissue = jittered(tissue, {"fat": fat_factor})
        if name == "tumour":
            level = float(self.latent["latent_enhancement_level"])
            tissue = jittered(tissue, {"gd": level})
        return tissue

    def base(self, name: str, flow: float | None = None) -> dict[str, float]:
        """Channel values of a tissue (patient variation, sequence physics, centre ADC scale)."""
        key = (name, flow)
        if key in self._cache:
            return self._cache[key]
        tissue = self.tissue(name)
        if flow is not None:
            tissue = jittered(tissue, {"flow": flow / max(tissue.flow, 1e-6)})
        fat = min(max(tissue.fat, 0.0), 1.0)
        fat_part = fat * self.fat_pure * (tissue.pd / 0.95 if name != "fat" else 1.0)
        if self.dwi:
            adc = self._adc(name, tissue)
            out = {"w0": (1 - fat) * water_signal(tissue, self.seq), "wb": (1 - fat) * water_signal(tissue, self.seq, adc, self.b),
                   "f": fat_part, "adc": adc}
        else:
            out = {"w": (1 - fat) * water_signal(tissue, self.seq), "f": fat_part}
        self._cache[key] = out
        return out

    def _adc(self, name: str, tissue: Tissue) -> float:
        adc = float(self.latent["latent_adc"]) if name == "tumour" else tissue.adc
        return adc * self.center.adc_scale

    def reference(self) -> float:
        """Signal of muscle in this series (stored intensities are set relative to it)."""
        base = self.base("muscle")
        return base["w0"] + base["f"] if self.dwi else base["w"] + base["f"]

    def noise_reference(self) -> float:
        """Signal of the tissue the protocol's SNR refers to (T2WI: pure fat, unsuppressed)."""
        return self.fat_pure if self.seq.kind == "tse" else self.reference()

    def values(self, layer: Layer, view: tuple, sampler: GridSampler, touched: tuple[slice, ...]
               ) -> dict[str, float | np.ndarray]:
        """Channel values for a layer over the box `touched` of the sampler's `view` (slices
        relative to it): scalars, or arrays for textured tissues."""
        base = self.base(layer.tissue, layer.flow)
        if layer.tissue == "tumour":  # its 3D fields are interpolated over the sampler's box
            return {c: v[touched] if isinstance(v, np.ndarray) else v
                    for c, v in self._tumour(base, view, sampler).items()}
        view = tuple(slice(v.start + t.start, v.start + t.stop) for v, t in zip(view, touched))
        kind = layer.texture
        if kind is None:
            return {c: base[c] for c in self.channels}
        if kind == "fat":  # fibrous septa, strands and small vessels replace some of the fat
            factor, fibrous = self.textures.fat()
            fascia = self.base("fascia")
            out: dict[str, float | np.ndarray] = {"f": factor[view] * F32(base["f"])}
            for c in self.channels:
                if c != "f":
                    out[c] = fibrous[view] * F32(fascia[c])
            return out
        factor = self.textures.factor(kind)[view]
        if kind == "muscle":
            streak = self.textures.muscle_streaks()[view] * F32(0.8)
            keep = F32(1.0) - streak
            out = {c: factor * keep * F32(base[c]) for c in self.channels if c != "f"}
            out["f"] = streak * F32(self.fat_pure) + F32(base["f"])
            return out
        return {c: factor * F32(base[c]) for c in self.channels}

    def _tumour(self, base: dict[str, float], view: tuple, sampler: GridSampler) -> dict[str, np.ndarray]:
        het = float(self.latent["latent_heterogeneity"])
        organ = self.textures.factor("organ")[view]
        if self.role == "CET1":
            field = self.anatomy.enhancement_field.evaluate(sampler) * F32(
                float(self.latent["latent_enhancement_heterogeneity"]))
            field += F32(1.0)
            np.maximum(field, F32(0.05), out=field)
            field *= organ
            return {"w": field * F32(base["w"]), "f": F32(base["f"])}
        cell = self.anatomy.cellularity_field.evaluate(sampler)
        if not self.dwi:
            t2 = cell * F32(het * TUMOUR_CELLULARITY_TEXTURE["t2"])
            t2 += F32(1.0)
            np.maximum(t2, F32(0.05), out=t2)
            t2 *= organ
            return {"w": t2 * F32(base["w"]), "f": F32(base["f"])}
        s0 = cell * F32(het * TUMOUR_CELLULARITY_TEXTURE["s0"])
        s0 += F32(1.0)
        np.maximum(s0, F32(0.05), out=s0)
        s0 *= organ
        s0 *= F32(base["w0"])
        adc = cell * F32(het * TUMOUR_CELLULARITY_TEXTURE["adc"])
        adc += F32(1.0)
        np.maximum(adc, F32(0.2), out=adc)
        adc *= F32(base["adc"] * -self.b * 1e-6)
        np.exp(adc, out=adc)
        adc *= s0
        return {"w0": s0, "wb": adc, "f": F32(base["f"])}


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


def _pv_width(d: np.ndarray, pixel: float, thickness: float, slice_spacing: float, in_plane_normals: bool = False,
              edge: float = 0.0) -> np.ndarray | float:
    """Extent of each voxel along the surface normal (box profile): the pixel size for surfaces
    seen edge-on, the slice thickness for surfaces parallel to the slices; wider for soft edges."""
    width2 = pixel**2 + edge**2
    if d.shape[0] >= 2 and thickness > pixel and not in_plane_normals:
        nz = np.empty_like(d)  # slice-direction component of the distance gradient
        nz[1:-1] = d[2:] - d[:-2]
        nz[1:-1] *= F32(0.5)
        nz[0] = d[1] - d[0]
        nz[-1] = d[-1] - d[-2]
        nz *= F32(1.0 / slice_spacing)
        nz *= nz
        np.minimum(nz, F32(1.0), out=nz)
        nz *= F32(thickness**2 + edge**2 - width2)
        nz += F32(width2)
        return np.sqrt(nz, out=nz)
    return math.sqrt(width2)


def _ramp(d: np.ndarray, width: np.ndarray | float, offset: float = 0.0) -> np.ndarray:
    """Fraction of each voxel inside the surface d = offset, given its extent along the normal."""
    occ = d - F32(offset) if offset else d.copy()
    occ /= width
    np.subtract(F32(0.5), occ, out=occ)
    np.clip(occ, F32(0.0), F32(1.0), out=occ)
    return occ


@dataclass
class _Rendered:
    channels: dict[str, np.ndarray]
    labels: np.ndarray
    tumour: np.ndarray
    nodes: np.ndarray
    necrosis: np.ndarray


def _tight_boxes(structure: Structure, start: np.ndarray, stop: np.ndarray, a: np.ndarray, b: np.ndarray,
                 pixel: float, slab: int = 6, step: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
    """Sub-boxes of [start, stop) per slab of slices that hold the structure or its near surroundings.

    A structure's anatomy-space bounding box can be much larger than the structure on a grid
    (oblique tubes, curved shapes): the signed distance on a coarse lattice tells where it is.
    """
    size = stop - start
    if int(np.prod(size)) < 150_000 or min(size[0], size[1]) < 4 * step:
        return [(start, stop)]
    probe = GridSampler((a, b), start, stop, step)
    d = None
    for layer in structure.layers:
        e = layer.shape.evaluate(probe)
        d = e if d is None else np.minimum(d, e, out=d)
    near = d < F32(2.5 * step * pixel + 2.0)
    boxes = []
    for k0 in range(0, size[2], slab):
        block = near[k0 : k0 + slab]
        if not block.any():
            continue
        rows = np.nonzero(block.any(axis=(0, 2)))[0]
        cols = np.nonzero(block.any(axis=(0, 1)))[0]
        lo = np.array([start[0] + max(cols[0] - 1, 0) * step, start[1] + max(rows[0] - 1, 0) * step, start[2] + k0])
        hi = np.array([min(start[0] + (cols[-1] + 2) * step, stop[0]), min(start[1] + (rows[-1] + 2) * step, stop[1]),
                       min(start[2] + k0 + slab, stop[2])])
        boxes.append((lo, hi))
    return boxes


def _nonzero_box(occ: np.ndarray) -> tuple[slice, slice, slice] | None:
    """Slices of the smallest box of `occ` [k, j, i] that holds all its non-zero voxels (None: none)."""
    plane = occ.any(axis=0)
    rows = np.flatnonzero(plane.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(plane.any(axis=0))
    slices = np.flatnonzero(occ[:, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].any(axis=(1, 2)))
    return slice(slices[0], slices[-1] + 1), slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _paint(geometry: SeriesGeometry, structures: list[Structure], bounds: dict[int, tuple], signals: _SeriesSignals
           ) -> _Rendered:
    a, b = geometry.index_to_anatomy()
    a_inv = np.linalg.inv(a)
    shape = tuple(int(v) for v in geometry.size[::-1])
    channels = {c: np.zeros(shape, F32) for c in signals.channels}
    labels = np.zeros(shape, np.uint8)
    tumour = np.zeros(shape, np.uint8)
    nodes = np.zeros(shape, np.uint8)
    necrosis = np.zeros(shape, np.uint8)
    pixel = float(np.mean(geometry.spacing[:2]))
    allowed_cache: dict[frozenset, np.ndarray] = {}
    for structure in structures:
        box = _index_box(bounds[id(structure)], a_inv, b, geometry.size)
        if box is None:
            continue
        for start, stop in _tight_boxes(structure, box[0], box[1], a, b, pixel):
            sampler = GridSampler((a, b), start, stop)
            view = (slice(start[2], stop[2]), slice(start[1], stop[1]), slice(start[0], stop[0]))
            for li, layer in enumerate(structure.layers):
                d = layer.shape.evaluate(sampler)
                if layer.rough:
                    d += signals.textures.roughness()[view]
                width = _pv_width(d, pixel, geometry.slice_thickness, geometry.spacing[2], structure.in_plane_normals,
                                  layer.edge_mm)
                painted = [(layer, _ramp(d, width))]
                if layer.sheath is not None:  # a thin layer of another tissue around this one, painted first
                    tissue, thickness, texture, label = layer.sheath
                    painted.insert(0, (Layer(layer.shape, tissue, texture, label=label), _ramp(d, width, thickness)))
                for part, occ in painted:
                    if part.only_over is not None:
                        if part.only_over not in allowed_cache:
                            allowed_cache[part.only_over] = np.array(sorted(ORGAN_LABELS[n] for n in part.only_over),
                                                                     np.uint8)
                        occ *= np.isin(labels[view], allowed_cache[part.only_over])
                    touched = _nonzero_box(occ)
                    if touched is None:
                        continue
                    # blend over the box of voxels the layer covers only: elsewhere occ is 0 and
                    # nothing changes (a box of a sampler's box is often half its size)
                    occ = occ[touched]
                    sub = tuple(slice(v.start + t.start, v.start + t.stop) for v, t in zip(view, touched))
                    values = signals.values(part, view, sampler, touched)
                    for channel, target in channels.items():
                        region = target[sub]
                        diff = np.subtract(values[channel], region)
                        diff *= occ
                        region += diff
                    inside = occ > 0.5
                    if part.paints_label:
                        labels[sub][inside] = ORGAN_LABELS[part.label or structure.label]
                    if part is not layer:
                        continue
                    if structure.name == "tumor" and li == 0:
                        tumour[sub][inside] = 1
                    elif structure.name == "tumor_necrosis":
                        necrosis[sub][inside] = 1
                    if "node_id" in structure.extra:
                        nodes[sub][inside] = structure.extra["node_id"]
    nodes[labels != ORGAN_LABELS["lymph_node"]] = 0
    tumour[labels != ORGAN_LABELS["tumor"]] = 0  # the tumour label is what the organ map says
    necrosis &= tumour
    return _Rendered(channels, labels, tumour, nodes, necrosis)


# --------------------------------------------------------------------------------------------
# One series
# --------------------------------------------------------------------------------------------


def _plane_coordinate(geometry: SeriesGeometry, axis: int) -> np.ndarray:
    """Anatomy coordinate `axis` (0 x, 1 y, 2 z) of every voxel centre [k, j, i] (float32)."""
    a, b = geometry.index_to_anatomy()
    nx, ny, nz = geometry.size
    i = np.arange(nx, dtype=F32)[None, None, :] * F32(a[axis, 0])
    j = np.arange(ny, dtype=F32)[None, :, None] * F32(a[axis, 1])
    k = np.arange(nz, dtype=F32)[:, None, None] * F32(a[axis, 2]) + F32(b[axis])
    return (i + j) + k


def _to_int16(array: np.ndarray) -> np.ndarray:
    np.clip(array, 0, MAX_STORED_VALUE, out=array)
    array += F32(0.5)
    return array.astype(np.int16)


def _image(array: np.ndarray, geometry: SeriesGeometry) -> sitk.Image:
    return geometry.apply(sitk.GetImageFromArray(array))


def _artefacts(geometry: SeriesGeometry, grid: SeriesGeometry, center: CenterProfile, signals: _SeriesSignals,
               rng: np.random.Generator) -> Artefacts:
    """The acquisition artefacts of one series; shifts in pixels of `grid` (where it is rendered)."""
    protocol = signals.protocol
    noise = signals.noise_reference() / protocol.snr
    # chemical shift in acquired pixels (bandwidth per acquired pixel), then in pixels of the grid
    shift = chemical_shift_pixels(center.field_strength_t, protocol.bandwidth_hz_px) * float(rng.choice([-1.0, 1.0]))
    if signals.dwi:  # EPI: along the phase direction, where the bandwidth per pixel is low
        return Artefacts(
            noise_sigma=noise,
            nyquist_ghost=protocol.ghost * float(rng.uniform(0.5, 1.5)),
            t2star_blur=float(rng.uniform(0.3, 1.2)),
            filter_strength=float(rng.uniform(0.0, 0.3)),
            fat_shift_px=shift * protocol.acquired_pixel_mm(True) / grid.pixel_mm(True),
            fat_shift_axis=geometry.phase_axis,
        )
    return Artefacts(
        noise_sigma=noise,
        ghost=protocol.ghost * float(rng.uniform(0.4, 1.6)),
        ghost_cycles=float(rng.uniform(2, 9)),
        ghost_phase=float(rng.uniform(0, 2 * np.pi)),
        filter_strength=float(rng.uniform(0.0, 0.2)),
        fat_shift_px=shift * protocol.acquired_pixel_mm(False) / grid.pixel_mm(False),
        fat_shift_axis=0 if geometry.phase_axis == 1 else 1,
    )


def _tumour_mask(geometry: SeriesGeometry, anatomy: Anatomy) -> np.ndarray:
    """Tumour voxels (centre inside the surface) on a series' reconstructed grid."""
    a, b = geometry.index_to_anatomy()
    mask = np.zeros(tuple(int(v) for v in geometry.size[::-1]), np.uint8)
    box = _index_box(anatomy.tumour.bounds(), np.linalg.inv(a), b, geometry.size)
    if box is not None:
        start, stop = box
        d = anatomy.tumour.evaluate(GridSampler((a, b), start, stop))
        mask[start[2]:stop[2], start[1]:stop[1], start[0]:stop[0]] = d < 0
    return mask


def _distortion_px(geometry: SeriesGeometry, grid: SeriesGeometry, anatomy: Anatomy, center: CenterProfile,
                   field_seed: int) -> np.ndarray:
    """EPI displacement along the phase direction, in pixels of `grid` (the same field on any grid)."""
    gas = None
    if anatomy.gas is not None:
        gas = anatomy.gas.evaluate(GridSampler(grid.index_to_anatomy(), np.zeros(3, int), np.asarray(grid.size)))
    offset_hz = b0_offset_field(grid, np.random.default_rng(field_seed), center.field_strength_t, gas,
                                reference=geometry)
    mm_per_hz = center.dwi.acquired_pixel_mm(True) / center.dwi.bandwidth_hz_px
    return offset_hz * F32(mm_per_hz / grid.pixel_mm(True))


def _render_series(role: str, geometry: SeriesGeometry, center: CenterProfile, anatomy: Anatomy,
                   latent: dict[str, Any], bounds: dict[int, tuple], rng: np.random.Generator) -> dict[str, Any]:
    """Images (float32 arrays on the reconstructed grid) and labels of one acquired series.

    The T2WI is rendered on its reconstructed grid (its organ labels live there) and its k-space
    is cut to the acquired matrix; the other series are rendered on their acquired grid and
    zero-filled to the reconstructed one, as the scanner interpolates (same result, less work).
    """
    protocol = center.protocol(role)
    grid = geometry if role == "T2W" else geometry.acquisition_grid()
    textures = SeriesTextures(rng, tuple(int(v) for v in grid.size[::-1]),
                              (float(grid.spacing[0]), float(grid.spacing[1])), float(grid.spacing[2]))
    signals = _SeriesSignals(role, center, anatomy, latent, textures)
    rendered = _paint(grid, anatomy.structures, bounds, signals)
    coil = coil_profile(grid, anatomy.body_center, anatomy.body_front_y, anatomy.body_back_y,
                        center.coil_strength, rng)
    channels = rendered.channels
    for array in channels.values():
        array *= coil
    del coil
    if protocol.fat_sat:
        channels["f"] *= fat_residual_map(grid, anatomy.body_center, protocol.fat_sat_residual)
    art = _artefacts(geometry, grid, center, signals, rng)
    scale = F32(protocol.gain / signals.reference())
    tumour = rendered.tumour if grid is geometry else _tumour_mask(geometry, anatomy)
    out: dict[str, Any] = {"labels": rendered, "tumour": tumour}
    if signals.dwi:
        field_seed = int(rng.integers(0, 2**63 - 1))
        shift = _distortion_px(geometry, grid, anatomy, center, field_seed)
        w0, wb, fat = epi_distortion([channels["w0"], channels["wb"], channels["f"]], shift, geometry.phase_axis)
        shift_recon = _distortion_px(geometry, geometry, anatomy, center, field_seed)
        out["tumour"] = (epi_distortion([tumour.astype(F32)], shift_recon, geometry.phase_axis)[0] > 0.5).astype(np.uint8)
        out["distortion_mm"] = float(np.percentile(np.abs(shift_recon), 99) * geometry.pixel_mm(True))
        b0 = acquire(w0, fat, geometry, art, rng, rendered=grid)
        bh = acquire(wb, fat * F32(math.exp(-center.b_value * FAT_ADC * 1e-6)), geometry, art, rng, rendered=grid)
        b0 *= scale
        bh *= scale
        adc = np.log(np.maximum(b0, F32(1e-3)) / np.maximum(bh, F32(1e-3)))
        adc *= F32(1e6 / center.b_value)
        adc[b0 < F32(5.0 * art.noise_sigma) * scale] = 0  # scanners blank the ADC of background noise
        out["b0"], out["image"], out["adc"] = b0, bh, adc
    else:
        moving = None
        if art.ghost:
            y = _plane_coordinate(grid, 1)
            moving = np.clip((F32(anatomy.body_front_y + 70.0) - y) * F32(1 / 35.0), F32(0.0), F32(1.0))
        image = acquire(channels["w"], channels["f"], geometry, art, rng, moving, rendered=grid)
        image *= scale
        out["image"] = _below_full_scale(image)
    return out


def _below_full_scale(image: np.ndarray) -> np.ndarray:
    """Scanners scale a series so that it fits the stored range: rescale if the top would clip."""
    top = float(np.percentile(image, 99.95))
    if top > 0.92 * MAX_STORED_VALUE:
        image *= F32(0.92 * MAX_STORED_VALUE / top)
    return image


# --------------------------------------------------------------------------------------------
# One case
# --------------------------------------------------------------------------------------------


def _geometries(anatomy: Anatomy, center: CenterProfile, seed: int, case_index: int,
                params: SynthParams) -> dict[str, SeriesGeometry]:
    rng = case_rng(seed, case_index, STREAM_SERIES)
    cervix = anatomy.cervix_center
    pose_origin = np.asarray(anatomy.truth["pose"]["origin_mm"])
    # oblique axial T2WI: perpendicular to the cervical canal as the radiographer sets it (a few degrees off)
    normal = anatomy.cervix_axis + rng.normal(0, 0.06, 3)
    t2_center = cervix + anatomy.cervix_axis * rng.normal(12, 6) + np.array([rng.normal(0, 5), rng.normal(0, 5), 0.0])
    sag_center = np.array([pose_origin[0] + rng.normal(0, 4), cervix[1] + rng.normal(5, 8), cervix[2] + rng.normal(10, 8)])
    dwi_center = np.array([pose_origin[0] + rng.normal(0, 5), cervix[1] + 15 + rng.normal(0, 6), cervix[2] + rng.normal(6, 6)])
    cet1_center = np.array([pose_origin[0] + rng.normal(0, 5), cervix[1] + 15 + rng.normal(0, 6), cervix[2] + rng.normal(6, 6)])
    out = {
        "T2W": series_geometry(center.t2, rng, t2_center, params, cervix, moved=False, slice_normal=normal),
        "DWI": series_geometry(center.dwi, rng, dwi_center, params, cervix, moved=True),
        "CET1": series_geometry(center.cet1, rng, cet1_center, params, cervix, moved=True),
    }
    if params.sagittal_t2:
        out["T2W_SAG"] = series_geometry(center.t2_sag, rng, sag_center, params, cervix, moved=True)
    return out


def generate_case(case_index: int, seed: int, params: SynthParams | None = None, n_centers: int = 1,
                  latent_overrides: dict[str, float] | None = None) -> SyntheticCase:
    """Generate one patient: T2W, DWI, ADC, CE-T1 (and sagittal T2W) images, labels, clinical values, truth.

    The case depends only on (case_index, seed, params, n_centers): the same arguments give
    the same voxels in any process, in any order. `latent_overrides` replaces image-visible
    latent values (e.g. {"latent_adc": 700.0}) for what-if renderings of the same patient;
    the clinical values and outcomes are not redrawn, and the truth file records the change.
    """
    params = (params or SynthParams()).validate()
    if params.generator_version != GENERATOR_VERSION:
        return generate_v1(case_index, seed, params, n_centers, latent_overrides)
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
    if params.t2_orientation not in ("site", center.t2.orientation):  # a cohort with one T2WI orientation
        name = "T2 TSE TRA" if params.t2_orientation == "axial" else "T2 TSE OBL TRA"
        center = replace(center, t2=replace(center.t2, orientation=params.t2_orientation,
                                            description=name + (" FS" if center.t2.fat_sat else "")))
    geometries = _geometries(anatomy, center, seed, case_index, params)
    bounds = {id(s): s.bounds() for s in anatomy.structures}
    timings["anatomy"] = time.process_time() - t0

    images: dict[str, sitk.Image] = {}
    extra: dict[str, sitk.Image] = {}
    labels: dict[str, sitk.Image] = {}
    distortion: dict[str, float] = {}
    dwi_b0 = None
    for series_index, role in enumerate(("T2W", "DWI", "CET1", "T2W_SAG")):
        if role not in geometries:
            continue
        t = time.process_time()
        geometry = geometries[role]
        rng = case_rng(seed, case_index, STREAM_SERIES + 1 + series_index)
        result = _render_series(role, geometry, center, anatomy, bio.latent, bounds, rng)
        rendered = result["labels"]
        if role == "DWI":
            dwi_b0 = _image(_to_int16(result["b0"]), geometry)
            images["DWI"] = _image(_to_int16(result["image"]), geometry)
            images["ADC"] = _image(_to_int16(result["adc"]), geometry)
            labels["tumor_DWI"] = _image(result["tumour"], geometry)
            labels["tumor_ADC"] = _image(result["tumour"].copy(), geometry)
            distortion["DWI"] = result["distortion_mm"]
        elif role == "T2W_SAG":
            extra[role] = _image(_to_int16(result["image"]), geometry)
        else:
            images[role] = _image(_to_int16(result["image"]), geometry)
            if role == "T2W":
                labels["tumor"] = _image(rendered.tumour, geometry)
                labels["organs"] = _image(rendered.labels, geometry)
                labels["lymph_nodes"] = _image(rendered.nodes, geometry)
                labels["tumor_necrosis"] = _image(rendered.necrosis, geometry)
            else:
                labels["tumor_CET1"] = _image(result["tumour"], geometry)
        timings[role] = time.process_time() - t

    clinical = dict(bio.clinical)
    clinical["tumor_volume_ml"] = round(anatomy.tumour_volume_ml, 3)
    clinical["tumor_max_diameter_mm"] = round(anatomy.tumour_max_diameter_mm, 1)
    truth = case_truth(bio, anatomy, center, geometries, seed, params, distortion)
    images = {role: images[role] for role in IMAGE_ROLES}
    return SyntheticCase(bio.case_id, case_index, images, labels, clinical, dict(bio.latent), truth, timings,
                         center, dwi_b0, extra, label_table(), GENERATOR_VERSION)


def case_truth(bio, anatomy: Anatomy, center: CenterProfile, geometries: dict[str, SeriesGeometry], seed: int,
               params: SynthParams, distortion: dict[str, float]) -> dict[str, Any]:
    """Content of a case's generator_truth.json."""
    series = {}
    for role, geometry in geometries.items():
        entry = geometry.truth()
        protocol = center.protocol(role)
        entry["protocol"] = protocol.description
        entry["orientation"] = protocol.orientation
        if role in distortion:
            entry["epi_distortion_p99_mm"] = round(distortion[role], 2)
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
            "organs": "labels/organs.json (value -> name, group)",
            "lymph_nodes": "instance label = 'id' in lymph_nodes",
            "tumor": "whole tumour (necrosis included) on the T2W grid; tumor_<ROLE> on each sequence's own grid "
                     "(DWI/ADC: EPI distortion included)",
            "tumor_necrosis": "necrotic part of the tumour on the T2W grid",
        },
    }


__all__ = ["EXTRA_ROLES", "IMAGE_ROLES", "generate_case"]
