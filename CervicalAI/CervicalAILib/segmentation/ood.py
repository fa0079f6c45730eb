"""Out-of-distribution score: how unlike the training images a study looks to the network.

The network's ONNX graph has a second output, the global average of its bottleneck (deepest
encoder) activation for each sliding-window patch. A case's feature vector is the mean of
those patch vectors over the unmirrored pass. The bundle's `ood.json` (plain data, no pickle)
holds the mean and the inverse of the (Ledoit-Wolf shrunk) covariance of that vector over the
training cases, and a threshold set on held-out synthetic cases (split-conformal quantile) so that
a new case like them exceeds it with probability at most the bundle's false-alarm rate (5 % by
default, 2.5 % for the shipped 2.x networks). The score is the Mahalanobis distance of the case's vector from the training mean,
divided by that threshold: below 1 the study looks like the training images; above 1 it does
not, and the reader is told so in one plain sentence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from CervicalAILib.core.errors import BundleError

OOD_SCHEMA = "cervicalai.ood/1"
OOD_MESSAGE = "the study looks unlike the images this model was trained on: check the contour carefully"


@dataclass(frozen=True)
class OodModel:
    """The training distribution of the case feature vector and the calibrated threshold."""

    mean: np.ndarray  # (C,)
    precision: np.ndarray  # (C, C), inverse shrunk covariance
    threshold: float  # Mahalanobis distance that at most `false_alarm_rate` of held-out cases exceed
    output_name: str  # the ONNX output holding the per-patch features
    description: dict[str, Any]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "ood.json") -> OodModel:
        if data.get("schema") != OOD_SCHEMA:
            raise BundleError(f"{where}: unknown OOD schema {data.get('schema')!r} (this version reads {OOD_SCHEMA!r})")
        try:
            mean = np.asarray(data["mean"], dtype=np.float64)
            precision = np.asarray(data["precision"], dtype=np.float64)
            threshold = float(data["threshold"])
            output_name = str(data["output_name"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{where}: incomplete OOD description ({exc})") from exc
        if mean.ndim != 1 or precision.shape != (mean.size, mean.size) or not threshold > 0:
            raise BundleError(f"{where}: OOD mean {mean.shape}, precision {precision.shape}, threshold {threshold} do not fit")
        description = {k: v for k, v in data.items() if k not in ("mean", "precision")}
        return cls(mean, precision, threshold, output_name, description)

    def distance(self, case_vector: np.ndarray) -> float:
        delta = np.asarray(case_vector, dtype=np.float64) - self.mean
        return float(np.sqrt(max(float(delta @ self.precision @ delta), 0.0)))

    def report(self, patch_features: Sequence[np.ndarray]) -> dict[str, Any]:
        """The score and its plain meaning for one case from its per-patch feature vectors."""
        vector = case_feature_vector(patch_features)
        if vector.size != self.mean.size:
            raise BundleError(f"the network gives {vector.size} features per patch; ood.json expects {self.mean.size}")
        distance = self.distance(vector)
        score = distance / self.threshold
        unusual = bool(score > 1.0)
        calibration = self.description.get("calibration", {})
        rate = 100 * float(calibration.get("false_alarm_rate_target", 0.05))
        return {
            "available": True,
            "score": round(score, 3),
            "unusual": unusual,
            "message": OOD_MESSAGE if unusual else "the study looks like the images this model was trained on",
            "mahalanobis_distance": round(distance, 3),
            "threshold_distance": round(self.threshold, 3),
            "meaning": "score = Mahalanobis distance of the network's bottleneck features from its training cases / "
            f"the distance a synthetic case like the training ones exceeds with probability at most {rate:g}%; above 1: "
            "unlike the training images",
            "calibration": calibration,
            "patches": len(patch_features),
        }


def case_feature_vector(patch_features: Sequence[np.ndarray]) -> np.ndarray:
    """One vector per case: the mean of the per-patch bottleneck averages."""
    if len(patch_features) == 0:
        raise ValueError("no patch features were collected")
    return np.mean(np.stack([np.asarray(f, dtype=np.float64).ravel() for f in patch_features]), axis=0)


def not_available(reason: str) -> dict[str, Any]:
    return {"available": False, "reason": reason}
