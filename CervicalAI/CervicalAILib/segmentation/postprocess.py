"""Post-processing of the tumour probability map into a plausible primary-tumour mask.

A cervical primary is one connected lesion, sometimes with satellite extensions into the
parametrium or vagina that touch it or lie close to it. So: threshold, keep the component with
the largest probability mass (among those that reach the primary site, when the caller knows where
the cervix is: `anatomy.primary_site_zone`), keep other components that are close to it and not tiny, fill
holes (necrosis is part of the tumour), drop the result if it is below the smallest volume a
reader would call a tumour. Every number comes from the bundle's `postprocessing` block.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

DEFAULT_POSTPROCESSING: dict[str, Any] = {
    "threshold": 0.5,
    "keep_near_mm": 10.0,  # satellites within this distance of the main lesion are kept ...
    "min_satellite_ml": 0.1,  # ... if at least this large
    "min_tumor_ml": 0.05,  # below this, "no tumour found"
    "fill_holes": True,
}


def _bounding_box(mask: np.ndarray, margin: int = 1) -> tuple[slice, ...] | None:
    """Slices of the smallest box holding `mask`, grown by `margin` voxels; None if empty."""
    box = []
    for axis in range(mask.ndim):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        if hits.size == 0:
            return None
        box.append(slice(max(int(hits[0]) - margin, 0), min(int(hits[-1]) + margin + 1, mask.shape[axis])))
    return tuple(box)


def postprocess_mask(
    probability: np.ndarray,
    spacing_zyx: Sequence[float],
    settings: Mapping[str, Any] | None = None,
    primary_zone: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Binary tumour mask (z, y, x) bool from a probability array, and what was done to it.

    primary_zone: voxels near the cervix (bool, same shape); the main lesion is chosen among the
    components that reach it, if any does. None: the largest probability mass anywhere."""
    config = {**DEFAULT_POSTPROCESSING, **(settings or {})}
    full = np.zeros(probability.shape, dtype=bool)
    box = _bounding_box(probability >= float(config["threshold"]))
    if box is None:
        return full, {"components_found": 0, "components_kept": 0}
    zone = primary_zone[box] if primary_zone is not None else None
    keep, report = _select_components(probability[box], spacing_zyx, config, zone)
    full[box] = keep
    return full, report


def _select_components(
    probability: np.ndarray, spacing_zyx: Sequence[float], config: Mapping[str, Any], zone: np.ndarray | None
) -> tuple[np.ndarray, dict[str, Any]]:
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    candidate = probability >= float(config["threshold"])
    labels, count = ndimage.label(candidate, structure=ndimage.generate_binary_structure(3, 3))
    report: dict[str, Any] = {"components_found": int(count), "components_kept": 0}
    if count == 0:
        return np.zeros(probability.shape, dtype=bool), report
    index = np.arange(1, count + 1)
    mass = ndimage.sum_labels(probability, labels, index)
    sizes = ndimage.sum_labels(np.ones_like(probability, dtype=np.float32), labels, index)
    # the main lesion: the most probability mass at the primary site (a false candidate in the uterine body may
    # touch the cervix, but little of it lies there), else the most mass anywhere
    at_site = ndimage.sum_labels(np.where(zone, probability, 0), labels, index) if zone is not None else None
    if at_site is not None and at_site.max() > 0:
        main = int(index[int(np.argmax(at_site))])
        report["main_lesion"] = "most probability at the primary site"
    else:
        main = int(index[int(np.argmax(mass))])
        report["main_lesion"] = "most probability" + (" (none at the primary site)" if zone is not None else "")
    keep = labels == main
    candidates = [
        label for label, size in zip(index, sizes, strict=True)
        if label != main and size * voxel_ml >= float(config["min_satellite_ml"])
    ]
    if candidates:
        # distance (mm) from each satellite's voxels to the main lesion's surface voxels
        scale = np.asarray(spacing_zyx, dtype=float)
        surface = keep & ~ndimage.binary_erosion(keep)
        tree = cKDTree(np.argwhere(surface) * scale)
        for label in candidates:
            component = labels == label
            distance, _ = tree.query(np.argwhere(component) * scale, k=1)
            if float(distance.min()) <= float(config["keep_near_mm"]):
                keep |= component
    if config.get("fill_holes", True):
        keep = ndimage.binary_fill_holes(keep)
        for k in range(keep.shape[0]):  # in-plane holes open at a slice end are closed per slice
            if keep[k].any():
                keep[k] = ndimage.binary_fill_holes(keep[k])
    report["components_kept"] = int(ndimage.label(keep)[1])
    if keep.sum() * voxel_ml < float(config["min_tumor_ml"]):
        report["components_kept"] = 0
        report["dropped_as_too_small_ml"] = float(keep.sum() * voxel_ml)
        return np.zeros(probability.shape, dtype=bool), report
    return keep, report
