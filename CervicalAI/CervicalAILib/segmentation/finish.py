"""The finishing steps every segmentation backend shares (our ONNX bundles in `inference.py`, a
site's nnU-Net model in `nnunet.py`): from the network's tumour and structure probabilities on
the T2WI grid to organ masks, the anatomy gate, the post-processed tumour mask, its measures,
confidence and the summary; and `SegmentationResult`, what `segment_case` returns."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

from CervicalAILib.core.progress import ProgressCallback
from CervicalAILib.io import measurements as measure
from CervicalAILib.segmentation.anatomy import (
    GateSettings,
    anatomy_gate,
    organ_masks,
    primary_site_zone,
)
from CervicalAILib.segmentation.confidence import confidence_report
from CervicalAILib.segmentation.postprocess import postprocess_mask

log = logging.getLogger(__name__)

@dataclass
class SegmentationResult:
    """Outputs on the T2WI grid.

    `mask` (uint8 0/1) and `probability` (uint8, 255 = 1.0) of the tumour, both None when the
    anatomy gate closed (no cervix or uterus, or no cervix: then there is no tumour contour at all); `organs`
    (uint8 label map, values in `organ_labels`: name -> value) when the network segments
    anatomical structures; `summary` (what segmentation.json holds).
    """

    mask: sitk.Image | None
    probability: sitk.Image | None
    summary: dict[str, Any]
    organs: sitk.Image | None = None
    organ_labels: dict[str, int] = field(default_factory=dict)

    @property
    def found(self) -> bool:
        return bool(self.summary["tumor_found"])

    @property
    def anatomy_recognised(self) -> bool:
        """False only when the anatomy gate ran and closed (no cervix or uterus, or no cervix)."""
        return self.summary.get("anatomy_gate", {}).get("anatomy_found", True) is not False


def to_image(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    return image


def finish_segmentation(
    t2: sitk.Image,
    passes: list[np.ndarray],
    structures: Mapping[str, np.ndarray],
    record: dict[str, Any],
    *,
    postprocessing: Mapping[str, Any],
    organ_threshold: float | Mapping[str, float],
    organ_min_ml: float,
    flag_below: float,
    gate: GateSettings | None,
    gate_missing: str,
    ood: dict[str, Any],
    warnings: list[str],
    seconds: dict[str, float],
    start: float,
    progress: ProgressCallback,
) -> SegmentationResult:
    """From probabilities on the T2WI grid to the result, the same for every kind of network.

    `passes`: tumour probability of the original and the mirrored pass(es); `structures`:
    name -> probability of each anatomical structure; a voxel's organ is the most probable structure
    among those reaching their `organ_threshold` (the bundle's, one or per structure); an organ under `organ_min_ml`
    is not found. Organ masks, then the anatomy gate (which
    removes tumour candidates away from the cervix/uterus, or all of them when there is none),
    then the post-processing, confidence, measurements and the summary.
    """
    tick = time.perf_counter()
    progress(0.93, "organs, anatomy gate, post-processing and confidence")
    spacing_zyx = t2.GetSpacing()[::-1]
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    threshold = float(postprocessing.get("threshold", 0.5))
    masks = organ_masks(structures, organ_threshold, min_voxels=int(np.ceil(organ_min_ml / voxel_ml)))
    organ_labels = {name: value for value, name in enumerate(masks, start=1)}
    organs_image = None
    if masks:
        label_map = np.zeros(t2.GetSize()[::-1], dtype=np.uint8)
        for name, mask in masks.items():
            label_map[mask] = organ_labels[name]
        organs_image = to_image(label_map, t2)
    organs = [
        {"name": name, "label": organ_labels[name], "found": bool(mask.any()),
         "volume_ml": round(float(mask.sum()) * voxel_ml, 3)}
        for name, mask in masks.items()
    ]
    mean = np.mean(passes, axis=0)
    if gate is not None:
        drop, gate_report = anatomy_gate(mean >= threshold, masks, spacing_zyx, gate)
        if drop.any():
            passes = [np.where(drop, np.float32(0), p) for p in passes]
            mean = np.where(drop, np.float32(0), mean)
            if gate_report["anatomy_found"]:
                warnings.append(
                    f"anatomy gate: removed {gate_report['removed_components']} tumour candidate(s) "
                    f"({gate_report['removed_ml']:.2f} mL) not in or next to the cervix/uterus"
                )
    else:
        gate_report = {"applied": False, "reason": gate_missing}
    anatomy_found = gate_report.get("anatomy_found", True)
    common = {
        **record,
        "organs": organs,
        "anatomy_gate": gate_report,
        "ood": ood,
        "t2w_geometry": {"size": list(t2.GetSize()), "spacing_mm": [round(s, 5) for s in t2.GetSpacing()]},
    }
    if ood.get("unusual"):
        warnings.append(ood["message"])
    if not anatomy_found:
        because = f" ({gate_report['reason']})" if gate_report.get("reason") else ""
        warnings.append(f"{gate_report['message']}{because}: no tumour contour was made")
        log.warning("%s%s", gate_report["message"], because)
        summary: dict[str, Any] = {
            "tumor_found": False,
            "status": gate_report["status"],
            "message": gate_report["message"],
            "volume_ml": 0.0,
            "max_diameter_mm": 0.0,
            "largest_slice_index": None,
            "confidence": None,
            "flagged_slices": [],
            "slices": [],
            **common,
            "postprocessing": {"components_found": 0, "components_kept": 0},
            "warnings": warnings,
        }
        seconds["postprocess"] = time.perf_counter() - tick
        return _done(SegmentationResult(None, None, summary, organs_image, organ_labels), seconds, start, progress)

    zone = primary_site_zone(masks, spacing_zyx, gate) if gate is not None else None
    mask_array, post_report = postprocess_mask(mean, spacing_zyx, postprocessing, primary_zone=zone)
    confidence = confidence_report(passes, threshold=threshold, flag_below=flag_below)
    mask = to_image(mask_array.astype(np.uint8), t2)
    probability = to_image(np.round(np.clip(mean, 0, 1) * 255).astype(np.uint8), t2)
    seconds["postprocess"] = time.perf_counter() - tick

    tick = time.perf_counter()
    found = bool(mask_array.any())
    if not found:
        warnings.append("no tumour found: the network predicted no lesion above the size threshold")
        log.warning("no tumour found")
    summary = {
        "tumor_found": found,
        "status": "tumour found" if found else "no tumour found",
        "message": "tumour found" if found else "no tumour found: the network predicted no lesion above the size threshold",
        "volume_ml": round(measure.volume_ml(mask), 3),
        "max_diameter_mm": round(measure.max_diameter_mm(mask), 2) if found else 0.0,
        "largest_slice_index": measure.largest_slice_index(mask) if found else None,
        "confidence": confidence["confidence"],
        "certainty": confidence["certainty"],
        "flip_agreement": confidence["flip_agreement"],
        "flagged_slices": confidence["flagged_slices"],
        "slices": confidence["slices"],
        "confidence_formula": confidence["formula"],
        **common,
        "postprocessing": post_report,
        "warnings": warnings,
    }
    seconds["measure"] = time.perf_counter() - tick
    return _done(SegmentationResult(mask, probability, summary, organs_image, organ_labels), seconds, start, progress)


def _done(result: SegmentationResult, seconds: dict[str, float], start: float, progress) -> SegmentationResult:
    seconds["total"] = time.perf_counter() - start
    result.summary["seconds"] = {key: round(value, 3) for key, value in seconds.items()}
    progress(1.0, result.summary["status"])
    return result
