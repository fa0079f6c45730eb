"""Clinical inputs of a readout: names, units, allowed values, and validation.

The same definitions serve `clinical.json` for `cervicalai predict`, the clinical form of the
Predict module and the cohort tables (column names are the lower-case snake_case of cohort.csv).
A value that is missing or out of range gets an error naming the field, the value and the range;
nothing is imputed silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from CervicalAILib.core.errors import InputError

FIGO_STAGES = (
    "IA1", "IA2", "IB1", "IB2", "IB3", "IIA1", "IIA2", "IIB",
    "IIIA", "IIIB", "IIIC1", "IIIC2", "IVA", "IVB",
)  # fmt: skip
HISTOLOGIES = ("SCC", "AC", "ASC", "other")


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # "number", "bool", "choice" or "text"
    label: str
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()


FIELDS: dict[str, Field] = {
    f.name: f
    for f in (
        Field("age", "number", "Age", "years", 15, 100),
        Field("figo_stage", "choice", "Clinical FIGO stage (2018)", choices=FIGO_STAGES),
        Field("histology", "choice", "Histology", choices=HISTOLOGIES),
        Field("scc_ag", "number", "SCC-Ag", "ng/mL", 0, 1000),
        Field("ln_short_axis_mm", "number", "Largest pelvic lymph node, short axis", "mm", 0, 80),
        Field("ln_long_axis_mm", "number", "Largest pelvic lymph node, long axis", "mm", 0, 120),
        Field("ln_necrosis", "bool", "Lymph-node central necrosis"),
        Field("confined_to_cervix", "bool", "Reader confirms the tumour is confined to the cervix"),
        # the scanner site: the risk models harmonise features per centre (ComBat); unknown -> pooled reference
        Field("center", "text", "Centre (site of the scanner)"),
    )
}


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("yes", "true", "1", "no", "false", "0"):
        return value.strip().lower() in ("yes", "true", "1")
    raise InputError(f"clinical value {name}={value!r} must be yes/no (true/false, 1/0)")


def validate_clinical(values: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Check and normalise clinical values; InputError names the field, the value and the rule.

    Unknown keys are kept as they are (a site may add variables its own model uses); known keys
    are type-checked and range-checked; `required` keys must be present and not empty.
    """
    clean: dict[str, Any] = {}
    for name, value in values.items():
        field = FIELDS.get(name)
        if field is None or value is None or value == "":
            clean[name] = None if value == "" else value
            continue
        if isinstance(value, (dict, list, tuple, set)):
            raise InputError(f"clinical value {name}={value!r} must be a single value, not a JSON "
                             f"{'object' if isinstance(value, dict) else 'list'}")
        if field.kind == "number":
            if isinstance(value, bool):
                # JSON true/false is not a measurement (float(True) would be 1 mm)
                raise InputError(f"clinical value {name}={str(value).lower()} is a yes/no value, not a number "
                                 f"({field.unit or 'a number'})")
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise InputError(f"clinical value {name}={value!r} is not a number ({field.unit})") from None
            if not math.isfinite(number):
                raise InputError(f"clinical value {name}={value!r} is not a finite number")
            if (field.minimum is not None and number < field.minimum) or (field.maximum is not None and number > field.maximum):
                raise InputError(
                    f"clinical value {name}={number:g} {field.unit} is out of range "
                    f"[{field.minimum:g}, {field.maximum:g}] {field.unit}".rstrip()
                )
            clean[name] = number
        elif field.kind == "bool":
            clean[name] = _as_bool(name, value)
        elif field.kind == "text":
            if isinstance(value, bool):
                raise InputError(f"clinical value {name}={str(value).lower()} is not a name")
            clean[name] = str(value).strip() or None
            if clean[name] is not None and (len(clean[name]) > 200 or any(ord(c) < 32 for c in clean[name])):
                raise InputError(f"clinical value {name}={value!r} is not a plausible name (control characters or "
                                 "more than 200 characters)")
        else:
            if not isinstance(value, str):
                raise InputError(f"clinical value {name}={value!r} must be one of {', '.join(field.choices)} (as text)")
            text = str(value).strip()
            match = {choice.lower(): choice for choice in field.choices}.get(text.lower())
            if match is None:
                raise InputError(f"clinical value {name}={value!r} is not one of {', '.join(field.choices)}")
            clean[name] = match
    short, long_ = clean.get("ln_short_axis_mm"), clean.get("ln_long_axis_mm")
    if short is not None and long_ is not None and short > long_:
        raise InputError(
            f"clinical values ln_short_axis_mm={short:g} mm and ln_long_axis_mm={long_:g} mm: "
            "the short axis cannot exceed the long axis"
        )
    missing = [name for name in required if clean.get(name) is None]
    if missing:
        labels = ", ".join(f"{name} ({FIELDS[name].label})" if name in FIELDS else name for name in missing)
        raise InputError(f"clinical value(s) missing: {labels}")
    return clean
