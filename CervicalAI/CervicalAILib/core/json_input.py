"""Reading a JSON document a user gives (clinical.json, readout.json, review records) strictly.

Python's json module accepts what JSON does not: NaN and Infinity, and a key given twice (the last
one silently wins, so `{"age": 200, "age": 50}` reads as 50). Both are refused here with one line
naming the file; a UTF-8 byte-order mark is accepted (editors on some systems write one).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from CervicalAILib.core.errors import InputError


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"the key {key!r} appears twice")
        seen[key] = value
    return seen


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads_strict(text: str) -> Any:
    """json.loads that refuses duplicate keys and NaN/Infinity (ValueError saying which)."""
    return json.loads(text, object_pairs_hook=_pairs, parse_constant=_no_constant)


def read_json(path: str | Path, what: str = "file") -> Any:
    """The JSON document in `path`; InputError naming the file when it is missing, unreadable or not strict JSON."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} not found" if not path.exists() else f"{what} is a folder, not a JSON file", path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} is not UTF-8 text ({exc.reason} at byte {exc.start})", path) from exc
    try:
        return loads_strict(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{what} is not valid JSON ({exc})", path) from exc
    except ValueError as exc:
        raise InputError(f"{what} is not valid JSON ({exc})", path) from exc
