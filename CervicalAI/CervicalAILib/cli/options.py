"""argparse value types that refuse an impossible option value at once, naming it.

`--hl-groups 0` or `--jobs -1` used to be accepted and the requested analysis silently skipped
or the run failed late; each type below makes argparse print one line naming the option and value.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path


def _number(text: str, kind: type) -> float:
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not {'a whole number' if kind is int else 'a number'}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def int_at_least(minimum: int, maximum: int | None = None):
    """A whole number >= minimum (and <= maximum)."""
    def parse(text: str) -> int:
        value = _number(text, int)
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
            raise argparse.ArgumentTypeError(f"{value} is out of range (must be {bound})")
        return value
    parse.__name__ = "whole number"
    return parse


def float_in(low: float, high: float, *, low_open: bool = False, high_open: bool = False):
    """A number in [low, high] (open ends where asked)."""
    def parse(text: str) -> float:
        value = _number(text, float)
        if value < low or value > high or (low_open and value == low) or (high_open and value == high):
            interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
            raise argparse.ArgumentTypeError(f"{value:g} is out of range (must lie in {interval})")
        return value
    parse.__name__ = "number"
    return parse


def positive_float(text: str) -> float:
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value:g} must be positive")
    return value


def output_path(text: str) -> Path:
    """An output path: refused when empty (Path("") would silently mean the current folder)."""
    if not str(text).strip():
        raise argparse.ArgumentTypeError("an empty path (give a file or folder name)")
    return Path(text)


positive_int = int_at_least(1)
probability = float_in(0.0, 1.0)
