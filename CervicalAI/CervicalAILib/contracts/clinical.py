"""Clinical fields: names, units, allowed values, and the one parser of their values.

The same definitions serve `clinical.json` for `cervicalai predict`, the clinical form of the
Predict module (FIELDS: what a reader enters), the cohort tables (column names are the lower-case
snake_case of cohort.csv; COHORT_FIELDS: what only cohorts carry) and a risk model's clinical terms.
Both entry points parse a value the same way (`parse_value`):

- `validate_clinical(values)`: a reader's values (clinical.json, the Predict form, the web form);
- `term_value(term, value)`: one value as a risk bundle's DLRC term uses it (scoring, cohort scoring).

Not given: None, NaN, blank text and the table markers "na", "n/a", "nan", "none". Yes/no: true/false,
yes/no, 1/0, positive/negative (any case), JSON booleans. A number is never a JSON boolean. A choice
matches its canonical spelling in any case. A bad value gets one line naming the field, the value
and the rule; nothing is imputed silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

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
    description: str = ""


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

# Columns only cohorts carry (the generator's / paper 004's), which a site's model may also use as terms.
COHORT_FIELDS: dict[str, Field] = {
    f.name: f
    for f in (
        Field("c_lnm", "bool", "c_LNM", description="clinically suspected lymph-node metastasis: largest pelvic "
              "node short axis >= 10 mm on MRI"),
        Field("sra", "bool", "SRA"),
        Field("parity", "number", "Parity", "births", 0, 30),
        Field("menopause", "bool", "Menopause"),
        Field("age_at_menopause", "number", "Age at menopause", "years", 20, 80),
        Field("family_history", "bool", "Family history"),
    )
}
ALL_FIELDS: dict[str, Field] = {**COHORT_FIELDS, **FIELDS}

MISSING_TEXT = frozenset({"", "na", "n/a", "nan", "none"})
_YES = frozenset({"yes", "true", "1", "positive"})
_NO = frozenset({"no", "false", "0", "negative"})
YES_NO_RULE = "must be yes/no (true/false, 1/0)"


def is_missing(value: Any) -> bool:
    """Whether a value means "not given": None, NaN, blank text or a table's missing marker."""
    if value is None:
        return True
    if isinstance(value, (float, np.floating)) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in MISSING_TEXT


def yes_no(value: Any) -> bool:
    """True/False from a yes/no value; ValueError (the rule) for anything else. Not for missing values."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _YES or text in _NO:
            return text in _YES
    raise ValueError(YES_NO_RULE)


def _range_text(minimum: float, maximum: float, unit: str) -> str:
    return f"[{minimum:g}, {maximum:g}] {unit}".rstrip()


def as_number(name: str, value: Any, unit: str = "", valid_range: tuple[float, float] | None = None) -> float:
    """A finite number inside `valid_range`; InputError naming the field and the value otherwise."""
    if isinstance(value, (bool, np.bool_)):
        # JSON true/false is not a measurement (float(True) would be 1 mm)
        raise InputError(f"clinical value {name}={str(bool(value)).lower()} is a yes/no value, not a number "
                         f"({unit or 'a number'})")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"clinical value {name}={value!r} is not a number ({unit or 'a number'})") from None
    if not math.isfinite(number):
        raise InputError(f"clinical value {name}={value!r} is not a finite number")
    if valid_range is not None and not (valid_range[0] <= number <= valid_range[1]):
        raise InputError(f"clinical value {name}={number:g} {unit} is out of range "
                         f"{_range_text(valid_range[0], valid_range[1], unit)}".replace("  ", " "))
    return number


def as_bool(name: str, value: Any) -> bool:
    try:
        return yes_no(value)
    except ValueError:
        raise InputError(f"clinical value {name}={value!r} {YES_NO_RULE}") from None


def as_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """The canonical spelling of a choice, matched in any case."""
    if not isinstance(value, str):
        raise InputError(f"clinical value {name}={value!r} must be one of {', '.join(choices)} (as text)")
    match = {choice.lower(): choice for choice in choices}.get(value.strip().lower())
    if match is None:
        raise InputError(f"clinical value {name}={value!r} is not one of {', '.join(choices)}")
    return match


def as_text(name: str, value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        raise InputError(f"clinical value {name}={str(bool(value)).lower()} is not a name")
    text = str(value).strip()
    if len(text) > 200 or any(ord(c) < 32 for c in text):
        raise InputError(f"clinical value {name}={value!r} is not a plausible name (control characters or "
                         "more than 200 characters)")
    return text


def parse_value(field: Field, value: Any) -> Any:
    """One value of a known field, normalised (float, bool, canonical choice, text); None when not given."""
    if is_missing(value):
        return None
    name = field.name
    if isinstance(value, (dict, list, tuple, set)):
        raise InputError(f"clinical value {name}={value!r} must be a single value, not a JSON "
                         f"{'object' if isinstance(value, dict) else 'list'}")
    if field.kind == "number":
        return as_number(name, value, field.unit, (field.minimum, field.maximum))
    if field.kind == "bool":
        return as_bool(name, value)
    if field.kind == "text":
        return as_text(name, value)
    return as_choice(name, value, field.choices)


def term_value(term: dict[str, Any], value: Any) -> tuple[float | str | None, str | None]:
    """One patient value as a risk bundle's DLRC term uses it: (value, None), or (None, why it is missing or
    unusable: missing, or a level the model was not trained with). InputError for an invalid value (not
    yes/no, not a number, outside the term's valid range).

    The parsing is `parse_value`'s; the range is the bundle's own `valid_range` (fit copies it from this
    table, but the bundle is what the model was fitted with)."""
    name = term["name"]
    if is_missing(value):
        return None, f"clinical value {name!r} is missing"
    kind = term["type"]
    if kind == "binary":
        return float(as_bool(name, value)), None
    if kind == "continuous":
        valid = term.get("valid_range")
        return as_number(name, value, term.get("unit") or "", tuple(valid) if valid is not None else None), None
    # the table's spelling when the value is one of its choices (as the reader's values are); else the text as
    # it is: a site's cohort may hold levels the table does not know, and the model's levels decide
    field = ALL_FIELDS.get(name)
    level = str(value).strip()
    if field is not None and field.kind == "choice":
        level = {choice.lower(): choice for choice in field.choices}.get(level.lower(), level)
    if level not in term.get("levels", []):
        return None, (f"clinical value {name!r} = {value!r} was not seen in training "
                      f"(levels: {', '.join(term.get('levels', []))})")
    return level, None


def bundle_entry(name: str) -> dict[str, Any]:
    """What a risk bundle records about a known clinical field: label, unit, valid range or choices."""
    field = ALL_FIELDS[name]
    entry: dict[str, Any] = {"label": field.label, "unit": field.unit or None}
    if field.kind == "number":
        entry["valid_range"] = [float(field.minimum), float(field.maximum)]
    elif field.kind == "bool":
        entry["valid_range"] = [0, 1]
    else:
        entry["description"] = " / ".join(field.choices)
    if field.description:
        entry["description"] = field.description
    return entry


KNOWN_CLINICAL: dict[str, dict[str, Any]] = {name: bundle_entry(name) for name in ALL_FIELDS}


def validate_clinical(values: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Check and normalise clinical values; InputError names the field, the value and the rule.

    Unknown keys are kept as they are (a site may add variables its own model uses); known keys
    (reader and cohort fields) are parsed by `parse_value`; `required` keys must be present and given.
    """
    clean: dict[str, Any] = {}
    for name, value in values.items():
        field = ALL_FIELDS.get(name)
        if field is None:
            clean[name] = None if value == "" else value
            continue
        clean[name] = parse_value(field, value)


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
