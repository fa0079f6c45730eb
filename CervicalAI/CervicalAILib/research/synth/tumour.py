"""The primary tumour: an irregular 3D shape grown from the cervix, its extension and necrosis.

The core is a smooth union of a main ellipsoid and a few satellite blobs (lobulation), scaled so
that its maximum 3D diameter equals the patient's latent diameter, with its margin displaced by
a smooth random field (lobulated) and a finer one (infiltrative, finger-like edges). Stage-
dependent extension blobs (vaginal, parametrial, pelvic sidewall, bladder/rectum, the lower
uterine body) are added once the neighbouring organs are placed.
Necrosis is an irregular core kept at least 2.5 mm inside the tumour margin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial import ConvexHull, QhullError

from CervicalAILib.research.synth.shapes import (
    Ellipsoid,
    Intersection,
    NoiseField,
    Offset,
    Perturbed,
    PointSampler,
    Shape,
    Union,
    frame_from_axis,
    rotation_matrix,
)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniformly random 3D rotation (QR of a Gaussian matrix, sign-fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q @ np.diag(np.sign(np.diag(r)))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def random_direction(rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal(3)
    return v / np.linalg.norm(v)


@dataclass
class TumourCore:
    """Tumour core in the cervix frame before extension: blobs (unit-scaled then sized)."""

    shape: Shape
    blobs: list[Ellipsoid]
    center: np.ndarray  # anatomy point of the tumour centre
    radius: float  # half the latent diameter (mm)


def build_core(rng: np.random.Generator, center: np.ndarray, diameter_mm: float) -> TumourCore:
    """Main blob + satellites around `center`, scaled to a maximum diameter of `diameter_mm`."""
    aspect = rng.uniform(0.62, 0.95, size=2)
    blobs_unit = [(np.zeros(3), random_rotation(rng), (float(aspect[0]), float(aspect[1]), 1.0))]
    n_satellites = int(rng.integers(2, 6))
    for _ in range(n_satellites):
        offset = random_direction(rng) * rng.uniform(0.3, 0.6)
        radii = rng.uniform(0.32, 0.6) * rng.uniform(0.75, 1.0, size=3)
        blobs_unit.append((offset, random_rotation(rng), tuple(float(r) for r in radii)))
    # Maximum diameter of the unit-scaled union, measured on points: then scale to the target.
    unit = Union([Ellipsoid(c, rot, r) for c, rot, r in blobs_unit], smooth=0.25)
    unit_diameter = measure_shape(unit, resolution=24)[1]
    scale = diameter_mm / max(unit_diameter, 1e-6)
    blobs = [
        Ellipsoid(np.asarray(center) + scale * c, rot, tuple(scale * x for x in r)) for c, rot, r in blobs_unit
    ]
    shape = Union(list(blobs), smooth=0.25 * scale)
    return TumourCore(shape=shape, blobs=blobs, center=np.asarray(center, dtype=float), radius=diameter_mm / 2)


def extension_blob(rng: np.random.Generator, start: np.ndarray, direction: np.ndarray, length: float,
                   width: float, thickness: float) -> Ellipsoid:
    """An elongated blob from `start` along `direction` (tumour spreading into a neighbour)."""
    axis = np.asarray(direction, dtype=float)
    axis /= np.linalg.norm(axis)
    rot = frame_from_axis(axis, roll=float(rng.uniform(0, np.pi)))
    center = np.asarray(start, dtype=float) + axis * (length / 2)
    return Ellipsoid(center, rot, (width / 2, thickness / 2, length / 2 + 2.0))


def finish_tumour(rng: np.random.Generator, core: TumourCore, extensions: list[Shape], amplitude: float,
                  noise_frame: np.ndarray, fine_amplitude: float = 0.0) -> tuple[Shape, NoiseField]:
    """Core + extensions, margin displaced by `amplitude` mm times a smooth random field and by
    `fine_amplitude` mm times a fine one (about 2 mm: the infiltrative front)."""
    parts: list[Shape] = [core.shape, *extensions]
    shape: Shape = Union(parts, smooth=3.0) if extensions else core.shape
    lo, hi = shape.bounds()
    half = (hi - lo) / 2
    spacing = float(np.clip(core.radius / 2.5, 1.5, 6.0))
    noise = NoiseField.random(rng, (lo + hi) / 2, noise_frame, half, spacing)
    result: Shape = Perturbed(shape, noise, amplitude)
    if fine_amplitude > 0:
        fine = NoiseField.random(rng, (lo + hi) / 2, noise_frame, half + 3 * amplitude, float(rng.uniform(1.8, 2.6)))
        result = Perturbed(result, fine, fine_amplitude)
    return result, noise


def build_necrosis(rng: np.random.Generator, tumour: Shape, core: TumourCore, fraction: float,
                   volume_ml: float, noise_frame: np.ndarray) -> Shape | None:
    """Irregular necrotic core of about `fraction` of the tumour volume, >= 2.5 mm inside it."""
    if fraction <= 0 or volume_ml <= 0:
        return None
    radius = (fraction * volume_ml * 1000.0 * 3 / (4 * math.pi)) ** (1 / 3)
    if radius < 2.0:
        return None
    center = core.center + random_direction(rng) * rng.uniform(0, 0.25) * core.radius
    radii = tuple(float(radius * f) for f in rng.uniform(0.8, 1.2, size=3))
    blob = Ellipsoid(center, random_rotation(rng), radii)
    noise = NoiseField.random(rng, center, noise_frame, np.asarray(radii) + 6, float(max(radius / 2.5, 1.5)))
    return Intersection(Perturbed(blob, noise, min(3.0, radius / 2.5)), Offset(tumour, -2.5))


def measure_shape(shape: Shape, resolution: int = 48, max_points: int = 150_000) -> tuple[float, float, np.ndarray]:
    """(volume in shape units^3, maximum diameter, inside points) by sampling the shape's box.

    The box is sampled on a regular lattice of about `resolution` points along its longest side.
    The maximum diameter is the largest distance between convex-hull vertices of the inside
    points plus one lattice step (the points are voxel centres).
    """
    lo, hi = shape.bounds()
    extent = np.maximum(hi - lo, 1e-6)
    step = float(extent.max() / resolution)
    counts = np.maximum(np.ceil(extent / step).astype(int), 1)
    while int(np.prod(counts)) > max_points:
        step *= 1.15
        counts = np.maximum(np.ceil(extent / step).astype(int), 1)
    axes = [lo[a] + (np.arange(counts[a]) + 0.5) * step for a in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    inside = shape.evaluate(PointSampler(grid)) < 0
    points = grid[inside]
    volume = float(inside.sum()) * step**3
    if len(points) == 0:
        return 0.0, 0.0, points
    return volume, max_diameter(points) + step, points


def max_diameter(points: np.ndarray) -> float:
    """Largest distance between two of the points (via their convex hull)."""
    if len(points) < 2:
        return 0.0
    candidates = points
    if len(points) > 10:
        try:
            candidates = points[ConvexHull(points).vertices]
        except QhullError:  # flat or degenerate set: fall back to the extreme points per axis
            idx = np.unique(np.concatenate([np.argmin(points, axis=0), np.argmax(points, axis=0)]))
            candidates = points[idx]
    diff = candidates[:, None, :] - candidates[None, :, :]
    return float(np.sqrt((diff**2).sum(-1)).max())


__all__ = [
    "TumourCore",
    "build_core",
    "build_necrosis",
    "extension_blob",
    "finish_tumour",
    "max_diameter",
    "measure_shape",
    "random_direction",
    "random_rotation",
    "rotation_matrix",
]
