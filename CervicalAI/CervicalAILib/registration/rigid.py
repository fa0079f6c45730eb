"""Rigid registration of one MRI sequence onto another (Mattes mutual information, SimpleITK).

Sequences of one MRI session already share the scanner's patient coordinate system, so the
registration starts from the scanner geometry (identity in physical space) and only corrects
patient motion between acquisitions: a few millimetres and degrees.

How it works, and why:
- Transform: `sitk.Euler3DTransform` (3 rotations about a centre + 3 translations), centred on
  the fixed image (or its mask): rotation angles and a translation in mm are what a reader can check.
- Metric: Mattes mutual information, because the sequences have different contrast (a bright
  bladder on T2WI is dark on high-b DWI).
- Multi-resolution on physical working grids: each level resamples the fixed image onto a grid
  whose spacing is at least the level's spacing in every direction (anisotropy-aware: a 0.7 x 0.7
  x 4 mm T2WI becomes 8 x 8 x 8, 4 x 4 x 4, then 2 x 2 x 4 mm), after Gaussian smoothing of both
  images. SimpleITK's own shrink factors are isotropic in voxel units and would crush the few,
  thick slices of a pelvic T2WI first.
- Speed and bounded time: a fixed number of randomly sampled points per level (not a percentage,
  so the cost does not grow with the image), a maximum number of iterations per level and a
  wall-clock guard that stops the optimiser and returns the best transform so far.
- Reproducible: random sampling uses a fixed seed.
- Safety: if the result is worse by the metric than where it started, the starting transform is
  kept and the reason says so.

Convention (SimpleITK's): `RegistrationResult.transform` maps FIXED physical points (LPS, mm) to
MOVING physical points, i.e. it is the transform you pass to `sitk.Resample(moving, fixed, ...)`.
Written as `.tfm`, 3D Slicer loads it as the transform that brings the moving volume onto the fixed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from CervicalAILib.core import atomic
from CervicalAILib.core.errors import InputError
from CervicalAILib.core.progress import ProgressCallback, no_progress
from CervicalAILib.io.geometry import index_to_physical_matrix, overlap_fraction

DEFAULT_SEED = 20261122
INITIALIZERS = ("scanner", "geometry", "moments")
# Corrections larger than these are unusual between sequences of one session: say so.
LARGE_TRANSLATION_MM = 10.0
LARGE_ROTATION_DEG = 5.0


@dataclass
class RegistrationResult:
    """Outcome of one rigid registration (fixed -> moving transform, SimpleITK convention)."""

    transform: sitk.Euler3DTransform
    metric_value: float
    initial_metric_value: float
    iterations: int
    seconds: float
    converged: bool
    stop_reason: str
    initializer: str = "scanner"
    levels: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def matrix(self) -> np.ndarray:
        return np.asarray(self.transform.GetMatrix(), dtype=float).reshape(3, 3)

    @property
    def translation_mm(self) -> np.ndarray:
        """Displacement of the centre of rotation (mm, LPS)."""
        return np.asarray(self.transform.GetTranslation(), dtype=float)

    @property
    def rotation_deg(self) -> float:
        """Total rotation angle (axis-angle form), degrees."""
        return rotation_angle_deg(self.matrix)

    def displacement_mm(self, points: np.ndarray) -> np.ndarray:
        """Length of the displacement the transform applies at each LPS point (N, 3) -> (N,)."""
        points = np.atleast_2d(np.asarray(points, dtype=float))
        moved = np.array([self.transform.TransformPoint(tuple(p)) for p in points])
        return np.linalg.norm(moved - points, axis=1)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready description for registration.json: what a reader needs to judge it."""
        transform = self.transform
        offset = np.asarray(transform.GetTranslation()) + np.asarray(transform.GetCenter()) - self.matrix @ np.asarray(
            transform.GetCenter()
        )
        return {
            "transform_type": "Euler3DTransform",
            "convention": "maps T2W (fixed) physical points to this sequence's (moving) physical points, "
            "LPS millimetres (SimpleITK/ITK resampling convention)",
            "parameters": list(transform.GetParameters()),
            "center_mm": list(transform.GetCenter()),
            "matrix": self.matrix.tolist(),
            "offset_mm": offset.tolist(),
            "translation_mm": self.translation_mm.tolist(),
            "translation_norm_mm": float(np.linalg.norm(self.translation_mm)),
            "rotation_deg": [math.degrees(a) for a in transform.GetParameters()[:3]],
            "rotation_angle_deg": self.rotation_deg,
            "initializer": self.initializer,
            "metric": "Mattes mutual information (negative: lower is better)",
            # None when not measured (a DWI that takes its ADC's transform): NaN is not JSON
            "initial_metric_value": _finite_or_none(self.initial_metric_value),
            "final_metric_value": _finite_or_none(self.metric_value),
            "iterations": self.iterations,
            "seconds": round(self.seconds, 3),
            "converged": self.converged,
            "stop_reason": self.stop_reason,
            "levels": self.levels,
            "settings": self.settings,
            "warnings": list(self.warnings),
        }


def _finite_or_none(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def rotation_angle_deg(matrix: np.ndarray) -> float:
    """Angle of a 3x3 rotation matrix in axis-angle form, degrees."""
    cosine = (np.trace(np.asarray(matrix, dtype=float)) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))


def write_transform(transform: sitk.Transform, path: str | Path) -> Path:
    """Write a transform as an ITK `.tfm` text file, atomically."""
    with atomic.atomic_path(path) as tmp:
        sitk.WriteTransform(transform, str(tmp))
    return Path(path)


def transform_text(transform: sitk.Transform) -> str:
    """The `.tfm` file content of a transform (for writing inside a case folder)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "transform.tfm"
        sitk.WriteTransform(transform, str(path))
        return path.read_text(encoding="utf-8")


def _check_volume(image: sitk.Image, what: str) -> None:
    if not isinstance(image, sitk.Image):
        raise InputError(f"{what}: expected a SimpleITK image, got {type(image).__name__}")
    if image.GetDimension() != 3:
        raise InputError(f"{what}: rigid registration needs a 3D volume, got a {image.GetDimension()}D image")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"{what}: expected one value per voxel, got {image.GetNumberOfComponentsPerPixel()} "
            "(pick one volume, e.g. the high-b DWI, first)"
        )
    if min(image.GetSize()) < 2:
        raise InputError(f"{what}: volume of size {image.GetSize()} is too small to register (a single slice?)")


def _centre_of(image: sitk.Image, mask: sitk.Image | None) -> np.ndarray:
    """Physical centre of the mask's foreground if given, else of the image's voxel grid."""
    if mask is not None:
        stats = sitk.LabelShapeStatisticsImageFilter()
        stats.Execute(sitk.Cast(mask > 0, sitk.sitkUInt8))
        if stats.HasLabel(1):
            return np.asarray(stats.GetCentroid(1))
    size = np.asarray(image.GetSize(), dtype=float)
    matrix = index_to_physical_matrix(image)
    return matrix[:3, :3] @ ((size - 1) / 2.0) + matrix[:3, 3]


def _initial_transform(fixed: sitk.Image, moving: sitk.Image, fixed_mask: sitk.Image | None, initializer: str):
    transform = sitk.Euler3DTransform()
    transform.SetCenter(tuple(_centre_of(fixed, fixed_mask)))
    if initializer == "scanner":
        return transform  # identity: trust the scanner's patient coordinates
    mode = (
        sitk.CenteredTransformInitializerFilter.GEOMETRY
        if initializer == "geometry"
        else sitk.CenteredTransformInitializerFilter.MOMENTS
    )
    initialised = sitk.CenteredTransformInitializer(
        sitk.Cast(fixed, sitk.sitkFloat32), sitk.Cast(moving, sitk.sitkFloat32), sitk.Euler3DTransform(), mode
    )
    return sitk.Euler3DTransform(initialised)


def _grid_like(image: sitk.Image, spacing: np.ndarray) -> sitk.Image:
    """Empty image covering `image`'s extent (same outer voxel edges, same axes) with `spacing`."""
    native = np.asarray(image.GetSpacing(), dtype=float)
    size = np.asarray(image.GetSize(), dtype=float)
    new_size = np.maximum(1, np.round(size * native / spacing)).astype(int)
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    first_edge = np.asarray(image.GetOrigin()) - direction @ (native / 2.0)
    grid = sitk.Image([int(n) for n in new_size], sitk.sitkUInt8)
    grid.SetSpacing(tuple(float(s) for s in spacing))
    grid.SetOrigin(tuple(first_edge + direction @ (np.asarray(spacing) / 2.0)))
    grid.SetDirection(image.GetDirection())
    return grid


def _working_grid(image: sitk.Image, target_spacing: float) -> sitk.Image:
    """The image's extent sampled at max(native, target) spacing along each axis."""
    return _grid_like(image, np.maximum(np.asarray(image.GetSpacing(), dtype=float), target_spacing))


def _evaluation_grid(image: sitk.Image, target_spacing: float) -> sitk.Image:
    """A working grid made 1/0.77 times denser, so its points line up with neither voxel grid.

    Evaluated on points that coincide with the moving image's voxel centres (same slice
    positions at the scanner geometry, for instance), mutual information favours exactly that
    position, because it is the only one with no interpolation blur.
    """
    spacing = np.maximum(np.asarray(image.GetSpacing(), dtype=float), target_spacing) * 0.77
    return _grid_like(image, spacing)


def _smooth(image: sitk.Image, target_spacing: float) -> sitk.Image:
    """Gaussian anti-aliasing for sampling at `target_spacing` (only along finer axes)."""
    image = sitk.Cast(image, sitk.sitkFloat32)
    spacing = np.asarray(image.GetSpacing(), dtype=float)
    # variance that brings each axis' resolution to about the target spacing (physical units, mm^2)
    variance = np.maximum(0.0, (target_spacing / 2.0) ** 2 - (spacing / 2.0) ** 2)
    variance[np.asarray(image.GetSize()) < 4] = 0.0  # too few voxels along that axis to filter
    if not np.any(variance > 0):
        return image
    return sitk.DiscreteGaussian(image, variance=[float(v) for v in variance], maximumKernelWidth=64, useImageSpacing=True)


def _downsample(image: sitk.Image, spacing: float) -> sitk.Image:
    """Smooth for `spacing` and resample onto the working grid (no resampling when it is the same)."""
    smoothed = _smooth(image, spacing)
    grid = _working_grid(image, spacing)
    if grid.GetSize() == image.GetSize() and np.allclose(grid.GetSpacing(), image.GetSpacing()):
        return smoothed
    return sitk.Resample(smoothed, grid, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)


def _pyramid(image: sitk.Image, levels_mm: list[float]) -> list[sitk.Image]:
    """One smoothed, resampled float32 copy of `image` per level spacing.

    Coarse levels are made from the finest one, not from the full-resolution image: smoothing
    a 400 x 400 x 30 T2WI with a wide kernel three times took most of the registration time.
    """
    finest = min(levels_mm)
    base = _downsample(sitk.Cast(image, sitk.sitkFloat32), finest)
    return [base if spacing == finest else _downsample(base, spacing) for spacing in levels_mm]


def default_level_spacings(fixed: sitk.Image, moving: sitk.Image) -> list[float]:
    """Coarse-to-fine working spacings (mm): 4x, 2x and 1x the finest useful spacing.

    Finer than the coarser of the two images' in-plane spacings brings no information: a 2 mm
    DWI is matched on a 2 mm grid even when the T2WI has 0.7 mm voxels.
    """
    finest = max(min(fixed.GetSpacing()), min(moving.GetSpacing()))
    return [4.0 * finest, 2.0 * finest, finest]


def _configure(method: sitk.ImageRegistrationMethod, n_voxels: int, samples: int, bins: int, seed: int) -> None:
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=bins)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(min(1.0, samples / max(n_voxels, 1)), seed)
    method.SetInterpolator(sitk.sitkLinear)
    # Image gradients by central differences at each sample point: ITK's default pre-filtered
    # gradient images are biased near sharp edges (air/body, the DWI field-of-view border) and
    # drove real ADC-to-T2 registrations away from the metric's optimum in our tests.
    method.MetricUseFixedImageGradientFilterOff()
    method.MetricUseMovingImageGradientFilterOff()


def register_rigid(
    fixed: sitk.Image,
    moving: sitk.Image,
    *,
    fixed_mask: sitk.Image | None = None,
    moving_mask: sitk.Image | None = None,
    initializer: str = "scanner",
    max_seconds: float = 60.0,
    seed: int = DEFAULT_SEED,
    level_spacings_mm: list[float] | None = None,
    samples_per_level: int = 20000,
    histogram_bins: int = 32,
    max_iterations: int = 200,
    progress: ProgressCallback | None = None,
) -> RegistrationResult:
    """Rigidly register `moving` onto `fixed` (both 3D, any grids); return the fixed->moving transform.

    fixed_mask / moving_mask: optional masks (non-zero = use) restricting where the metric samples
    (e.g. a region around the pelvis); the fixed mask's centroid also becomes the rotation centre.
    initializer: "scanner" (identity in physical space, right for sequences of one session),
    "geometry" (align image centres) or "moments" (align intensity centres of mass).
    max_seconds: wall-clock budget; when spent, the best transform so far is returned
    (converged=False). seed: random sampling seed (same inputs + seed -> same result).
    level_spacings_mm: coarse-to-fine working spacings; default from `default_level_spacings`.
    """
    progress = progress or no_progress
    start = time.perf_counter()
    _check_volume(fixed, "fixed image")
    _check_volume(moving, "moving image")
    if initializer not in INITIALIZERS:
        raise InputError(f"unknown initializer {initializer!r}; choose one of {', '.join(INITIALIZERS)}")
    if max_seconds <= 0:
        raise InputError(f"max_seconds must be positive, got {max_seconds}")
    levels_mm = list(level_spacings_mm) if level_spacings_mm else default_level_spacings(fixed, moving)
    if any(not (s > 0) for s in levels_mm):
        raise InputError(f"level spacings must be positive millimetres, got {levels_mm}")
    for mask, what in ((fixed_mask, "fixed mask"), (moving_mask, "moving mask")):
        if mask is not None:
            _check_volume(mask, what)
            if sitk.GetArrayViewFromImage(mask).max() <= 0:
                raise InputError(f"{what} is empty (no non-zero voxel)")

    transform = _initial_transform(fixed, moving, fixed_mask, initializer)
    if overlap_fraction(moving, fixed, transform) == 0.0:
        raise InputError("the moving image does not overlap the fixed image at all in physical space (different study?)")

    settings = {
        "initializer": initializer,
        "level_spacings_mm": levels_mm,
        "samples_per_level": samples_per_level,
        "histogram_bins": histogram_bins,
        "max_iterations_per_level": max_iterations,
        "max_seconds": max_seconds,
        "seed": seed,
        "optimizer": "regular step gradient descent, scales from physical shift",
        "fixed_mask": fixed_mask is not None,
        "moving_mask": moving_mask is not None,
    }
    progress(0.0, "rigid registration: smoothing and resampling the image pyramids")
    fixed_levels = _pyramid(fixed, levels_mm)
    moving_levels = _pyramid(moving, levels_mm)
    initial = sitk.Euler3DTransform(transform)
    levels: list[dict[str, Any]] = []
    iterations = 0
    timed_out = False
    stop_reason = ""
    finest_run = 0  # the finest level that ran: the result is judged there
    for level, spacing in enumerate(levels_mm):
        if time.perf_counter() - start > max_seconds:
            timed_out = True
            break
        progress(level / len(levels_mm), f"rigid registration, level {level + 1}/{len(levels_mm)} ({spacing:g} mm)")
        fixed_l, moving_l = fixed_levels[level], moving_levels[level]
        grid = fixed_l
        method = sitk.ImageRegistrationMethod()
        _configure(method, int(np.prod(grid.GetSize())), samples_per_level, histogram_bins, seed)
        if fixed_mask is not None:
            method.SetMetricFixedMask(sitk.Resample(fixed_mask > 0, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0))
        if moving_mask is not None:
            method.SetMetricMovingMask(sitk.Cast(moving_mask > 0, sitk.sitkUInt8))
        method.SetOptimizerAsRegularStepGradientDescent(
            learningRate=spacing,  # first steps move points by about one working voxel
            minStep=0.01 * spacing,
            numberOfIterations=max_iterations,
            relaxationFactor=0.5,
            gradientMagnitudeTolerance=1e-8,
        )
        method.SetOptimizerScalesFromPhysicalShift()
        method.SetInitialTransform(transform, inPlace=True)

        def guard(method=method):
            if time.perf_counter() - start > max_seconds:
                method.StopRegistration()

        method.AddCommand(sitk.sitkIterationEvent, guard)
        try:
            method.Execute(fixed_l, moving_l)
        except RuntimeError as exc:
            raise InputError(f"rigid registration failed at level {level + 1} ({spacing:g} mm): {_last_line(exc)}") from exc
        level_iterations = method.GetOptimizerIteration()
        iterations += level_iterations
        stop_reason = method.GetOptimizerStopConditionDescription()
        levels.append(
            {
                "spacing_mm": spacing,
                "grid_size": list(grid.GetSize()),
                "iterations": level_iterations,
                "metric_value": method.GetMetricValue(),
                "stop_reason": stop_reason,
            }
        )
        finest_run = level
        if time.perf_counter() - start > max_seconds:
            timed_out = True
            break

    initial_metric, final_metric = _metric_values(
        fixed,
        fixed_levels[finest_run],
        moving_levels[finest_run],
        levels_mm[finest_run],
        [initial, transform],
        fixed_mask,
        moving_mask,
        histogram_bins,
    )
    warnings: list[str] = []
    if timed_out:
        stop_reason = f"wall-clock limit of {max_seconds:g} s reached; best transform so far returned"
    if final_metric > initial_metric:
        warnings.append(
            f"registration made the match worse (metric {final_metric:.4f} > {initial_metric:.4f} at the start): "
            f"kept the {initializer} initial transform"
        )
        transform = initial
        final_metric = initial_metric
        stop_reason = f"reverted to the initial transform ({stop_reason})"
    result = RegistrationResult(
        transform=transform,
        metric_value=float(final_metric),
        initial_metric_value=float(initial_metric),
        iterations=int(iterations),
        seconds=time.perf_counter() - start,
        converged=not timed_out and not stop_reason.startswith("reverted"),
        stop_reason=stop_reason,
        initializer=initializer,
        levels=levels,
        settings=settings,
        warnings=warnings,
    )
    if np.linalg.norm(result.translation_mm) > LARGE_TRANSLATION_MM or result.rotation_deg > LARGE_ROTATION_DEG:
        result.warnings.append(
            f"large correction ({np.linalg.norm(result.translation_mm):.1f} mm, {result.rotation_deg:.1f} degrees): "
            "unusual within one session; check the alignment visually"
        )
    progress(1.0, "rigid registration done")
    return result


# Evaluating the metric at every point of a large grid is slow: cap the number of points.
MAX_EVALUATION_POINTS = 400_000


def _metric_values(
    fixed: sitk.Image,
    fixed_smoothed: sitk.Image,
    moving_smoothed: sitk.Image,
    spacing: float,
    transforms: list[sitk.Transform],
    fixed_mask: sitk.Image | None,
    moving_mask: sitk.Image | None,
    bins: int,
) -> list[float]:
    """Mattes MI of each transform, all points of one evaluation grid (no sampling noise)."""
    grid = _evaluation_grid(fixed, spacing)
    points = float(np.prod(grid.GetSize()))
    if points > MAX_EVALUATION_POINTS:
        coarser = np.asarray(grid.GetSpacing()) * (points / MAX_EVALUATION_POINTS) ** (1.0 / 3.0)
        grid = _grid_like(fixed, coarser)
    fixed_e = sitk.Resample(fixed_smoothed, grid, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    values = []
    for transform in transforms:
        method = sitk.ImageRegistrationMethod()
        _configure(method, 1, 1, bins, 0)  # sampling settings do not apply: MetricEvaluate uses every point
        if fixed_mask is not None:
            method.SetMetricFixedMask(sitk.Resample(fixed_mask > 0, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0))
        if moving_mask is not None:
            method.SetMetricMovingMask(sitk.Cast(moving_mask > 0, sitk.sitkUInt8))
        method.SetInitialTransform(sitk.Euler3DTransform(transform), inPlace=False)
        try:
            values.append(float(method.MetricEvaluate(fixed_e, moving_smoothed)))
        except RuntimeError as exc:
            raise InputError(f"cannot evaluate the registration metric: {_last_line(exc)}") from exc
    return values


def _last_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
