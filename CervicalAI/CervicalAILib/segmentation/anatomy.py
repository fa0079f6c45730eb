"""Anatomy around the tumour: structure names, label tables, organ masks and the anatomy gate.

Names, never numbers: a label map's values are read from its label table (the generator's
`labels/organs.json`, or its legend in `generator_truth.json` / `generator.json`; an nnU-Net
model's `dataset.json`), and structure names are compared after `canonical_name` (lower case,
"_" for separators, a few spellings folded: "tumour" -> "tumor", "uterine_body" -> "uterus").

The anatomy gate. A cervical tumour lies in or next to the cervix/uterus. Given the network's
tumour candidate (probability >= threshold) and its cervix/uterus masks:

- cervix + uterus below `min_ml` (a male pelvis, another body region, a blank series): no
  tumour at all, and the study is reported as "no cervix or uterus recognised in this study";
- otherwise every connected tumour candidate that comes no closer than `near_mm` to the
  cervix/uterus is removed, and the removed voxels are counted. The test is per connected
  component, not per voxel: a large tumour grows outward from the cervix (into the vagina,
  the parametria, the bladder wall), so its far edge may lie centimetres from what is left of
  the cervix while the lesion as a whole is still attached to it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from CervicalAILib.core.errors import InputError

TUMOR = "tumor"
NO_ANATOMY_MESSAGE = "no cervix or uterus recognised in this study"
NO_ANATOMY_STATUS = "no cervix or uterus recognised"

# Other spellings seen in label tables -> the name used here.
ALIASES: dict[str, str] = {
    "tumour": TUMOR,
    "gtv": TUMOR,
    "primary_tumor": TUMOR,
    "primary_tumour": TUMOR,
    "cervical_tumor": TUMOR,
    "cervical_tumour": TUMOR,
    "cervix_stroma": "cervix",
    "cervical_stroma": "cervix",
    "uterine_cervix": "cervix",
    "uterine_body": "uterus",
    "uterus_body": "uterus",
    "corpus_uteri": "uterus",
    "urinary_bladder": "bladder",
    "femoral_head_l": "femoral_head_left",
    "femoral_head_r": "femoral_head_right",
}


def canonical_name(name: str) -> str:
    """'Tumour' -> 'tumor', 'Uterine body' -> 'uterus', 'Bladder' -> 'bladder'."""
    text = re.sub(r"[^a-z0-9]+", "_", str(name).strip().lower()).strip("_")
    return ALIASES.get(text, text)


def name_to_values_table(table: Mapping[str, Any], where: str) -> dict[str, tuple[int, ...]]:
    """A label table as {canonical name: label values}, from any of the layouts in use.

    Accepts {name: value} or {name: [values]} (nnU-Net's dataset.json), {"value": name} (older
    legends) and {"labels": {"value": {"name", "group"}}, "groups": {group: [values]}} (generator
    2's `labels/organs.json`): a group ("uterus" = endometrium + junctional zone + myometrium)
    maps to all its members' values. InputError naming `where` when an entry is none of these or
    when two labels share a name.
    """
    groups: Mapping[str, Any] = {}
    if isinstance(table.get("labels"), Mapping):  # a file holding {"labels": {...}, "groups": {...}}
        groups = table.get("groups") if isinstance(table.get("groups"), Mapping) else {}
        table = table["labels"]
    result: dict[str, set[int]] = {}
    grouped: dict[str, set[int]] = {}
    for key, item in table.items():
        group = None
        if re.fullmatch(r"\d+", str(key)) and isinstance(item, Mapping) and isinstance(item.get("name"), str):
            name, values, group = item["name"], {int(key)}, item.get("group")
        elif re.fullmatch(r"\d+", str(key)) and isinstance(item, str):
            name, values = item, {int(key)}
        elif _is_label_value(item):
            name, values = str(key), {int(item)}
        elif isinstance(item, list) and item and all(_is_label_value(v) for v in item):
            name, values = str(key), {int(v) for v in item}
        else:
            raise InputError(f"label table entry {key!r}: {item!r} is neither name -> value nor value -> name", where)
        canonical = canonical_name(name)
        if canonical in result and result[canonical] != values:
            raise InputError(f"label table names {canonical!r} twice (values {sorted(result[canonical])} and "
                             f"{sorted(values)})", where)
        result[canonical] = values
        if isinstance(group, str):
            grouped.setdefault(canonical_name(group), set()).update(values)
    for group, members in groups.items():
        if not isinstance(members, list) or not all(_is_label_value(v) for v in members):
            raise InputError(f"label group {group!r}: {members!r} is not a list of label values", where)
        grouped.setdefault(canonical_name(group), set()).update(int(v) for v in members)
    for group, values in grouped.items():  # a group named like one of its labels covers them all
        result[group] = result.get(group, set()) | values
    return {name: tuple(sorted(values)) for name, values in result.items()}


def _is_label_value(item: Any) -> bool:
    return isinstance(item, int | float) and not isinstance(item, bool) and float(item).is_integer()


def label_mask(labels: np.ndarray, values: Sequence[int]) -> np.ndarray:
    """Voxels of a label map holding any of `values` (a structure of one label or a group)."""
    return np.isin(labels, np.asarray(values))


def read_label_table(case_dir: str | Path, label: str = "organs") -> dict[str, tuple[int, ...]]:
    """{canonical name: label values} of `labels/<label>.nii.gz` in a case folder.

    Looked for, in order: `labels/<label>.json`; the case's `generator_truth.json`
    ("labels" -> label); the cohort's `generator.json` ("label_legend" -> "labels/<label>.nii.gz").
    """
    case_dir = Path(case_dir)
    own = case_dir / "labels" / f"{label}.json"
    if own.is_file():
        return name_to_values_table(_read_json(own), str(own))
    truth = case_dir / "generator_truth.json"
    if truth.is_file():
        legend = (_read_json(truth).get("labels") or {}).get(label)
        if isinstance(legend, Mapping):
            return name_to_values_table(legend, str(truth))
    cohort = case_dir.parent / "generator.json"
    if cohort.is_file():
        legend = (_read_json(cohort).get("label_legend") or {}).get(f"labels/{label}.nii.gz")
        if isinstance(legend, Mapping):
            return name_to_values_table(legend, str(cohort))
    raise InputError(
        f"no label table for labels/{label}.nii.gz (looked for labels/{label}.json, generator_truth.json "
        "and ../generator.json)", case_dir,
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"not a readable JSON label table ({exc})", path) from exc
    if not isinstance(data, dict):
        raise InputError("a label table must be a JSON object", path)
    return data


# --------------------------------------------------------------------------- organ masks


def organ_masks(
    probabilities: Mapping[str, np.ndarray], threshold: float = 0.5, largest_component: bool = True
) -> dict[str, np.ndarray]:
    """One boolean mask per structure from its probability map (all on one grid).

    A voxel goes to the structure with the highest probability among those >= `threshold`
    (organs do not overlap); each structure keeps its largest connected part (the network's
    stray voxels elsewhere are not the organ).
    """
    names = list(probabilities)
    if not names:
        return {}
    stack = np.stack([np.asarray(probabilities[n], dtype=np.float32) for n in names])
    winner = np.argmax(stack, axis=0)
    above = stack.max(axis=0) >= threshold
    masks: dict[str, np.ndarray] = {}
    for index, name in enumerate(names):
        mask = above & (winner == index)
        if largest_component and mask.any():
            labels, count = ndimage.label(mask, structure=ndimage.generate_binary_structure(3, 3))
            if count > 1:
                sizes = ndimage.sum_labels(mask, labels, np.arange(1, count + 1))
                mask = labels == int(np.argmax(sizes)) + 1
        masks[name] = mask
    return masks


# --------------------------------------------------------------------------- the gate


@dataclass(frozen=True)
class GateSettings:
    """What the gate needs (declared in a bundle's "anatomy_gate"; these are the defaults)."""

    required: tuple[str, ...] = ("cervix", "uterus")
    min_ml: float = 5.0
    near_mm: float = 10.0

    @classmethod
    def from_manifest(cls, spec: Mapping[str, Any] | None) -> GateSettings:
        spec = spec or {}
        return cls(
            required=tuple(canonical_name(n) for n in spec.get("required", cls.required)),
            min_ml=float(spec.get("min_ml", cls.min_ml)),
            near_mm=float(spec.get("near_mm", cls.near_mm)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"required": list(self.required), "min_ml": self.min_ml, "near_mm": self.near_mm}


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
            found_ml[name] = round(float(organs[name].sum()) * voxel_ml, 3)
    anatomy_ml = float(anatomy.sum()) * voxel_ml
    report: dict[str, Any] = {
        "applied": True,
        "settings": settings.to_dict(),
        "anatomy_ml": round(anatomy_ml, 3),
        "anatomy_found_ml": found_ml,
    }
    if anatomy_ml < settings.min_ml:
        report.update(
            anatomy_found=False,
            status=NO_ANATOMY_STATUS,
            message=NO_ANATOMY_MESSAGE,
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
