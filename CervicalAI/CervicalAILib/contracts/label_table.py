"""Label tables: which values of a label map hold which structure, read BY NAME.

A label map's values are read from its label table (the generator's `labels/organs.json`, or its
legend in `generator_truth.json` / `generator.json`; an nnU-Net data set's or model's
`dataset.json`), and structure names are compared after `canonical_name` (lower case, "_" for
separators, a few spellings folded: "tumour" -> "tumor", "uterine_body" -> "uterus"). Here, not in
segmentation, because export and training read organ labels too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from CervicalAILib.core.errors import InputError
from CervicalAILib.core.json_input import read_json

TUMOR = "tumor"

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
    data = read_json(path, "label table")
    if not isinstance(data, dict):
        raise InputError("a label table must be a JSON object", path)
    return data
