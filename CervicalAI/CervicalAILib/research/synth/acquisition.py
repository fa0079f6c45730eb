"""The MR acquisition of a rendered series: coil profile, k-space sampling, noise, artefacts.

The renderer gives, per series, the water and fat signal of every voxel of the reconstructed
grid (partial volume included). This module turns them into what a scanner stores:

1. receive-coil sensitivity: phased-array elements in front of and behind the pelvis, combined
   as root-sum-of-squares and only partly normalised (bright near the coils, darker centrally);
2. fat: suppressed (incompletely, worse away from the isocentre) or not, and displaced along the
   read-out direction by the water-fat chemical shift (EPI: along the phase direction);
3. EPI geometric distortion along the phase direction from B0 inhomogeneity (DWI only), with
   the intensity pile-up of the Jacobian;
4. k-space: the 2D Fourier transform of each slice, keeping only the acquired matrix (the
   reconstruction zero-fills to the finer grid, as scanners interpolate): truncation gives the
   sinc point-spread function and Gibbs ringing; a mild vendor filter; EPI T2* blurring and the
   Nyquist N/2 ghost; motion ghosts along the phase direction from the breathing anterior
   abdominal wall (phase errors of the moving part from line to line);
5. complex Gaussian noise added to the acquired k-space samples; the magnitude image is Rician
   (Rayleigh in the background) and its noise is spatially correlated by the zero-filling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft

from CervicalAILib.research.synth.scanner import SeriesGeometry
from CervicalAILib.research.synth.textures import fast_normal

F32 = np.float32


@dataclass
class Artefacts:
    """What one series' acquisition does besides sampling (all drawn per series)."""

    noise_sigma: float  # noise sd of one complex component in an image at the acquired resolution
    ghost: float = 0.0  # motion-ghost phase-error amplitude (radians)
    ghost_cycles: float = 3.0  # breathing cycles over the phase-encoding lines
    ghost_phase: float = 0.0
    nyquist_ghost: float = 0.0  # EPI odd/even line phase error (radians)
    t2star_blur: float = 0.0  # EPI: k-space amplitude decay towards the edge of the phase direction
    filter_strength: float = 0.0  # vendor k-space filter: 1 - strength * (k/kmax)^2
    fat_shift_px: float = 0.0  # chemical shift of fat along `fat_shift_axis` (pixels)
    fat_shift_axis: int = 1  # in-plane array axis: 1 = x (columns), 0 = y (rows)


def coil_profile(geometry: SeriesGeometry, body_center: np.ndarray, front_y: float, back_y: float,
                 strength: float, rng: np.random.Generator) -> np.ndarray:
    """Receive sensitivity [k, j, i] (mean about 1 inside the body), smooth, from coil elements.

    Elements sit on an anterior and a posterior array (about at the skin), and on some coils at
    the sides of the hips; each has a sensitivity 1 / (1 + (r / r0)^2)^1.5; the combined profile
    is raised to `strength` (0: perfectly normalised image, 1: raw array profile).
    """
    nx, ny, nz = geometry.size
    step = 8
    ii = np.arange(0, nx + step, step, dtype=float)
    jj = np.arange(0, ny + step, step, dtype=float)
    kk = np.arange(nz, dtype=float)
    a, b = geometry.index_to_anatomy()
    grid = np.stack(np.meshgrid(kk, jj, ii, indexing="ij"), axis=-1)[..., ::-1]  # (k, j, i, [i, j, k])
    points = grid @ a.T + b
    elements = []
    r0 = float(rng.uniform(90, 140))
    for y_plane, count in ((front_y - 15.0, int(rng.integers(3, 5))), (back_y + 15.0, int(rng.integers(3, 5)))):
        xs = np.linspace(-130, 130, count) + rng.normal(0, 10, count)
        zs = body_center[2] + rng.normal(0, 25, count)
        for x, z in zip(xs, zs):
            elements.append((np.array([body_center[0] + x, y_plane, z]), float(rng.uniform(0.7, 1.3))))
    if rng.random() < 0.6:  # arrays that wrap around the hips have elements at the sides too
        for side in (1, -1):
            x = body_center[0] + side * float(rng.uniform(175, 205))
            elements.append((np.array([x, body_center[1] + rng.normal(0, 20), body_center[2] + rng.normal(0, 25)]),
                             float(rng.uniform(0.6, 1.1))))
    total = np.zeros(points.shape[:-1])
    for position, weight in elements:
        r2 = ((points - position) ** 2).sum(-1) / (r0 * r0)
        total += (weight / (1 + r2) ** 1.5) ** 2
    profile = np.sqrt(total)
    inside = np.linalg.norm((points - body_center)[..., :2], axis=-1) < 120
    reference = float(np.median(profile[inside])) if inside.any() else float(profile.mean())
    profile = (profile / reference) ** strength
    return upsample_in_plane(profile.astype(F32), step, ny, nx)


def upsample_in_plane(coarse: np.ndarray, step: int, ny: int, nx: int) -> np.ndarray:
    """Linear interpolation of a field sampled every `step` pixels in-plane onto the full grid."""
    out = coarse
    for axis, n in ((2, nx), (1, ny)):
        t = np.arange(n, dtype=F32) / F32(step)
        i0 = np.minimum(np.floor(t).astype(int), out.shape[axis] - 2)
        w = (t - i0).astype(F32)
        shape = [1, 1, 1]
        shape[axis] = n
        w = w.reshape(shape)
        lo = np.take(out, i0, axis=axis)
        hi = np.take(out, i0 + 1, axis=axis)
        hi -= lo
        hi *= w
        lo += hi
        out = lo
    return out


def fat_residual_map(geometry: SeriesGeometry, iso_center: np.ndarray, residual: float) -> np.ndarray:
    """Fraction of fat signal a fat suppression leaves: `residual` at the isocentre, more at the edges."""
    nx, ny, nz = geometry.size
    a, b = geometry.index_to_anatomy()
    i = np.arange(nx, dtype=F32)
    j = np.arange(ny, dtype=F32)
    out = np.empty((nz, ny, nx), F32)
    for k in range(nz):
        p = [F32(a[r, 0]) * i[None, :] + F32(a[r, 1]) * j[:, None] + F32(a[r, 2] * k + b[r] - iso_center[r])
             for r in range(3)]
        r2 = (p[0] ** 2 + p[1] ** 2) / F32(160.0**2) + p[2] ** 2 / F32(120.0**2)
        out[k] = F32(residual) * (F32(1.0) + F32(2.0) * r2 * r2)
    np.minimum(out, F32(0.9), out=out)
    return out


def shift_along(array: np.ndarray, shift_px: float, axis: int) -> np.ndarray:
    """`array` [k, j, i] moved by `shift_px` pixels along in-plane `axis` (0: j, 1: i), linear,
    zeros shifted in."""
    if abs(shift_px) < 1e-3:
        return array
    whole = math.floor(shift_px)
    frac = shift_px - whole
    src = np.moveaxis(array, axis + 1, -1)
    out = np.zeros_like(src)
    n = src.shape[-1]
    for offset, weight in ((whole, 1.0 - frac), (whole + 1, frac)):
        if weight <= 0 or abs(offset) >= n:
            continue
        if offset >= 0:
            out[..., offset:] += F32(weight) * src[..., : n - offset]
        else:
            out[..., : n + offset] += F32(weight) * src[..., -offset:]
    return np.moveaxis(out, -1, axis + 1)


def epi_distortion(arrays: list[np.ndarray], shift_px: np.ndarray, axis: int) -> list[np.ndarray]:
    """Warp each [k, j, i] array along in-plane `axis` by `shift_px` (same shape), with the Jacobian.

    A voxel's signal lands `shift_px` pixels further along the phase direction; where the
    shift grows along that direction signal spreads out (darker), where it shrinks it piles up.
    """
    nz, ny, nx = arrays[0].shape
    n = ny if axis == 0 else nx
    coord = np.arange(n, dtype=F32)
    out = [np.empty_like(a) for a in arrays]
    for k in range(nz):
        s = shift_px[k] if axis == 1 else shift_px[k].T
        # inverse map: for each output position y find the source x with x + s(x) = y (s smooth)
        src = coord[None, :] - s
        for _ in range(2):
            src = coord[None, :] - _interp_rows(s, src)
        jac = 1.0 + np.gradient(_interp_rows(s, src), axis=1)
        jac = np.clip(1.0 / np.maximum(jac, 0.2), 0.2, 3.0).astype(F32)
        for a, o in zip(arrays, out):
            plane = a[k] if axis == 1 else a[k].T
            warped = _interp_rows(plane, src) * jac
            if axis == 1:
                o[k] = warped
            else:
                o[k] = warped.T
    return out


def _interp_rows(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Row-wise linear interpolation of values[r, :] at positions[r, :] (clamped)."""
    n = values.shape[1]
    p = np.clip(positions, 0, n - 1.001)
    i0 = p.astype(np.int64)
    w = (p - i0).astype(F32)
    rows = np.arange(values.shape[0])[:, None]
    return values[rows, i0] * (F32(1.0) - w) + values[rows, i0 + 1] * w


def _window(n: int, acquired: int) -> np.ndarray:
    """Boolean mask of the acquired k-space samples along an axis of n (unshifted FFT order)."""
    k = sfft.fftfreq(n) * n
    half = acquired / 2.0
    return (k >= -half) & (k < half)


def _zero_fill(spectrum: np.ndarray, ny: int, nx: int, shift_px: tuple[float, float]) -> np.ndarray:
    """Spectrum [k, my, mx] (unshifted order) embedded in a larger ny x nx one, with a linear
    phase moving the image by `shift_px` (rows, columns; pixels of the larger grid)."""
    nz, my, mx = spectrum.shape
    out = np.zeros((nz, ny, nx), np.complex64)
    ky = np.rint(sfft.fftfreq(my) * my).astype(int)
    kx = np.rint(sfft.fftfreq(mx) * mx).astype(int)
    out[np.ix_(np.arange(nz), ky % ny, kx % nx)] = spectrum
    fy = (sfft.fftfreq(ny) * ny).astype(np.float32)
    fx = (sfft.fftfreq(nx) * nx).astype(np.float32)
    ramp = np.exp(2j * np.pi * (fy[:, None] * (shift_px[0] / ny) + fx[None, :] * (shift_px[1] / nx))).astype(np.complex64)
    out *= ramp[None]
    return out


def acquire(water: np.ndarray, fat: np.ndarray | None, geometry: SeriesGeometry, art: Artefacts,
            rng: np.random.Generator, moving_weight: np.ndarray | None = None,
            rendered: SeriesGeometry | None = None) -> np.ndarray:
    """Magnitude image [k, j, i] on the series' reconstructed grid: k-space sampling, artefacts, noise.

    `water`/`fat` are on `rendered` (default: the reconstructed grid itself, whose k-space is then
    cut to the acquired matrix; or the acquired grid, whose k-space is then zero-filled).
    """
    rendered = rendered or geometry
    image = water
    if fat is not None:
        image = water + shift_along(fat, art.fat_shift_px, art.fat_shift_axis)
    nz, ry, rx = image.shape
    nx, ny = geometry.size[0], geometry.size[1]
    ax, ay = geometry.acq_size
    wy, wx = _window(ry, ay), _window(rx, ax)
    phase_axis = geometry.phase_axis  # 1: phase along x (columns), 0: along y (rows)
    # k-space weights: acquired window, vendor filter, EPI T2* decay along the phase direction
    ky = (sfft.fftfreq(ry) * ry / max(ay / 2.0, 1.0)).astype(F32)
    kx = (sfft.fftfreq(rx) * rx / max(ax / 2.0, 1.0)).astype(F32)
    weight = (wy[:, None] & wx[None, :]).astype(F32)
    if art.filter_strength:
        weight *= F32(1.0) - F32(art.filter_strength) * np.minimum(ky[:, None] ** 2 + kx[None, :] ** 2, F32(1.0))
    kphase = (kx[None, :] if phase_axis == 1 else ky[:, None])
    if art.t2star_blur:
        weight = weight * np.exp(-F32(art.t2star_blur) * np.abs(kphase))
    spectrum = sfft.fft2(image.astype(np.complex64), axes=(1, 2), workers=1, overwrite_x=True)
    n_phase = rx if phase_axis == 1 else ry
    if art.ghost and moving_weight is not None:
        # the moving part gets a phase error that changes from one phase-encoding line to the next
        line = np.arange(n_phase, dtype=F32)
        phi = art.ghost * np.sin(2 * math.pi * art.ghost_cycles * line / n_phase + art.ghost_phase)
        phi = phi + rng.normal(0, art.ghost * 0.3, n_phase)
        error = (np.exp(1j * phi) - 1).astype(np.complex64)
        error = error[None, None, :] if phase_axis == 1 else error[None, :, None]
        moving = sfft.fft2((image * moving_weight).astype(np.complex64), axes=(1, 2), workers=1, overwrite_x=True)
        moving *= error
        spectrum += moving
        del moving
    if art.nyquist_ghost:
        odd = np.rint(sfft.fftfreq(n_phase) * n_phase).astype(int) % 2 == 1
        ramp = np.where(odd, np.exp(1j * art.nyquist_ghost), 1.0).astype(np.complex64)
        spectrum *= ramp[None, None, :] if phase_axis == 1 else ramp[None, :, None]
    spectrum *= weight[None]
    # complex noise in the acquired samples only, scaled so that an image at the acquired
    # resolution has noise sd `noise_sigma` per component; interpolation keeps that per pixel
    # (the noise gets spatially correlated)
    iy, ix = np.nonzero(wy)[0], np.nonzero(wx)[0]
    acquired = len(iy) * len(ix)
    sigma_k = F32(art.noise_sigma * rx * ry / math.sqrt(acquired))
    shape = (nz, len(iy), len(ix))
    noise = fast_normal(rng, shape).astype(np.complex64)
    noise.imag = fast_normal(rng, shape)
    noise *= sigma_k
    spectrum[np.ix_(np.arange(nz), iy, ix)] += noise
    del noise
    if (ry, rx) != (ny, nx):
        # the acquired grid starts half an acquired pixel in: move to the reconstructed grid's samples
        shift = (0.5 * (1.0 - ny / ry), 0.5 * (1.0 - nx / rx))
        spectrum = _zero_fill(spectrum, ny, nx, shift)
        spectrum *= np.complex64(nx * ny / (rx * ry))
    out = sfft.ifft2(spectrum, axes=(1, 2), workers=1, overwrite_x=True)
    return np.abs(out)  # float32 (magnitude of complex64)


def b0_offset_field(geometry: SeriesGeometry, rng: np.random.Generator, field_strength: float,
                    gas_distance: np.ndarray | None, reference: SeriesGeometry | None = None) -> np.ndarray:
    """Off-resonance (Hz) [k, j, i] on `geometry`: a smooth shim residual plus a bipolar term near
    bowel gas. The shim polynomial is centred on `reference` (the series' own grid), so the same
    random draws give the same field on any grid of the series."""
    nx, ny, nz = geometry.size
    a, b = geometry.index_to_anatomy()
    scale = 0.5 if field_strength >= 2.25 else 0.25  # residual shim: tens of Hz over the pelvis at 3 T
    c = rng.normal(0, 1, size=7)
    i = np.arange(nx, dtype=F32)
    j = np.arange(ny, dtype=F32)
    out = np.empty((nz, ny, nx), F32)
    ref = reference or geometry
    ra, rb = ref.index_to_anatomy()
    center = rb + ra @ (np.array(ref.size, dtype=float) - 1) / 2
    for k in range(nz):
        p = [(F32(a[r, 0]) * i[None, :] + F32(a[r, 1]) * j[:, None] + F32(a[r, 2] * k + b[r] - center[r])) / F32(100.0)
             for r in range(3)]
        field = (c[0] * 25 + c[1] * 30 * p[0] + c[2] * 30 * p[1] + c[3] * 25 * p[2]
                 + c[4] * 20 * p[0] * p[1] + c[5] * 25 * (p[0] ** 2 - p[1] ** 2) + c[6] * 20 * p[2] ** 2)
        out[k] = F32(scale) * field
    if gas_distance is not None:
        # susceptibility of gas: strong offsets within a few cm, opposite signs above and below
        strength = float(rng.uniform(150, 400)) * scale
        blob = np.exp(-np.maximum(gas_distance, 0) / 12.0).astype(F32)
        dz = np.gradient(blob, axis=0) * F32(4.0 / geometry.spacing[2])  # per 4 mm, whatever the slices
        out += F32(strength) * (dz * F32(-1.0) + F32(0.4) * blob)
    return out
