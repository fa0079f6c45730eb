"""Per-tissue textures: spatially correlated random fields with power-law spectra, per series.

Real tissue is not a flat grey value: fat is crossed by thin fibrous septa and small vessels,
muscle has fascicles with streaks of fat between them, bone marrow is trabecular and patchy,
organ parenchyma and bowel content are mottled. Each series gets a few base fields on its own
grid: Matern-like Gaussian fields (spectrum (1 + (2 pi f L)^2)^(-beta/2), correlation length L)
drawn slice by slice with an FFT and correlated along the slice axis (AR(1) with the slice
spacing); tissue textures are built from them. They are multiplicative factors around 1 (the
fat texture also returns where fibrous septa replace fat).

The fine texture is not the same between two series of the same patient (it is drawn on each
grid); the tumour biology that the outcome depends on is a separate 3D field in anatomy space
(`shapes.NoiseField`), the same in every series.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import fft as sfft
from scipy import special

from CervicalAILib.research.synth.shapes import upsample_axis

F32 = np.float32

# Standard normal quantiles at the 65536 mid-points of (0, 1): a 16-bit inverse-CDF table.
# Drawing 16 random bits per value and looking them up is about four times faster than numpy's
# normal sampler; for noise and textures the discretisation (tails cut at 4.3 sd) is invisible.
_NORMAL_TABLE = special.ndtri((np.arange(65536) + 0.5) / 65536).astype(F32)


def fast_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal float32 values from raw generator bits via the quantile table."""
    n = int(np.prod(shape))
    raw = rng.bit_generator.random_raw((n + 3) // 4)
    return _NORMAL_TABLE[raw.view(np.uint16)[:n]].reshape(shape)


def gaussian_field(rng: np.random.Generator, shape: tuple[int, int, int], pixel_mm: tuple[float, float],
                   slice_mm: float, length_mm: float, beta: float = 3.0, z_length_mm: float | None = None,
                   anisotropy: float = 1.0, angle: float = 0.0) -> np.ndarray:
    """Unit-variance random field [k, j, i] with correlation length `length_mm` in-plane.

    Slices are correlated by AR(1) with coefficient exp(-slice_mm / z_length_mm) (default: the
    in-plane length). `anisotropy` > 1 stretches the field along the in-plane direction `angle`.
    """
    nz, ny, nx = shape
    white = fast_normal(rng, shape)
    spectrum = sfft.rfft2(white, axes=(1, 2), workers=1)
    fy = sfft.fftfreq(ny, d=pixel_mm[1]).astype(F32)[:, None]
    fx = sfft.rfftfreq(nx, d=pixel_mm[0]).astype(F32)[None, :]
    if anisotropy != 1.0:
        c, s = F32(math.cos(angle)), F32(math.sin(angle))
        u = fx * c + fy * s
        v = -fx * s + fy * c
        f2 = (u * F32(anisotropy)) ** 2 + v**2
    else:
        f2 = fx**2 + fy**2
    filt = (F32(1.0) + F32((2 * math.pi * length_mm) ** 2) * f2) ** F32(-beta / 4.0)
    filt[0, 0] = 0.0  # zero mean per slice
    filt /= F32(math.sqrt(float((filt**2).sum()) * 2.0 / (nx * ny)) + 1e-12)
    spectrum *= filt[None]
    field = sfft.irfft2(spectrum, s=(ny, nx), axes=(1, 2), workers=1).astype(F32, copy=False)
    field *= F32(math.sqrt(nx * ny))
    rho = math.exp(-slice_mm / max(z_length_mm or length_mm, 1e-3)) if nz > 1 else 0.0
    if rho > 1e-3:
        keep, new = F32(rho), F32(math.sqrt(1 - rho * rho))
        for k in range(1, nz):
            field[k] *= new
            field[k] += keep * field[k - 1]
    std = float(field.std())
    if std > 0:
        field *= F32(1.0 / std)
    return field


class SeriesTextures:
    """Texture factors of one series grid, made on first use and cached."""

    def __init__(self, rng: np.random.Generator, shape: tuple[int, int, int], pixel_mm: tuple[float, float],
                 slice_mm: float):
        self.rng = rng
        self.shape = shape
        self.pixel = pixel_mm
        self.slice_mm = slice_mm
        self._base: dict[str, np.ndarray] = {}
        self._cache: dict[str, object] = {}
        # draw the per-series texture parameters now so that the order of use changes nothing
        self.fat_septa_depth = float(rng.uniform(0.5, 0.9))
        self.fat_septa_width_mm = float(rng.uniform(0.3, 0.6))
        self.septa_scale_mm = float(rng.uniform(3.0, 6.0))
        self.septa_density = float(rng.uniform(0.1, 0.6))
        self.vessel_threshold = float(rng.uniform(2.2, 2.8))
        self.roughness_mm = float(rng.uniform(0.1, 0.4))
        self.streak_width_mm = float(rng.uniform(0.3, 0.7))
        self.streak_density = float(rng.uniform(0.2, 0.7))
        self.seeds = rng.integers(0, 2**63 - 1, size=8)
        self.fibre_anisotropy = float(rng.uniform(3.0, 7.0))
        self.fibre_angle = float(rng.uniform(0, np.pi))

    def base(self, name: str) -> np.ndarray:
        """Base fields: fine (~0.7 mm), vessels (~1.3 mm), mid (~3-4.5 mm, two of them), coarse (~7-10 mm)."""
        if name not in self._base:
            spec = {
                "fine": (0.7, 3.0, 2.0, 0),
                "mid": (self.septa_scale_mm, 2.6, 4.0, 1),
                "mid2": (2.5, 2.6, 4.0, 2),
                "coarse": (10.0, 3.0, 12.0, 3),
                "coarse2": (7.0, 3.0, 10.0, 4),
                "vessels": (1.8, 4.0, 8.0, 5),
                "fibres": (4.0, 3.0, 8.0, 6),
            }[name]
            length, beta, z_length, seed_index = spec
            anisotropy, angle = 1.0, 0.0
            if name == "fibres":  # elongated along the fibre direction of the muscles
                anisotropy, angle = self.fibre_anisotropy, self.fibre_angle
            rng = np.random.default_rng(int(self.seeds[seed_index]))
            # smooth fields are drawn on a grid of half the pixels and interpolated (cheaper)
            step = 2 if length >= 3 * max(self.pixel) and min(self.shape[1:]) >= 32 else 1
            nz, ny, nx = self.shape
            shape = (nz, -(-(ny - 1) // step) + 1, -(-(nx - 1) // step) + 1)
            field = gaussian_field(rng, shape, (self.pixel[0] * step, self.pixel[1] * step), self.slice_mm, length, beta,
                                   z_length, anisotropy, angle)
            if step > 1:
                field = upsample_axis(upsample_axis(field, step, nx, 2), step, ny, 1)
            self._base[name] = np.ascontiguousarray(field)
        return self._base[name]

    def roughness(self) -> np.ndarray:
        """Fine displacement (mm) of tissue boundaries: real interfaces are ragged at the pixel scale."""
        if "rough" not in self._cache:
            value = self.base("mid2") * F32(self.roughness_mm)
            self._cache["rough"] = value
        return self._cache["rough"]  # type: ignore[return-value]

    def _lines(self, field: np.ndarray, width_mm: float) -> np.ndarray:
        """Thin lines along the zero lines of `field`: exp(-(distance / w)^2) with the distance from
        field / |gradient|. A line thinner than a pixel is drawn as the pixel sees it (wider and
        fainter, the same integral), not as broken dots."""
        pixel = float(min(self.pixel))
        seen = math.sqrt(width_mm**2 + (0.6 * pixel) ** 2)
        gy, gx = np.gradient(field, axis=(1, 2))
        gy *= F32(1.0 / self.pixel[1])
        gx *= F32(1.0 / self.pixel[0])
        gy *= gy
        gx *= gx
        gx += gy
        np.sqrt(gx, out=gx)
        gx += F32(1e-3)
        distance = np.divide(field, gx, out=gx)
        distance *= F32(1.0 / seen)
        distance *= distance
        np.negative(distance, out=distance)
        lines = np.exp(distance, out=distance)
        lines *= F32(width_mm / seen)
        return lines

    def fat(self) -> tuple[np.ndarray, np.ndarray]:
        """(fat factor, fibrous fraction): thin septa along the zero lines of a field, longer
        strands (fasciae, in-plane vessels) along those of a coarser one, and small vessels seen
        end-on (dots, mostly flow voids); septa are denser in some lobules than in others."""
        if "fat" not in self._cache:
            septa = self._lines(self.base("mid"), self.fat_septa_width_mm)
            septa *= np.clip(F32(self.septa_density) + F32(0.5) * self.base("coarse"), F32(0.0), F32(1.0))
            strands = self._lines(self.base("coarse2"), 0.7)
            strands *= np.clip(self.base("coarse") * F32(1.2) - F32(0.7), F32(0.0), F32(1.0))
            dots = np.clip((self.base("vessels") - F32(self.vessel_threshold)) * F32(3.0), F32(0.0), F32(1.0))
            fibrous = F32(self.fat_septa_depth) * septa
            fibrous += F32(0.6) * strands
            fibrous += dots
            np.minimum(fibrous, F32(1.0), out=fibrous)
            factor = F32(1.0) - fibrous
            factor *= F32(1.0) + F32(0.04) * self.base("mid2")
            self._cache["fat"] = (factor, fibrous)
        return self._cache["fat"]  # type: ignore[return-value]

    def factor(self, kind: str) -> np.ndarray:
        """Multiplicative texture of a tissue kind (mean about 1)."""
        if kind in self._cache:
            return self._cache[kind]  # type: ignore[return-value]
        fine, mid2 = self.base("fine"), None
        if kind == "muscle":
            mid2 = self.base("mid2")
            value = F32(1.0) + F32(0.09) * fine + F32(0.06) * self.base("coarse2")
        elif kind == "marrow":  # trabecular, with a few islands of red marrow
            value = F32(1.0) + F32(0.07) * fine + F32(0.05) * self.base("mid2")
            value -= F32(0.1) * np.clip(self.base("coarse") - F32(1.0), F32(0.0), F32(1.0))
        elif kind == "organ":
            value = F32(1.0) + F32(0.05) * fine + F32(0.05) * self.base("mid2")
        elif kind == "wall":
            value = F32(1.0) + F32(0.06) * fine
        elif kind == "faeces":
            mid2 = self.base("mid2")
            value = F32(1.0) + F32(0.3) * mid2 + F32(0.1) * fine
            value[mid2 > F32(1.3)] = F32(0.06)  # gas bubbles
        elif kind == "fluid":
            value = F32(1.0) + F32(0.015) * self.base("coarse")
        elif kind == "venous":  # parametrial venous plexus: bright veins of a few mm, seen in cross-section
            veins = np.clip((self.base("vessels") - F32(1.2)) * F32(2.5), F32(0.0), F32(1.0))
            value = F32(1.0) + F32(0.9) * veins + F32(0.06) * fine
        else:
            raise KeyError(f"unknown texture kind {kind!r}")
        np.maximum(value, F32(0.03), out=value)
        self._cache[kind] = value
        return value

    def muscle_streaks(self) -> np.ndarray:
        """Fraction of fat in streaks between muscle fascicle bundles (0-1): thin lines along the
        fibres, dense in some muscles or parts of a muscle, rare in others."""
        if "streaks" not in self._cache:
            streak = self._lines(self.base("fibres"), self.streak_width_mm)
            streak *= np.clip(self.base("coarse") * F32(0.8) + F32(self.streak_density), F32(0.0), F32(1.0))
            self._cache["streaks"] = streak
        return self._cache["streaks"]  # type: ignore[return-value]


TEXTURE_KINDS = ("fat", "muscle", "marrow", "organ", "wall", "faeces", "fluid", "venous")
