"""DICOM header values: text, numbers and integers of a data set's tags, b-values from the standard and
vendor tags, from descriptions and sequence names, and contrast-agent evidence."""


from __future__ import annotations

import re
import struct
from typing import Any

import numpy as np


def tag_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("latin-1", errors="replace")
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(tag_text(v) for v in value)
    return str(value).strip().strip("\x00").strip()


def tag_number(value: Any) -> float | None:
    """A finite float from a DS/IS/FD value (first of several), or None."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        if len(value) == 0:
            return None
        value = value[0]
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def tag_numbers(value: Any, count: int) -> tuple[float, ...] | None:
    """Exactly `count` finite floats from a multi-valued element, or None."""
    if value is None:
        return None
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    if len(numbers) != count or not all(np.isfinite(numbers)):
        return None
    return numbers


def tag_integer(value: Any) -> int | None:
    number = tag_number(value)
    return int(round(number)) if number is not None else None


def _private_number(element: Any, binary_float: bool = False) -> float | None:
    """Number from a private element that may arrive as text (IS/DS), a float (FL/FD) or raw bytes.

    Anonymisers and explicit-VR writers often turn private tags into OB/UN, so the same tag can
    come as b'800 ' (Siemens, text) or 4 bytes of a little-endian float (Philips FL).
    """
    value = element.value
    if isinstance(value, bytes):
        if binary_float and len(value) in (4, 8):
            return struct.unpack("<f" if len(value) == 4 else "<d", value)[0]
        text = value.decode("latin-1", errors="replace").strip("\x00 ").split("\\")[0].strip()
        try:
            return float(text)
        except ValueError:
            if len(value) in (4, 8):
                return struct.unpack("<f" if len(value) == 4 else "<d", value)[0]
            return None
    return tag_number(value)


def _private_element(ds: Any, group: int, offset: int, creator: str, fallback_tag: int) -> Any | None:
    """A private element found through its creator block, else at the conventional tag."""
    try:
        return ds.private_block(group, creator)[offset]
    except (KeyError, ValueError):
        pass
    return ds[fallback_tag] if fallback_tag in ds else None


_SEQUENCE_NAME_B = re.compile(r"b(\d{1,5})(?:t|#|$|[^\d_])")
_SEQUENCE_NAME_B_RANGE = re.compile(r"b(\d{1,5})_(\d{1,5})")
_TEXT_B = re.compile(r"(?<![a-z])b[\s_-]*(?:value)?[\s_:=-]*(\d{1,5})(?![\d.])")


def plausible_b_value(value: float | None) -> float | None:
    if value is None or not np.isfinite(value) or value < 0 or value > 100000:
        return None
    return float(value)


def read_b_value(ds: Any) -> float | None:
    """The diffusion b-value (s/mm^2) of a single-frame image, or None.

    Sources in order: DiffusionBValue (0018,9087); Siemens B_value (0019,100C); GE
    slop_int_6 (0043,1039), first value, with GE's 10^9 offset removed; Philips (2001,1003);
    a single b-value in SequenceName ("*ep_b800t"); ImageComments ("b=800").
    """
    if "DiffusionBValue" in ds:
        b = plausible_b_value(tag_number(ds.DiffusionBValue))
        if b is not None:
            return b
    element = _private_element(ds, 0x0019, 0x0C, "SIEMENS MR HEADER", 0x0019100C)
    if element is not None:
        b = plausible_b_value(_private_number(element))
        if b is not None:
            return b
    element = _private_element(ds, 0x0043, 0x39, "GEMS_PARM_01", 0x00431039)
    if element is not None:
        raw = _private_number(element)
        if raw is not None:
            while raw >= 1e9:  # some GE software versions add 1,000,000,000
                raw -= 1e9
            b = plausible_b_value(raw)
            if b is not None:
                return b
    element = _private_element(ds, 0x2001, 0x03, "Philips Imaging DD 001", 0x20011003)
    if element is not None:
        b = plausible_b_value(_private_number(element, binary_float=True))
        if b is not None:
            return b
    sequence_name = tag_text(ds.get("SequenceName")).lower()
    if sequence_name and not _SEQUENCE_NAME_B_RANGE.search(sequence_name):
        match = _SEQUENCE_NAME_B.search(sequence_name)
        if match:
            return float(match.group(1))
    comments = tag_text(ds.get("ImageComments")).lower()
    found = {float(m) for m in _TEXT_B.findall(comments)}
    if len(found) == 1:
        return found.pop()
    return None


def description_b_value(description: str) -> float | None:
    """A single b-value named in a series description ("DWI_b1000", "diff b=800"), else None.

    Used only for series already recognised as diffusion with no b-value in any tag: a
    description names the series, not each image, and several b-values in it are ambiguous.
    """
    found = {float(m) for m in _TEXT_B.findall(description.lower())}
    return found.pop() if len(found) == 1 else None


def sequence_name_b_range(sequence_name: str) -> tuple[float, float] | None:
    """The b-value range a derived Siemens image was computed from ("*ep_b50_800" -> (50, 800))."""
    match = _SEQUENCE_NAME_B_RANGE.search(sequence_name.lower())
    return (float(match.group(1)), float(match.group(2))) if match else None


def read_contrast_agent(ds: Any) -> str:
    agent = tag_text(ds.get("ContrastBolusAgent"))
    if not agent and "ContrastBolusAgentSequence" in ds:
        for item in ds.ContrastBolusAgentSequence:
            agent = tag_text(item.get("CodeMeaning")) or tag_text(item.get("CodeValue"))
            if agent:
                break
    if agent.lower() in {"", "none", "no", "n", "0", "-", "nil", "na", "n/a", "no contrast", "without"}:
        return ""
    return agent
