"""pyradiomics' LBP3D filter on any scipy: Slicer 5.10 ships scipy 1.13.1, Slicer 5.12 scipy 1.17.1.

pyradiomics 3.1's `imageoperations.getLBP3DImage` imports `scipy.special.sph_harm`, which scipy
1.17 removed (its successor `sph_harm_y`, from scipy 1.15, takes degree before order and the polar
angle before the azimuth). On scipy 1.17 pyradiomics only logs "Could not load required package"
and yields no image, so every lbp-3D feature is missing and a model that uses one (the LNM model
uses two) cannot be applied. Inside Slicer scipy is Slicer's, so the engine computes the filter
itself, calling whichever spherical-harmonic function the installed scipy has.

The filter is the rotation-invariant 3D LBP of Banerjee et al. (ACCV 2012 workshops) exactly as
pyradiomics computes it, so the values do not depend on which code ran:

1. sample the image (cubic spline) at the vertices of an icosphere around every tumour voxel
   (trimesh's icosphere, as pyradiomics);
2. kurtosis of the samples per voxel -> image `lbp-3D-k`;
3. sign pattern (sample >= centre value), expanded in spherical harmonics up to degree
   `lbp3DLevels - 1`; per degree, the pattern's component in that band, and the root of the sum
   of its squares over the vertices -> images `lbp-3D-m1`, `lbp-3D-m2`, ...

pyradiomics' own choices are kept, so that its feature values are reproduced: the harmonics
take the polar angle arccos(z / r) in the azimuth's place and the azimuth in the polar angle's
place (as its call `sph_harm(m, n, polar, azimuth)` does), and the "norm" squares the complex
values rather than their moduli before the real part is taken. A test checks the images against
pyradiomics' own on a scipy that still has `sph_harm`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import special
from scipy.ndimage import map_coordinates
from scipy.stats import kurtosis

logger = logging.getLogger(__name__)


def spherical_harmonic(order: int, degree: int, azimuth_slot: np.ndarray, polar_slot: np.ndarray) -> np.ndarray:
    """Y of `degree` and `order` as scipy's former `sph_harm(order, degree, azimuth_slot, polar_slot)`."""
    if hasattr(special, "sph_harm_y"):  # scipy >= 1.15: sph_harm_y(degree, order, polar, azimuth)
        return special.sph_harm_y(degree, order, polar_slot, azimuth_slot)
    return special.sph_harm(order, degree, azimuth_slot, polar_slot)  # scipy < 1.15


def _harmonics_table(levels: int, vertices: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """(Y[vertex, column], degree of each column) for degrees 0..levels-1 and orders -n..n."""
    polar = np.arccos(np.true_divide(vertices[:, 2], radius))
    azimuth = np.arctan2(vertices[:, 1], vertices[:, 0])
    columns, degrees = [], []
    for degree in range(levels):
        for order in range(-degree, degree + 1):
            # pyradiomics passes the polar angle where the azimuth goes (see module doc)
            columns.append(spherical_harmonic(order, degree, polar, azimuth))
            degrees.append(degree)
    return np.column_stack(columns), np.array(degrees)


def lbp3d_images(image: sitk.Image, mask: sitk.Image, **settings: Any) -> Iterator[tuple[sitk.Image, str, dict]]:
    """Yield (image, name, settings) for `lbp-3D-m1` ... `lbp-3D-m<levels>` and `lbp-3D-k`, like
    pyradiomics' getLBP3DImage. Voxels outside the tumour are 0 (pyradiomics leaves them undefined;
    no feature reads them). Settings: lbp3DLevels (2), lbp3DIcosphereRadius (1),
    lbp3DIcosphereSubdivision (1), label (1)."""
    from trimesh.creation import icosphere

    if image.GetDimension() != 3:
        logger.warning("LBP 3D only available for 3 dimensional images, found %i dimensions", image.GetDimension())
        return
    if settings.get("force2D", False):
        logger.warning("Calculating Local Binary Pattern in 3D, but extracting features in 2D. Use with caution!")
    label = settings.get("label", 1)
    levels = int(settings.get("lbp3DLevels", 2))
    radius = settings.get("lbp3DIcosphereRadius", 1)
    subdivisions = settings.get("lbp3DIcosphereSubdivision", 1)

    voxels = sitk.GetArrayFromImage(image)
    inside = np.where(sitk.GetArrayViewFromImage(mask) == label)  # (z, y, x) index arrays, one entry per tumour voxel
    vertices = np.array(icosphere(subdivisions, radius).vertices)  # (vertex, xyz) offsets in voxel units
    harmonics, degrees = _harmonics_table(levels, vertices, radius)

    # samples around each tumour voxel: offsets are added to the (z, y, x) index, as pyradiomics does
    points = np.array(inside).T[None, :, :] + vertices[:, None, :]  # (vertex, voxel, 3)
    samples = map_coordinates(voxels, points.T, order=3)  # (voxel, vertex)
    spherical_kurtosis = np.real(kurtosis(samples, axis=1))

    pattern = (samples >= voxels[inside][:, None]).astype(int)  # (voxel, vertex)
    coefficients = (pattern[:, :, None] * harmonics[None, :, :]).sum(axis=1)  # (voxel, column)
    # the pattern's component in each degree's band, at each vertex: (voxel, vertex, degree); kept in
    # this layout so that the sums over vertices add in pyradiomics' order (same values to the last bit)
    bands = np.concatenate(
        [(coefficients[:, None, degrees == degree] * harmonics[None, :, degrees == degree]).sum(axis=2, keepdims=True)
         for degree in range(levels)],
        axis=2,
    )
    band_norms = np.real(np.sqrt(np.sum(bands**2, axis=1)))  # (voxel, degree)

    filtered = np.zeros(voxels.shape, dtype=float)
    for level in range(levels):
        filtered[inside] = band_norms[:, level]
        yield _like(filtered, image), f"lbp-3D-m{level + 1}", settings
    filtered[inside] = spherical_kurtosis
    yield _like(filtered, image), "lbp-3D-k", settings


def _like(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    result = sitk.GetImageFromArray(array)
    result.CopyInformation(reference)
    return result
