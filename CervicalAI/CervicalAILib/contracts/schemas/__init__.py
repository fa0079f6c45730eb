"""JSON Schemas of the engine's on-disk documents, and the small validator that applies them.

    problems = validate(document, "readout")          # [] when valid
    require_valid(document, "readout", path)          # InputError naming the first problems

The schema files (`<name>.schema.json` beside this module; copies for readers in docs/schemas/)
follow JSON Schema 2020-12. The validator implements the part of it these schemas use: type
(a JSON boolean is never a number), enum, const, minimum/maximum (and exclusive), minLength,
maxLength, pattern, properties, required, additionalProperties, patternProperties, items,
minItems, maxItems, anyOf, oneOf, allOf, not, and local $ref (#/$defs/...). No dependency: the
engine runs inside 3D Slicer, which does not ship the jsonschema package.
"""

from __future__ import annotations

import json
import math
import re
from functools import cache
from pathlib import Path
from typing import Any

from CervicalAILib.core.errors import InputError

SCHEMA_DIR = Path(__file__).parent
MAX_REPORTED = 5

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool))
    or (isinstance(v, float) and math.isfinite(v) and v.is_integer()),
}


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The schema `<name>.schema.json` shipped with the engine."""
    return json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))


def _where(path: str) -> str:
    return path or "the document"


def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    if not ref.startswith("#/"):
        raise ValueError(f"only local $ref is supported, got {ref!r}")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _check(value: Any, schema: Any, root: dict[str, Any], path: str, problems: list[str]) -> None:
    if schema is True or schema == {}:
        return
    if schema is False:
        problems.append(f"{_where(path)}: not allowed here")
        return
    if "$ref" in schema:
        _check(value, _resolve(schema["$ref"], root), root, path, problems)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPES[t](value) for t in types):
            problems.append(f"{_where(path)}: {json.dumps(value)[:60]} is not {' or '.join(types)}")
            return
    if isinstance(value, float) and not math.isfinite(value):
        problems.append(f"{_where(path)}: {value} is not a finite number")
        return
    if "const" in schema and value != schema["const"]:
        problems.append(f"{_where(path)}: {json.dumps(value)[:60]} must be {json.dumps(schema['const'])}")
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{_where(path)}: {json.dumps(value)[:60]} is not one of "
                        f"{', '.join(json.dumps(v) for v in schema['enum'])}")
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{_where(path)}: {value:g} is below the minimum {schema['minimum']:g}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{_where(path)}: {value:g} is above the maximum {schema['maximum']:g}")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            problems.append(f"{_where(path)}: {value:g} must be above {schema['exclusiveMinimum']:g}")
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            problems.append(f"{_where(path)}: {value:g} must be below {schema['exclusiveMaximum']:g}")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            problems.append(f"{_where(path)}: text shorter than {schema['minLength']} character(s)")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append(f"{_where(path)}: text longer than {schema['maxLength']} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            problems.append(f"{_where(path)}: {value[:60]!r} does not match {schema['pattern']}")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            problems.append(f"{_where(path)}: fewer than {schema['minItems']} item(s)")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            problems.append(f"{_where(path)}: more than {schema['maxItems']} items")
        if "items" in schema:
            for index, item in enumerate(value):
                _check(item, schema["items"], root, f"{path}[{index}]", problems)
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                problems.append(f"{_where(path)}: required key '{key}' is missing")
        properties = schema.get("properties", {})
        patterns = schema.get("patternProperties", {})
        for key, item in value.items():
            child = f"{path}.{key}" if path else key
            matched = False
            if key in properties:
                matched = True
                _check(item, properties[key], root, child, problems)
            for pattern, sub in patterns.items():
                if re.search(pattern, key):
                    matched = True
                    _check(item, sub, root, child, problems)
            if not matched and "additionalProperties" in schema:
                extra = schema["additionalProperties"]
                if extra is False:
                    problems.append(f"{_where(path)}: unknown key '{key}'")
                else:
                    _check(item, extra, root, child, problems)
    for keyword in ("allOf", "anyOf", "oneOf"):
        if keyword in schema:
            results = []
            for sub in schema[keyword]:
                found: list[str] = []
                _check(value, sub, root, path, found)
                results.append(found)
            passed = sum(1 for found in results if not found)
            if keyword == "allOf":
                for found in results:
                    problems.extend(found)
            elif keyword == "anyOf" and passed == 0 or keyword == "oneOf" and passed != 1:
                # report the alternative of the value's own type (its real problem), else the shortest
                ranked = [(_other_type(sub, value), len(found), found) for sub, found in zip(schema[keyword], results)]
                best = min(ranked, key=lambda item: item[:2])[2] if ranked else []
                problems.extend(best or [f"{_where(path)}: matches {passed} of the alternatives, {keyword} needs "
                                         f"{'one' if keyword == 'oneOf' else 'at least one'}"])
    if "not" in schema:
        found = []
        _check(value, schema["not"], root, path, found)
        if not found:
            problems.append(f"{_where(path)}: must not match {json.dumps(schema['not'])[:60]}")


def _other_type(schema: Any, value: Any) -> bool:
    """True when `schema` declares types and `value` has none of them."""
    declared = schema.get("type") if isinstance(schema, dict) else None
    types = declared if isinstance(declared, list) else [declared] if declared else []
    return bool(types) and not any(_TYPES[t](value) for t in types)


def validate(document: Any, schema: str | dict[str, Any]) -> list[str]:
    """Problems of `document` against a schema (its name, or the schema itself); [] when valid."""
    root = load_schema(schema) if isinstance(schema, str) else schema
    problems: list[str] = []
    _check(document, root, root, "", problems)
    return problems


def require_valid(document: Any, schema: str, path: str | Path, what: str | None = None) -> None:
    """InputError naming the file and its first problems when `document` does not follow `schema`."""
    problems = validate(document, schema)
    if problems:
        more = f" (and {len(problems) - MAX_REPORTED} more)" if len(problems) > MAX_REPORTED else ""
        raise InputError(f"{what or 'the ' + schema} does not follow its schema ({schema}.schema.json): "
                         + "; ".join(problems[:MAX_REPORTED]) + more, path)
