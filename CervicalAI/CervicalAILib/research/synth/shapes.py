"""Implicit 3D shapes evaluated directly on an image grid (no high-resolution intermediate).

Every shape returns an approximate signed distance in mm (negative inside) at the points a
`Sampler` provides: either the voxel centres of a box of an image grid (with that series'
patient motion folded into the index -> anatomy mapping) or an arbitrary list of points. The
distance is first-order accurate near the surface, which is all the partial-volume ramp and
the label threshold need.

Primitives: (asymmetric) ellipsoids, curved tubes with elliptic cross-sections and capsules
(segments with a tapering radius: vessels, bowel loops). Combinators: union (optionally smooth),
intersection, offset, shell (a sheet of given thickness around a surface) and perturbation by a
smooth random field (irregular margins). Shapes also report their anatomy-space bounding box so
that rendering touches only the voxels near each structure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

F32 = np.float32
_EPS = 1e-6


def rotation_matrix(rx: float = 0.0, ry: float = 0.0, rz: float = 0.0) -> np.ndarray:
    """Rotation (local -> anatomy) from angles in radians about x, then y, then z."""
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    mx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    my = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    mz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return mz @ my @ mx


def frame_from_axis(axis: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """Rotation whose local z is `axis` (unit), local x as close to anatomy x as possible."""
    z = np.asarray(axis, dtype=float)
    z = z / np.linalg.norm(z)
    ref = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = ref - z * (ref @ z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    base = np.stack([x, y, z], axis=1)
    if roll:
        base = base @ rotation_matrix(rz=roll)
    return base


# --------------------------------------------------------------------------------------------
# Samplers: where shapes are evaluated
# --------------------------------------------------------------------------------------------


class Sampler:
    """Source of local coordinates (qx, qy, qz) for a frame (centre, rotation local->anatomy)."""

    shape: tuple[int, ...]

    def local(self, center: np.ndarray, rotation: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError


class GridSampler(Sampler):
    """Voxel centres of the index box [lo, hi) of a grid; arrays are indexed [k, j, i].

    `index_to_anatomy` = (A, b): anatomy point = A @ (i, j, k) + b (grid geometry and the
    inverse of the series' patient motion).
    """

    def __init__(self, index_to_anatomy: tuple[np.ndarray, np.ndarray], lo: np.ndarray, hi: np.ndarray,
                 step: int = 1):
        self.A, self.b = index_to_anatomy
        self.lo = np.asarray(lo, dtype=int)
        self.hi = np.asarray(hi, dtype=int)
        self.step = int(step)
        # in-plane axes every `step` voxels, always including the last voxel (for interpolation)
        self._i = self._axis(self.lo[0], self.hi[0], self.step)
        self._j = self._axis(self.lo[1], self.hi[1], self.step)
        self._k = np.arange(self.lo[2], self.hi[2], dtype=F32)
        self.shape = (len(self._k), len(self._j), len(self._i))
        self._cache: dict[bytes, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    @staticmethod
    def _axis(lo: int, hi: int, step: int) -> np.ndarray:
        count = -(-(hi - 1 - lo) // step) + 1
        return (lo + step * np.arange(count)).astype(F32)

    def pixel_size(self) -> float:
        return float(np.linalg.norm(self.A[:, 0]))

    def coarse(self, step: int) -> GridSampler:
        """The same box sampled every `step` voxels in-plane (every slice)."""
        return GridSampler((self.A, self.b), self.lo, self.hi, step)

    def upsample(self, values: np.ndarray, step: int) -> np.ndarray:
        """Linear interpolation of `coarse(step)` values back onto this (full) box."""
        for axis, (lo, hi) in ((2, (self.lo[0], self.hi[0])), (1, (self.lo[1], self.hi[1]))):
            values = upsample_axis(values, step, hi - lo, axis)
        return values

    def local(self, center, rotation):
        # Layers of one structure share a frame: compute its coordinates once (callers never
        # modify the returned arrays in place).
        key = np.asarray(center, dtype=float).tobytes() + np.asarray(rotation, dtype=float).tobytes()
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        rot_t = np.asarray(rotation, dtype=float).T
        m_mat = rot_t @ self.A
        m_off = rot_t @ (self.b - np.asarray(center, dtype=float))
        out = []
        for r in range(3):
            kj = (F32(m_mat[r, 2]) * self._k + F32(m_off[r]))[:, None, None] + (F32(m_mat[r, 1]) * self._j)[None, :, None]
            out.append(kj + (F32(m_mat[r, 0]) * self._i)[None, None, :])
        result = (out[0], out[1], out[2])
        self._cache[key] = result
        return result


def upsample_axis(values: np.ndarray, step: int, n: int, axis: int) -> np.ndarray:
    """Linear interpolation along `axis` of samples every `step` points (GridSampler's coarse
    axes: regular, the last at or beyond point n - 1) onto n points, without gathers."""
    m = values.shape[axis]
    before = (slice(None),) * axis
    lo = values[before + (slice(0, m - 1), None)]
    hi = values[before + (slice(1, m), None)]
    w_shape = [1] * (values.ndim + 1)
    w_shape[axis + 1] = step
    w = (np.arange(step, dtype=F32) / F32(step)).reshape(w_shape)
    blocks = hi - lo
    blocks = blocks * w
    blocks += lo
    shape = list(values.shape)
    shape[axis] = (m - 1) * step
    out = blocks.reshape(shape)
    if shape[axis] < n:
        out = np.concatenate([out, values[before + (slice(m - 1, m),)]], axis=axis)
    return out[before + (slice(0, n),)]


class PointSampler(Sampler):
    """An explicit list of anatomy points, shape (N, 3)."""

    def __init__(self, points: np.ndarray):
        self.points = np.asarray(points, dtype=F32)
        self.shape = (len(self.points),)

    def local(self, center, rotation):
        q = (self.points - np.asarray(center, dtype=F32)) @ np.asarray(rotation, dtype=F32)
        return q[:, 0], q[:, 1], q[:, 2]


# --------------------------------------------------------------------------------------------
# Shapes
# --------------------------------------------------------------------------------------------


class Shape:
    def evaluate(self, sampler: Sampler) -> np.ndarray:
        raise NotImplementedError

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Anatomy-space axis-aligned box (min, max) that contains the shape's inside."""
        raise NotImplementedError


def _box_corners(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])], dtype=float)


def _frame_bounds(center, rotation, lo, hi) -> tuple[np.ndarray, np.ndarray]:
    corners = _box_corners(np.asarray(lo), np.asarray(hi)) @ np.asarray(rotation).T + np.asarray(center)
    return corners.min(axis=0), corners.max(axis=0)


@dataclass
class Ellipsoid(Shape):
    """Ellipsoid in its own frame; radii may differ on the + and - side of each local axis."""

    center: np.ndarray
    rotation: np.ndarray
    radii: tuple[float, float, float]
    radii_neg: tuple[float, float, float] | None = None  # None: symmetric
    # precise: distance from the normalised gradient (exact for spheres, first order near the
    # surface). Otherwise (rho - 1) * geometric-mean radius: same surface, cheaper, and only
    # the width of the partial-volume edge differs (used for large muscles and bones).
    precise: bool = True

    def evaluate(self, sampler):
        q = sampler.local(self.center, self.rotation)
        rp = self.radii
        rn = self.radii_neg if self.radii_neg is not None else rp
        if not self.precise:
            return self._fast(q, rp, rn)
        f = None
        g2 = None
        for axis in range(3):
            if rp[axis] == rn[axis]:
                inv = F32(1.0 / rp[axis])
                u = q[axis] * inv
                g = u * inv
            else:
                inv = np.where(q[axis] >= 0, F32(1.0 / rp[axis]), F32(1.0 / rn[axis])).astype(F32)
                u = q[axis] * inv
                g = u * inv
            u *= u
            g *= g
            f = u if f is None else f.__iadd__(u)
            g2 = g if g2 is None else g2.__iadd__(g)
        rho = np.sqrt(f)
        np.sqrt(g2, out=g2)
        g2 += F32(_EPS / max(min(min(rp), min(rn)), 0.05))
        rho_eps = rho + F32(_EPS)
        rho -= F32(1.0)
        rho *= rho_eps
        rho /= g2
        return rho

    @staticmethod
    def _fast(q, rp, rn):
        f = None
        for axis in range(3):
            if rp[axis] == rn[axis]:
                u = q[axis] * F32(1.0 / rp[axis])
            else:
                u = q[axis] * np.where(q[axis] >= 0, F32(1.0 / rp[axis]), F32(1.0 / rn[axis])).astype(F32)
            u *= u
            f = u if f is None else f.__iadd__(u)
        np.sqrt(f, out=f)
        f -= F32(1.0)
        f *= F32((np.prod(rp) * np.prod(rn)) ** (1.0 / 6.0))
        return f

    def bounds(self):
        rn = self.radii_neg if self.radii_neg is not None else self.radii
        return _frame_bounds(self.center, self.rotation, -np.asarray(rn), np.asarray(self.radii))

    def scaled(self, delta: float) -> Ellipsoid:
        """Same ellipsoid with every radius changed by `delta` mm (a layer inside or outside)."""
        rn = self.radii_neg if self.radii_neg is not None else self.radii
        grow = lambda r: tuple(max(float(x) + delta, 0.2) for x in r)  # noqa: E731
        return Ellipsoid(self.center, self.rotation, grow(self.radii), None if self.radii_neg is None else grow(rn),
                         self.precise)


@dataclass
class Tube(Shape):
    """Tube along its local z from z0 to z1 (flat caps).

    Centre line: (cx(z), cy(z)) with polynomial coefficients (c0, c1, c2) in z; elliptic cross
    section with radii rx(z) = rx0 + rx1*z and ry(z) = ry0 + ry1*z.
    """

    center: np.ndarray
    rotation: np.ndarray
    z0: float
    z1: float
    cx: tuple[float, float, float] = (0.0, 0.0, 0.0)
    cy: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rx: tuple[float, float] = (10.0, 0.0)
    ry: tuple[float, float] = (10.0, 0.0)
    precise: bool = True  # as for Ellipsoid

    def _radius(self, coeffs, z):
        if coeffs[1] == 0:
            return None
        r = F32(coeffs[1]) * z
        r += F32(coeffs[0])
        np.maximum(r, F32(0.3), out=r)
        return r

    def evaluate(self, sampler):
        qx, qy, qz = sampler.local(self.center, self.rotation)
        dx = qx
        if any(self.cx):
            dx = qx - (F32(self.cx[0]) + qz * (F32(self.cx[1]) + qz * F32(self.cx[2])))
        dy = qy
        if any(self.cy):
            dy = qy - (F32(self.cy[0]) + qz * (F32(self.cy[1]) + qz * F32(self.cy[2])))
        rx = self._radius(self.rx, qz)
        ry = self._radius(self.ry, qz)
        if not self.precise and rx is None and ry is None:
            ux = dx * F32(1.0 / self.rx[0])
            ux *= ux
            uy = dy * F32(1.0 / self.ry[0])
            uy *= uy
            ux += uy
            d = np.sqrt(ux, out=ux)
            d -= F32(1.0)
            d *= F32(math.sqrt(self.rx[0] * self.ry[0]))
            self._caps(d, qz)
            return d
        ux = dx / rx if rx is not None else dx * F32(1.0 / self.rx[0])
        uy = dy / ry if ry is not None else dy * F32(1.0 / self.ry[0])
        gx = ux / rx if rx is not None else ux * F32(1.0 / self.rx[0])
        gy = uy / ry if ry is not None else uy * F32(1.0 / self.ry[0])
        f = ux * ux
        f += uy * uy
        g = gx * gx
        g += gy * gy
        np.sqrt(g, out=g)
        g += F32(_EPS / max(min(self.rx[0], self.ry[0]), 0.05))
        rho = np.sqrt(f)
        d = (rho - F32(1.0)) * (rho + F32(_EPS))
        d /= g
        self._caps(d, qz)
        return d

    def _caps(self, d, qz):
        """Flat caps at z0 and z1 (skipped where every point is far from both)."""
        zmin, zmax = float(qz.min()), float(qz.max())
        if zmin < self.z0 + 5:
            np.maximum(d, F32(self.z0) - qz, out=d)
        if zmax > self.z1 - 5:
            np.maximum(d, qz - F32(self.z1), out=d)

    def bounds(self):
        zs = np.linspace(self.z0, self.z1, 9)
        cx = self.cx[0] + zs * (self.cx[1] + zs * self.cx[2])
        cy = self.cy[0] + zs * (self.cy[1] + zs * self.cy[2])
        rx = np.maximum(self.rx[0] + self.rx[1] * zs, 0.3)
        ry = np.maximum(self.ry[0] + self.ry[1] * zs, 0.3)
        # the centre line is quadratic: sampled extremes plus a margin for what lies between
        margin = 0.25 * abs(self.cx[2] + self.cy[2]) * ((self.z1 - self.z0) / 8) ** 2 + 0.5
        lo = np.array([np.min(cx - rx) - margin, np.min(cy - ry) - margin, self.z0])
        hi = np.array([np.max(cx + rx) + margin, np.max(cy + ry) + margin, self.z1])
        return _frame_bounds(self.center, self.rotation, lo, hi)

    def scaled(self, delta: float) -> Tube:
        """Same tube with cross-section radii changed by `delta` mm (caps unchanged)."""
        return Tube(self.center, self.rotation, self.z0, self.z1, self.cx, self.cy,
                    (max(self.rx[0] + delta, 0.3), self.rx[1]), (max(self.ry[0] + delta, 0.3), self.ry[1]),
                    self.precise)


@dataclass
class Union(Shape):
    """Union of shapes; `smooth` > 0 blends them (polynomial smooth minimum, in mm)."""

    children: list[Shape]
    smooth: float = 0.0

    def evaluate(self, sampler):
        d = self.children[0].evaluate(sampler)
        for child in self.children[1:]:
            e = child.evaluate(sampler)
            if self.smooth > 0:
                k = F32(self.smooth)
                h = np.abs(d - e)
                np.subtract(k, h, out=h)
                np.maximum(h, F32(0.0), out=h)
                h *= h
                h *= F32(0.25) / k
                np.minimum(d, e, out=d)
                d -= h
            else:
                np.minimum(d, e, out=d)
        return d

    def bounds(self):
        boxes = [c.bounds() for c in self.children]
        return np.min([b[0] for b in boxes], axis=0), np.max([b[1] for b in boxes], axis=0)


@dataclass
class Intersection(Shape):
    """Points inside `shape` and inside `within` (the box is that of `shape` clipped to `within`)."""

    shape: Shape
    within: Shape

    def evaluate(self, sampler):
        d = self.shape.evaluate(sampler)
        np.maximum(d, self.within.evaluate(sampler), out=d)
        return d

    def bounds(self):
        a, b = self.shape.bounds(), self.within.bounds()
        return np.maximum(a[0], b[0]), np.minimum(a[1], b[1])


@dataclass
class Offset(Shape):
    """The shape grown (delta > 0) or shrunk (delta < 0) by `delta` mm."""

    shape: Shape
    delta: float

    def evaluate(self, sampler):
        d = self.shape.evaluate(sampler)
        d -= F32(self.delta)
        return d

    def bounds(self):
        lo, hi = self.shape.bounds()
        grow = max(self.delta, 0.0)
        return lo - grow, hi + grow

    def scaled(self, delta: float) -> Offset:
        return Offset(self.shape, self.delta + delta)


@dataclass
class Capsule(Shape):
    """Segment from `a` to `b` (anatomy mm) with radius tapering from `ra` to `rb`, round ends.

    Evaluated in the anatomy frame, so all capsules of a grid box share one set of coordinates.
    """

    a: np.ndarray
    b: np.ndarray
    ra: float
    rb: float | None = None

    def evaluate(self, sampler):
        qx, qy, qz = sampler.local(_ORIGIN, _IDENTITY)
        a = np.asarray(self.a, dtype=float)
        ab = np.asarray(self.b, dtype=float) - a
        length2 = max(float(ab @ ab), 1e-9)
        px = qx - F32(a[0])
        py = qy - F32(a[1])
        pz = qz - F32(a[2])
        t = px * F32(ab[0] / length2)
        t += py * F32(ab[1] / length2)
        t += pz * F32(ab[2] / length2)
        np.clip(t, F32(0.0), F32(1.0), out=t)
        px -= t * F32(ab[0])
        py -= t * F32(ab[1])
        pz -= t * F32(ab[2])
        px *= px
        py *= py
        pz *= pz
        px += py
        px += pz
        d = np.sqrt(px, out=px)
        rb = self.ra if self.rb is None else self.rb
        if rb == self.ra:
            d -= F32(self.ra)
        else:
            t *= F32(rb - self.ra)
            t += F32(self.ra)
            d -= t
        return d

    def bounds(self):
        r = max(self.ra, self.ra if self.rb is None else self.rb)
        points = np.stack([np.asarray(self.a, dtype=float), np.asarray(self.b, dtype=float)])
        return points.min(axis=0) - r, points.max(axis=0) + r

    def scaled(self, delta: float) -> Capsule:
        rb = self.ra if self.rb is None else self.rb
        return Capsule(self.a, self.b, max(self.ra + delta, 0.2), max(rb + delta, 0.2))


@dataclass
class Shell(Shape):
    """A sheet of `thickness` mm centred on the surface of `shape` (fasciae, the levator ani)."""

    shape: Shape
    thickness: float

    def evaluate(self, sampler):
        d = self.shape.evaluate(sampler)
        np.abs(d, out=d)
        d -= F32(self.thickness / 2)
        return d

    def bounds(self):
        lo, hi = self.shape.bounds()
        return lo - self.thickness, hi + self.thickness


@dataclass
class Coarse(Shape):
    """`shape` evaluated every `step` pixels in-plane and interpolated linearly (every slice).

    For large smooth surfaces (body wall, muscles, bones, organs): the signed distance is
    nearly linear over a few pixels, so the error is far below a pixel and the cost drops by
    about step^2.
    """

    shape: Shape
    step: int = 3

    def evaluate(self, sampler):
        if isinstance(sampler, GridSampler) and sampler.step == 1 and min(sampler.shape[1:]) > 2 * self.step:
            return sampler.upsample(self.shape.evaluate(sampler.coarse(self.step)), self.step)
        return self.shape.evaluate(sampler)

    def bounds(self):
        return self.shape.bounds()

    def scaled(self, delta: float) -> Coarse:
        return Coarse(grown(self.shape, delta), self.step)


@dataclass
class Cached(Shape):
    """`shape` evaluated once per sampler (layers that are offsets of one surface share it)."""

    shape: Shape

    def evaluate(self, sampler):
        cache = getattr(sampler, "_shape_cache", None)
        if cache is None:
            cache = sampler._shape_cache = {}
        key = id(self)
        if key not in cache:
            cache[key] = (self, self.shape.evaluate(sampler))
        return cache[key][1].copy()

    def bounds(self):
        return self.shape.bounds()

    def scaled(self, delta: float) -> Shape:
        return Offset(self, delta)


def grown(shape: Shape, delta: float) -> Shape:
    """`shape` with its surface moved outwards by `delta` mm (inwards when negative)."""
    if hasattr(shape, "scaled"):
        return shape.scaled(delta)
    return Offset(shape, delta)


_ORIGIN = np.zeros(3)
_IDENTITY = np.eye(3)


@dataclass
class NoiseField:
    """Smooth random field (about N(0,1)) on a coarse lattice in a local frame, linearly interpolated."""

    center: np.ndarray
    rotation: np.ndarray
    lattice: np.ndarray  # [z, y, x]
    origin: np.ndarray  # local coordinates (x, y, z) of lattice[0, 0, 0]
    spacing: float

    @classmethod
    def random(cls, rng: np.random.Generator, center, rotation, half_extent, spacing: float) -> NoiseField:
        half = np.asarray(half_extent, dtype=float) + 2 * spacing
        shape = np.maximum(np.ceil(2 * half / spacing).astype(int) + 1, 4)
        lattice = ndimage.gaussian_filter(rng.standard_normal(tuple(shape[::-1])), 0.8, mode="wrap")
        lattice = (lattice - lattice.mean()) / max(float(lattice.std()), 1e-6)
        return cls(np.asarray(center, dtype=float), np.asarray(rotation, dtype=float),
                   lattice.astype(F32), -half, float(spacing))

    def evaluate(self, sampler: Sampler) -> np.ndarray:
        """Field values at the sampler's points (cached per sampler: do not modify in place)."""
        cache = getattr(sampler, "_field_cache", None)
        if cache is None:
            cache = sampler._field_cache = {}
        key = id(self)
        if key in cache:
            return cache[key][1]
        if isinstance(sampler, GridSampler) and sampler.step == 1:
            # The field is smooth on the scale of its lattice: sample it on a coarser in-plane
            # grid (>= 2.5 samples per lattice cell) and interpolate linearly (much cheaper).
            step = int(self.spacing / (2.5 * sampler.pixel_size()))
            if step >= 2 and min(sampler.shape[1:]) > 2 * step:
                values = sampler.upsample(self._sample(sampler.coarse(step)), step)
                cache[key] = (self, values)
                return values
        values = self._sample(sampler)
        cache[key] = (self, values)  # keep self alive so that id(self) stays unique
        return values

    def _sample(self, sampler: Sampler) -> np.ndarray:
        qx, qy, qz = sampler.local(self.center, self.rotation)
        inv = F32(1.0 / self.spacing)
        coords = np.stack([(qz - F32(self.origin[2])) * inv, (qy - F32(self.origin[1])) * inv,
                           (qx - F32(self.origin[0])) * inv])
        return ndimage.map_coordinates(self.lattice, coords, order=1, mode="nearest", output=F32)


@dataclass
class Perturbed(Shape):
    """A shape whose surface is displaced by `amplitude` mm times a smooth random field."""

    shape: Shape
    noise: NoiseField
    amplitude: float

    def evaluate(self, sampler):
        d = self.shape.evaluate(sampler)
        if self.amplitude > 0:
            d += self.noise.evaluate(sampler) * F32(self.amplitude)
        return d

    def scaled(self, delta: float) -> Perturbed:
        """A layer `delta` mm inside/outside, displaced by the same field (constant wall thickness)."""
        return Perturbed(grown(self.shape, delta), self.noise, self.amplitude)

    def bounds(self):
        lo, hi = self.shape.bounds()
        return lo - 2.5 * self.amplitude, hi + 2.5 * self.amplitude


@dataclass
class Layer:
    """One tissue of a structure: paint `tissue` where `shape` is (partial-volume weighted).

    texture: kind of fine per-tissue texture (textures.TISSUE_TEXTURES), scaled by
    texture_amplitude; field3d: a smooth 3D field (same in every series: the tumour's biology)
    multiplying the signal by (1 + field3d_amplitude * field). only_over: organ label names this
    layer may paint over (small vessels only in fat). edge_mm: a soft margin (infiltrative
    tumour edge, fasciae), the width over which the tissue blends into its surroundings.
    """

    shape: Shape
    tissue: str
    texture: str | None = None
    texture_amplitude: float = 1.0
    label: str | None = None  # a different organ label for this layer (default: the structure's)
    field3d: NoiseField | None = None
    field3d_amplitude: float = 0.0
    only_over: frozenset[str] | None = None
    edge_mm: float = 0.0
    paints_label: bool = True
    flow: float | None = None  # this vessel's spin-echo flow factor (default: the tissue's)
    rough: bool = True  # the surface gets the series' fine boundary roughness (not for small structures)
    # (tissue, thickness mm, texture, label) of a thin layer around this one (a muscle's fat sheath),
    # painted from the same distance values first
    sheath: tuple[str, float, str | None, str] | None = None


@dataclass
class Structure:
    """An anatomical structure: outer layer first, inner layers (same label) painted over it."""

    name: str
    label: str
    layers: list[Layer]
    paints_intensity: bool = True  # False: only the label (same tissue as underneath)
    # True for structures whose surfaces are (nearly) parallel to the slice normal, e.g. the
    # body wall: their partial-volume edge is one pixel wide and needs no normal estimate.
    in_plane_normals: bool = False
    extra: dict = field(default_factory=dict)

    def bounds(self):
        boxes = [layer.shape.bounds() for layer in self.layers]
        return np.min([b[0] for b in boxes], axis=0), np.max([b[1] for b in boxes], axis=0)
