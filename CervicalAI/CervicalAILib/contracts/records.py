"""Typed JSON records: a frozen dataclass per JSON object, read with `from_json` and written with `to_dict`.

A record's fields are the object's keys (same names); their annotations say the JSON type:
`float` (a JSON number, never a boolean, finite), `int`, `bool`, `str`, `X | None`, `list[X]`,
`dict[str, X]`, `Any`, or another record. Reading checks each typed key and names the first bad one
(`lnm.cutoff: "high" is not a number`). A record remembers which of its keys the document had, in
their order, and keeps the keys it does not type (`json_extra`), so `to_dict()` gives back the
same JSON: a file read and written again is byte-identical, and older or newer documents lose
nothing. A record built in code (no `json_keys`) writes its typed fields in declaration order,
each one present.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from functools import cache
from typing import Any, Self

from CervicalAILib.core.errors import InputError

_BOOKKEEPING = ("json_keys", "json_extra")


@dataclass(frozen=True, kw_only=True)
class Record:
    """Base of the typed records (see the module docstring)."""

    json_keys: tuple[str, ...] | None = field(default=None, repr=False)  # the document's keys, in its order
    json_extra: dict[str, Any] = field(default_factory=dict, repr=False)  # keys this version does not type

    @classmethod
    def from_json(cls, data: Any, where: str = "") -> Self:
        """The record of a JSON object; InputError naming `where.key` and the value when one is the wrong type."""
        if not isinstance(data, dict):
            raise InputError(f"{where or 'the document'}: {_show(data)} is not an object")
        hints = _typed_fields(cls)
        for name in _required(cls):
            if name not in data:
                raise InputError(f"{where or 'the document'}: required key '{name}' is missing")
        values = {name: convert(data[name], hint, _join(where, name)) for name, hint in hints.items() if name in data}
        extra = {key: value for key, value in data.items() if key not in hints}
        return cls(**values, json_keys=tuple(data), json_extra=extra)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (plain dicts and lists), key for key as it was read."""
        typed = {name: _plain(getattr(self, name)) for name in _typed_fields(type(self))}
        if self.json_keys is None:
            return {**typed, **{k: _plain(v) for k, v in self.json_extra.items()}}
        return {key: typed[key] if key in typed else _plain(self.json_extra[key]) for key in self.json_keys}


@cache
def _typed_fields(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls) if f.name not in _BOOKKEEPING}


@cache
def _required(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


_SCALARS: dict[type, tuple[str, typing.Callable[[Any], bool]]] = {
    float: ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)),
    # as the JSON Schema's "integer": 3.0 is one (a writer's float of a whole number)
    int: ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)
          or isinstance(v, float) and math.isfinite(v) and v.is_integer()),
    bool: ("true or false", lambda v: isinstance(v, bool)),
    str: ("a text", lambda v: isinstance(v, str)),
}


def _describe(hint: Any) -> str:
    if hint in _SCALARS:
        return _SCALARS[hint][0]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _describe(a) for a in typing.get_args(hint))
    if origin is list:
        return "a list"
    return "an object"


def convert(value: Any, hint: Any, where: str) -> Any:
    """`value` as `hint` says (records built, numbers kept as they are); InputError naming `where` otherwise."""
    if hint is Any:
        return value
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is not type(None) and _fits(value, option):
                return convert(value, option, where)
        raise InputError(f"{where}: {_show(value)} is not {_describe(hint)}")
    if isinstance(hint, type) and issubclass(hint, Record):
        return hint.from_json(value, where)
    if origin is list:
        if not isinstance(value, list):
            raise InputError(f"{where}: {_show(value)} is not a list")
        (item,) = typing.get_args(hint)
        return [convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise InputError(f"{where}: {_show(value)} is not an object")
        _, item = typing.get_args(hint)
        return {k: convert(v, item, _join(where, k)) for k, v in value.items()}
    what, fits = _SCALARS[hint]
    if not fits(value):
        raise InputError(f"{where}: {_show(value)} is not {what}")
    return value


def _fits(value: Any, hint: Any) -> bool:
    """Whether `value` has the JSON type of `hint` (its inside is checked by `convert`)."""
    if hint in _SCALARS:
        return _SCALARS[hint][1](value)
    if isinstance(hint, type) and issubclass(hint, Record) or typing.get_origin(hint) is dict:
        return isinstance(value, dict)
    if typing.get_origin(hint) is list:
        return isinstance(value, list)
    return hint is Any


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
