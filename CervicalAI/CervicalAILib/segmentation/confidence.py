"""How much to trust the automatic contour, overall and per T2WI slice.

Two independent signs of doubt, each in [0, 1]:

- certainty = 1 - mean binary entropy H(p) (in bits) of the mean probability p over the
  "region of interest" S = voxels where either pass gives p >= 0.5, or the mean p >= `low`
  (the lesion and its uncertain rim). A crisp network gives H ~ 0 inside and a thin rim of H ~ 1.
- agreement = Dice between the mask predicted from the original image and the mask predicted
  from the left-right mirrored image (mapped back): a stable prediction does not depend on
  which side of the patient the pixels come from. (The mirrored pass runs on a box around the
  voxels the original pass gives p >= 0.1, grown by a quarter patch; outside it the two agree
  by construction. With no such voxel the whole volume is mirrored.)

confidence = certainty x agreement. Per slice the same formula is applied to the slice's voxels
(Dice of an empty pair = 1). Slices below `flag_below` are flagged, worst first, so the reader
checks them first. An empty prediction has confidence = 1 - mean entropy of the whole volume's
highest-probability voxels (how sure the network is that there is nothing).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from CervicalAILib.io.measurements import mask_dice


def binary_entropy(p: np.ndarray) -> np.ndarray:
    """Entropy in bits of a Bernoulli(p) variable, elementwise, in [0, 1]."""
    p = np.clip(np.asarray(p, dtype=np.float32), 1e-6, 1 - 1e-6)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def confidence_report(
    passes: list[np.ndarray],
    threshold: float = 0.5,
    low: float = 0.1,
    flag_below: float = 0.75,
    max_flagged: int = 10,
) -> dict[str, Any]:
    """Overall and per-slice confidence from test-time passes (each (z, y, x) probabilities).

    The slice axis is the first array axis, so slice numbers are the k index of the image the
    arrays are on (the T2WI grid in `segment_case`).
    """
    mean = np.mean(passes, axis=0)
    masks = [p >= threshold for p in passes]
    region = np.logical_or.reduce(masks) | (mean >= low)
    entropy = binary_entropy(mean)
    if not region.any():
        top = np.sort(mean.ravel())[-1000:]  # empty prediction: how sure is "nothing here"?
        certainty = float(1.0 - binary_entropy(top).mean())
        return {
            "confidence": round(certainty, 4),
            "certainty": round(certainty, 4),
            "flip_agreement": 1.0,
            "slices": [],
            "flagged_slices": [],
            "formula": FORMULA,
        }
    certainty = float(1.0 - entropy[region].mean())
    agreement = float(np.mean([mask_dice(masks[0], m) for m in masks[1:]])) if len(masks) > 1 else 1.0
    slices = []
    for k in np.flatnonzero(region.any(axis=(1, 2))):
        in_slice = region[k]
        slice_certainty = float(1.0 - entropy[k][in_slice].mean())
        slice_agreement = (
            float(np.mean([mask_dice(masks[0][k], m[k]) for m in masks[1:]])) if len(masks) > 1 else 1.0
        )
        slices.append(
            {
                "slice": int(k),
                "confidence": round(slice_certainty * slice_agreement, 4),
                "certainty": round(slice_certainty, 4),
                "flip_agreement": round(slice_agreement, 4),
                "tumor_voxels": int((mean[k] >= threshold).sum()),
            }
        )
    flagged = sorted((s for s in slices if s["confidence"] < flag_below), key=lambda s: s["confidence"])
    return {
        "confidence": round(certainty * agreement, 4),
        "certainty": round(certainty, 4),
        "flip_agreement": round(agreement, 4),
        "slices": slices,
        "flagged_slices": [{"slice": s["slice"], "confidence": s["confidence"]} for s in flagged[:max_flagged]],
        "formula": FORMULA,
    }


FORMULA = (
    "confidence = (1 - mean binary entropy of the mean probability over the lesion and its uncertain rim) "
    "x Dice(original-image mask, left-right-mirrored-image mask); per slice on the T2WI slices"
)
