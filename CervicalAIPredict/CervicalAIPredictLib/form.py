"""The clinical form: built from the engine's field definitions, read back as validated values.

The fields, labels, units, ranges and choices come from `CervicalAILib.contracts.clinical.FIELDS`, so the
form, `clinical.json` and the cohort tables always agree. An empty field is "not given" (None),
never a default value: a missing lymph-node measurement must not read as a normal node. Yes/no
fields therefore have three states (not given, yes, no).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from CervicalAILib.contracts.clinical import FIELDS, validate_clinical
from CervicalAILib.core import atomic
from CervicalAILib.core.errors import InputError

NOT_GIVEN = ""
YES, NO = "yes", "no"
# Fields whose value a markups line measured on the images can fill (mm).
MEASURABLE = ("ln_short_axis_mm", "ln_long_axis_mm")


@dataclass(frozen=True)
class FormRow:
    """One row of the form: what the widget shows and accepts."""

    name: str
    kind: str  # "number", "choice", "bool" or "text"
    label: str  # with the unit, e.g. "SCC-Ag (ng/mL)"
    choices: tuple[str, ...] = ()  # for choice and bool rows, the first one is NOT_GIVEN
    placeholder: str = ""  # for number rows: the allowed range
    tooltip: str = ""
    measurable: bool = False


def form_rows() -> list[FormRow]:
    """The rows of the clinical form, in the engine's field order."""
    rows = []
    for field in FIELDS.values():
        label = f"{field.label} ({field.unit})" if field.unit else field.label
        if field.kind == "number":
            placeholder = f"{field.minimum:g}-{field.maximum:g} {field.unit}".strip()
            tooltip = f"{field.label}: a number from {field.minimum:g} to {field.maximum:g} {field.unit}; empty = not given"
            rows.append(FormRow(field.name, "number", label, (), placeholder, tooltip.strip(), field.name in MEASURABLE))
        elif field.kind == "bool":
            rows.append(FormRow(field.name, "bool", label, (NOT_GIVEN, YES, NO), "", f"{field.label}: yes, no, or not given"))
        elif field.kind == "text":
            rows.append(FormRow(field.name, "text", label, (), "", f"{field.label}; empty = not given"))
        else:
            rows.append(FormRow(field.name, "choice", label, (NOT_GIVEN, *field.choices), "", f"{field.label}: one of {', '.join(field.choices)}"))
    return rows


def values_from_form(texts: dict[str, str], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Validated clinical values from the form's texts (name -> text); "" means not given.

    Raises InputError naming the field, the value and the rule (range, choices, short axis
    longer than long axis, missing required field).
    """
    unknown = sorted(set(texts) - set(FIELDS))
    if unknown:
        raise InputError(f"unknown clinical field(s): {', '.join(unknown)} (fields: {', '.join(FIELDS)})")
    raw: dict[str, Any] = {}
    for name, text in texts.items():
        text = "" if text is None else str(text).strip()
        if FIELDS[name].kind == "number":
            text = text.replace(",", ".") if text.count(",") == 1 and "." not in text else text  # 12,5 -> 12.5
        raw[name] = text if text != NOT_GIVEN else None
    clean = validate_clinical(raw, required)
    return {name: clean.get(name) for name in FIELDS if name in texts}


def texts_from_values(values: dict[str, Any] | None) -> dict[str, str]:
    """The form's texts for saved values (e.g. a case's clinical.json); unknown keys are ignored."""
    texts = {name: NOT_GIVEN for name in FIELDS}
    if not values:
        return texts
    clean = validate_clinical({name: values[name] for name in FIELDS if name in values})
    for name, value in clean.items():
        if value is None:
            continue
        kind = FIELDS[name].kind
        if kind == "bool":
            texts[name] = YES if value else NO
        elif kind == "number":
            texts[name] = f"{value:g}"
        else:
            texts[name] = str(value)
    return texts


def write_clinical_json(path: str | Path, values: dict[str, Any]) -> Path:
    """clinical.json for `cervicalai predict` (only the fields that were given)."""
    given = {name: value for name, value in values.items() if value is not None}
    return atomic.write_json(path, given)


def values_json(values: dict[str, Any]) -> str:
    """Values as compact JSON (stored in the parameter node with the scene; read back with
    CervicalAIHubLib.scene.clinical_values_from_json)."""
    return json.dumps({name: value for name, value in values.items()}, sort_keys=True)


# --- measurements on the images ------------------------------------------------------------------

def line_length_mm(line_node) -> float:
    """Length (mm, world coordinates: parent transforms applied) of a markups line, to 0.1 mm."""
    if line_node is None or not line_node.IsA("vtkMRMLMarkupsLineNode"):
        raise InputError(f"expected a markups line, got {line_node.GetClassName() if line_node is not None else None}")
    defined = sum(1 for i in range(line_node.GetNumberOfControlPoints()) if line_node.GetNthControlPointPositionStatus(i) == line_node.PositionDefined)
    if defined < 2:
        raise InputError(f"line {line_node.GetName()!r} needs both end points placed (has {defined})")
    return round(float(line_node.GetLineLengthWorld()), 1)


def measured_text(name: str, line_node) -> str:
    """The form text for a measurable field from a line, checked against the field's range."""
    if name not in MEASURABLE:
        raise InputError(f"field {name!r} is not measured with a line (measurable: {', '.join(MEASURABLE)})")
    length = line_length_mm(line_node)
    validate_clinical({name: length})  # out-of-range lengths are refused with the range in the message
    return f"{length:g}"
