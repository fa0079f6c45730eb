"""IBSI check: pyradiomics on the IBSI-1 digital phantom against the IBSI consensus values.

Inputs (not shipped; the test reads them from ../shared/refdata/ibsi/):
- `ibsi_1_digital_phantom/phantom.nii.gz`, `mask.nii.gz`: 5x4x4 voxels of 2 mm, grey levels 1-6;
- `ibsi_1_dig_phantom.csv`: `value;tolerance;tag` reference values (3 significant digits);
- `mapping_phantom.csv`: IBSI tag -> pyradiomics feature name, prefixed with the configuration
  (`3D_`, `3D_Combined_`, `2D_`, `2D_Combined_`);
- `Phantom.yml`: the pyradiomics settings for the phantom (bin width 1, no resampling).

The configurations follow the pyradiomics IBSI benchmark: `3D_` is the plain 3D extraction
(texture matrices per direction, features averaged: IBSI "3D_avg"); `Combined` merges the
directions' matrices before computing features (`weightingNorm: no_weighting`, IBSI "comb");
`2D_` computes the matrices in-plane only (`force2D`), merged over slices (IBSI "2.5D").

Agreement: |pyradiomics - reference| <= tolerance + half a unit of the reference's third
significant digit (IBSI reports its consensus values rounded to 3 significant digits, many
with tolerance 0).

Every mapped feature agrees except the documented KNOWN_DEVIATIONS below; for each of these
the deviation is explained and `corrected` turns pyradiomics' value into the IBSI definition,
which then agrees (the test checks both, so this list cannot go stale silently).
IBSI features without a pyradiomics counterpart (e.g. morph_asphericity, local intensity
peaks, intensity-volume histogram, distance-zone matrix, per-slice 2D texture) are not mapped
and therefore not checked.
"""

from __future__ import annotations

import copy
import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import yaml

from CervicalAILib.core.errors import InputError

# configuration prefix in mapping_phantom.csv -> (force2D, weightingNorm)
CONFIGURATIONS: dict[str, tuple[bool, str | None]] = {
    "3D_": (False, None),
    "3D_Combined_": (False, "no_weighting"),
    "2D_": (True, None),
    "2D_Combined_": (True, "no_weighting"),
}


@dataclass(frozen=True)
class KnownDeviation:
    reason: str
    # pyradiomics value, number of voxels in the ROI -> value under the IBSI definition
    corrected: Callable[[float, int], float]


def _sample_covariance(value: float, n_voxels: int) -> float:
    return value * math.sqrt(n_voxels / (n_voxels - 1))


_AXIS_REASON = (
    "pyradiomics derives the PCA axis lengths (4*sqrt(eigenvalue)) from the covariance of the voxel positions "
    "normalised by N, the IBSI reference from the sample covariance normalised by N-1: pyradiomics' axes are "
    "shorter by sqrt((N-1)/N) (0.9932 for the 74-voxel phantom). The major axis stays within its tolerance; "
    "the minor and least axes do not."
)

KNOWN_DEVIATIONS: dict[str, KnownDeviation] = {
    "stat_kurt": KnownDeviation(
        "pyradiomics reports the kurtosis m4/m2^2 (3 for a normal distribution); IBSI reports the excess kurtosis "
        "(kurtosis - 3).",
        lambda value, n_voxels: value - 3.0,
    ),
    "morph_pca_min_axis": KnownDeviation(_AXIS_REASON, _sample_covariance),
    "morph_pca_least_axis": KnownDeviation(_AXIS_REASON, _sample_covariance),
}


@dataclass(frozen=True)
class IbsiComparison:
    tag: str
    pyradiomics_name: str
    value: float
    reference: float
    tolerance: float  # IBSI's tolerance
    allowed: float  # tolerance + half a unit of the reference's third significant digit
    agrees: bool
    known_deviation: KnownDeviation | None = None
    corrected_value: float | None = None  # for a known deviation: the value under the IBSI definition
    corrected_agrees: bool | None = None


def allowed_difference(reference: float, tolerance: float) -> float:
    """IBSI tolerance plus the rounding of a value reported to 3 significant digits."""
    if reference == 0:
        return tolerance
    return tolerance + 0.5 * 10 ** (math.floor(math.log10(abs(reference))) - 2)


def read_reference_values(path: str | Path) -> dict[str, tuple[float, float]]:
    """IBSI reference CSV (`value;tolerance;tag`) -> {tag: (value, tolerance)}; rows without a value skipped."""
    path = Path(path)
    values = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.reader(handle, delimiter=";"):
            if len(row) < 3 or not row[0].strip() or row[0].strip().lower().startswith("reference"):
                continue
            try:
                values[row[2].strip()] = (float(row[0]), float(row[1] or 0.0))
            except ValueError as exc:
                raise InputError(f"unreadable IBSI reference row {row}", path) from exc
    return values


def read_mapping(path: str | Path) -> list[tuple[str, str]]:
    """IBSI tag -> pyradiomics name pairs from `mapping_phantom.csv` (`tag,pyradiomics_feature`)."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        return [(row["tag"].strip(), row["pyradiomics_feature"].strip()) for row in csv.DictReader(handle)]


def phantom_settings(base: dict, prefix: str) -> dict:
    """Phantom.yml settings adapted to one configuration prefix ("3D_", "2D_Combined_", ...)."""
    force_2d, weighting = CONFIGURATIONS[prefix]
    params = copy.deepcopy(base)
    params.setdefault("setting", {})
    params["setting"]["force2D"] = force_2d
    params["setting"]["force2Ddimension"] = 0  # in-plane = the (x, y) slices, stacked along z
    params["setting"]["weightingNorm"] = weighting
    params["setting"]["additionalInfo"] = False
    return params


def extract_phantom(ibsi_dir: str | Path) -> tuple[dict[str, float], int]:
    """pyradiomics on the phantom in every configuration: ({prefixed name: value}, voxels in the ROI)."""
    from radiomics import featureextractor  # pyradiomics

    ibsi_dir = Path(ibsi_dir)
    image = sitk.ReadImage(str(ibsi_dir / "ibsi_1_digital_phantom" / "phantom.nii.gz"))
    mask = sitk.ReadImage(str(ibsi_dir / "ibsi_1_digital_phantom" / "mask.nii.gz"))
    base = yaml.safe_load((ibsi_dir / "Phantom.yml").read_text(encoding="utf-8"))
    values: dict[str, float] = {}
    for prefix in CONFIGURATIONS:
        extractor = featureextractor.RadiomicsFeatureExtractor(phantom_settings(base, prefix))
        for name, value in extractor.execute(image, mask).items():
            if not name.startswith("diagnostics_"):
                values[prefix + name] = float(value)
    n_voxels = int(np.count_nonzero(sitk.GetArrayViewFromImage(mask) == 1))
    return values, n_voxels


def check_digital_phantom(ibsi_dir: str | Path) -> list[IbsiComparison]:
    """Compare pyradiomics with the IBSI reference for every mapped feature of the digital phantom."""
    ibsi_dir = Path(ibsi_dir)
    reference = read_reference_values(ibsi_dir / "ibsi_1_dig_phantom.csv")
    mapping = read_mapping(ibsi_dir / "mapping_phantom.csv")
    values, n_voxels = extract_phantom(ibsi_dir)
    comparisons = []
    for tag, name in mapping:
        if tag not in reference:
            raise InputError(f"IBSI tag {tag!r} in the mapping has no reference value", ibsi_dir)
        if name not in values:
            raise InputError(f"pyradiomics produced no {name!r} (mapped from IBSI tag {tag!r})", ibsi_dir)
        ref, tolerance = reference[tag]
        allowed = allowed_difference(ref, tolerance)
        value = values[name]
        deviation = KNOWN_DEVIATIONS.get(tag)
        corrected = deviation.corrected(value, n_voxels) if deviation else None
        comparisons.append(
            IbsiComparison(
                tag=tag,
                pyradiomics_name=name,
                value=value,
                reference=ref,
                tolerance=tolerance,
                allowed=allowed,
                agrees=abs(value - ref) <= allowed,
                known_deviation=deviation,
                corrected_value=corrected,
                corrected_agrees=None if corrected is None else abs(corrected - ref) <= allowed,
            )
        )
    return comparisons
