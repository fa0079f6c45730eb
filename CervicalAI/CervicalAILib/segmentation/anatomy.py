"""Anatomy around the tumour: organ masks and the anatomy gate.

Structures are named, never numbered; names are compared after `contracts.label_table.canonical_name`.

The anatomy gate. A cervical tumour lies in or next to the cervix/uterus. Given the network's
tumour candidate (probability >= threshold) and its cervix/uterus masks:

- cervix + uterus below `min_ml` (a male pelvis, another body region, a blank series): no
  tumour at all, and the study is reported as "no cervix or uterus recognised in this study";
- no tumour either when the primary site itself is below `min_primary_ml`: a network can take
  another pelvic organ for a uterus (the bladder dome, the seminal vesicles, bowel), but a cervical
  tumour grows from a cervix. The primary site is the cervix the network found together with the
  tumour candidates attached to it (within `primary_near_mm`): a tumour replaces the stroma it
  grows in, so around a large tumour little cervix label is left, while a male pelvis has neither.
  The study is then reported as "no cervix recognised in this study" (a uterus may well have been
  found). 0 switches this test off; a bundle sets it from the smallest primary site its network
  found on calibration cases (older bundles leave it off);
- otherwise every connected tumour candidate that comes no closer than `near_mm` to the
  cervix/uterus is removed, and the removed voxels are counted. The test is per connected
  component, not per voxel: a large tumour grows outward from the cervix (into the vagina,
  the parametria, the bladder wall), so its far edge may lie centimetres from what is left of
  the cervix while the lesion as a whole is still attached to it.

The primary site. A cervical primary grows from the cervix, so when several candidates pass the
gate, the main lesion is the one with the most probability mass within `primary_near_mm` of the
cervix (`primary_site_zone`, used by `postprocess.postprocess_mask`); only when none reaches the
cervix is it the one with the most mass anywhere. Without this a small tumour lost to a larger
false candidate in the sigmoid colon or the uterine cavity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from CervicalAILib.bundles.format import manifest_number
from CervicalAILib.contracts.label_table import canonical_name
from CervicalAILib.core.errors import BundleError

NO_ANATOMY_MESSAGE = "no cervix or uterus recognised in this study"
NO_ANATOMY_STATUS = "no cervix or uterus recognised"
NO_PRIMARY_MESSAGE = "no cervix recognised in this study"
NO_PRIMARY_STATUS = "no cervix recognised"

# An organ smaller than this is "not found": a few stray voxels are not a bladder or a rectum
# (the tumour's own floor is the bundle's postprocessing.min_tumor_ml). A bundle may set its own
# (`organ_min_ml`).
DEFAULT_ORGAN_MIN_ML = 0.5


# --------------------------------------------------------------------------- organ masks


def largest_part(mask: np.ndarray) -> np.ndarray:
    """The largest connected part of a boolean mask (26-connected), or the mask itself when it has one or none."""
    if not mask.any():
        return mask
    labels, count = ndimage.label(mask, structure=ndimage.generate_binary_structure(mask.ndim, mask.ndim))
    if count == 1:
        return mask
    sizes = ndimage.sum_labels(mask, labels, np.arange(1, count + 1))
    return labels == int(np.argmax(sizes)) + 1


def organ_masks(
    probabilities: Mapping[str, np.ndarray],
    threshold: float | Mapping[str, float] = 0.5,
    largest_component: bool = True,
    min_voxels: int = 0,
) -> dict[str, np.ndarray]:
    """One boolean mask per structure from its probability map (all on one grid).

    `threshold`: one for every structure or one per structure. A voxel goes to the structure with
    the highest probability among those at or above their threshold (organs do not overlap); each
    structure keeps its largest connected part (the network's stray voxels elsewhere are not the
    organ); a structure left with fewer than `min_voxels` voxels is empty (not found).
    """
    names = list(probabilities)
    if not names:
        return {}
    stack = np.stack([np.asarray(probabilities[n], dtype=np.float32) for n in names])  # a fresh copy
    for index, name in enumerate(names):  # under its own threshold a structure cannot win the voxel
        limit = float(threshold[name]) if isinstance(threshold, Mapping) else float(threshold)
        stack[index][stack[index] < limit] = -1.0  # in place: no second copy of a whole-study stack
    winner = np.argmax(stack, axis=0)
    above = stack.max(axis=0) >= 0.0  # thresholds are above 0, so a candidate is never negative
    del stack
    masks: dict[str, np.ndarray] = {}
    for index, name in enumerate(names):
        mask = above & (winner == index)
        if largest_component:
            mask = largest_part(mask)
        if int(mask.sum()) < min_voxels:
            mask = np.zeros_like(mask)
        masks[name] = mask
    return masks


# --------------------------------------------------------------------------- the gate


@dataclass(frozen=True)
class GateSettings:
    """What the gate needs (declared in a bundle's "anatomy_gate"; these are the defaults)."""

    required: tuple[str, ...] = ("cervix", "uterus")
    min_ml: float = 5.0
    min_primary_ml: float = 0.0  # the primary site (cervix + attached tumour) must reach this (0: not tested)
    near_mm: float = 10.0
    primary: str = "cervix"  # where the main lesion starts (see the module docstring)
    primary_near_mm: float = 5.0

    @classmethod
    def from_manifest(cls, spec: Mapping[str, Any] | None, where: Path | str = "bundle.json") -> GateSettings:
        """The bundle's "anatomy_gate" (`where` names the bundle in errors); each volume and distance is a
        number of 0 or more, else a one-line BundleError."""
        spec = {} if spec is None else spec
        if not isinstance(spec, Mapping):
            raise BundleError(f"{where}: anatomy_gate {spec!r} is not an object of gate settings")

        def amount(key: str, default: float, unit: str) -> float:
            return manifest_number(spec, key, default, low=0.0, high=float("inf"), low_included=True,
                                   what=f"a number of {unit} (0 or more)", where=where, name=f"anatomy_gate.{key}")

        return cls(
            required=tuple(canonical_name(n) for n in spec.get("required", cls.required)),
            min_ml=amount("min_ml", cls.min_ml, "mL"),
            min_primary_ml=amount("min_primary_ml", cls.min_primary_ml, "mL"),
            near_mm=amount("near_mm", cls.near_mm, "mm"),
            primary=canonical_name(spec.get("primary", cls.primary)),
            primary_near_mm=amount("primary_near_mm", cls.primary_near_mm, "mm"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"required": list(self.required), "min_ml": self.min_ml, "min_primary_ml": self.min_primary_ml,
                "near_mm": self.near_mm,
                "primary": self.primary, "primary_near_mm": self.primary_near_mm}


def gate_available(structure_names: Sequence[str], settings: GateSettings = GateSettings()) -> bool:
    """True when the network segments at least one of the structures the gate relies on."""
    names = {canonical_name(n) for n in structure_names}
    return any(name in names for name in settings.required)


def anatomy_gate(
    candidate: np.ndarray,
    organs: Mapping[str, np.ndarray],
    spacing_zyx: Sequence[float],
    settings: GateSettings = GateSettings(),
) -> tuple[np.ndarray, dict[str, Any]]:
    """The tumour candidate voxels to drop (bool, same shape) and what the gate found.

    `candidate`: voxels the network calls tumour (probability >= threshold), before the
    main-lesion selection; `organs`: structure name -> mask on the same grid.
    """
    candidate = np.asarray(candidate, dtype=bool)
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    anatomy = np.zeros(candidate.shape, dtype=bool)
    found_ml: dict[str, float] = {}
    for name in settings.required:
        if name in organs:
            anatomy |= organs[name]
            found_ml[name] = round(_organ_ml(organs, name, voxel_ml), 3)
    anatomy_ml = float(anatomy.sum()) * voxel_ml
    report: dict[str, Any] = {
        "applied": True,
        "settings": settings.to_dict(),
        "anatomy_ml": round(anatomy_ml, 3),
        "anatomy_found_ml": found_ml,
    }
    primary_ml = None
    if settings.min_primary_ml > 0 and _organ_ml(organs, settings.primary, voxel_ml) < settings.min_primary_ml:
        # the cervix alone is too small: count the tumour attached to it (the distance map only here)
        primary_ml = primary_site_ml(candidate, organs, spacing_zyx, settings)
        report["primary_site_ml"] = round(primary_ml, 3)
    reason = None
    if anatomy_ml < settings.min_ml:
        reason = f"{' + '.join(settings.required)} {_under(anatomy_ml, settings.min_ml, 1)} mL, below {settings.min_ml:g} mL"
        status, message = NO_ANATOMY_STATUS, NO_ANATOMY_MESSAGE
    elif primary_ml is not None and primary_ml < settings.min_primary_ml:
        reason = (f"{settings.primary} + attached tumour {_under(primary_ml, settings.min_primary_ml, 2)} mL, "
                  f"below the {settings.min_primary_ml:g} mL the primary site needs")
        status, message = NO_PRIMARY_STATUS, NO_PRIMARY_MESSAGE
    if reason is not None:
        report.update(
            anatomy_found=False,
            reason=reason,
            status=status,
            message=message,
            removed_components=int(ndimage.label(candidate)[1]) if candidate.any() else 0,
            removed_ml=round(float(candidate.sum()) * voxel_ml, 3),
        )
        return candidate.copy(), report
    drop = np.zeros(candidate.shape, dtype=bool)
    removed = 0
    if candidate.any():
        distance = ndimage.distance_transform_edt(~anatomy, sampling=[float(s) for s in spacing_zyx])
        near = distance <= settings.near_mm
        labels, count = ndimage.label(candidate, structure=ndimage.generate_binary_structure(3, 3))
        touching = np.unique(labels[near & candidate])
        for label in range(1, count + 1):
            if label not in touching:
                drop |= labels == label
                removed += 1
    report.update(
        anatomy_found=True,
        status="tumour candidates checked against the cervix/uterus",
        removed_components=removed,
        removed_ml=round(float(drop.sum()) * voxel_ml, 3),
    )
    return drop, report


def _under(value: float, limit: float, digits: int) -> str:
    """`value` (below `limit`) printed with `digits` decimals, or more where rounding would reach the limit
    (0.999 mL is not "1.00 mL, below the 1 mL")."""
    while digits < 4 and round(value, digits) >= limit:
        digits += 1
    return f"{value:.{digits}f}"


def _organ_ml(organs: Mapping[str, np.ndarray], name: str, voxel_ml: float) -> float:
    return float(organs[name].sum()) * voxel_ml if name in organs else 0.0


def primary_site_ml(
    candidate: np.ndarray, organs: Mapping[str, np.ndarray], spacing_zyx: Sequence[float],
    settings: GateSettings = GateSettings(),
) -> float:
    """mL of the primary site the network found: the primary organ (the cervix) and every tumour
    candidate component that comes within `primary_near_mm` of it; 0 when the organ was not found."""
    site = organs.get(settings.primary)
    if site is None or not site.any():
        return 0.0
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    candidate = np.asarray(candidate, dtype=bool)
    if not candidate.any():
        return float(site.sum()) * voxel_ml
    zone = primary_site_zone(organs, spacing_zyx, settings)
    labels, _ = ndimage.label(candidate, structure=ndimage.generate_binary_structure(3, 3))
    attached = np.unique(labels[zone & candidate])
    return float((site | np.isin(labels, attached[attached > 0])).sum()) * voxel_ml


def primary_site_zone(
    organs: Mapping[str, np.ndarray], spacing_zyx: Sequence[float], settings: GateSettings = GateSettings()
) -> np.ndarray | None:
    """Voxels within `primary_near_mm` of the primary-site organ (bool), or None when it was not found."""
    site = organs.get(settings.primary)
    if site is None or not site.any():
        return None
    return ndimage.distance_transform_edt(~site, sampling=[float(s) for s in spacing_zyx]) <= settings.primary_near_mm
