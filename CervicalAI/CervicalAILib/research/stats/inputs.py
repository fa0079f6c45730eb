"""Checks shared by the statistics: binary outcomes and finite numeric scores.

Every statistic in this package takes plain arrays; these helpers turn whatever the caller
passed into clean numpy arrays or raise InputError naming the value that is wrong, so a
bad column never turns into a silently wrong AUC.
"""

from __future__ import annotations

import numpy as np

from CervicalAILib.core.errors import InputError


def binary_outcome(y, name: str = "outcome", require_both: bool = True) -> np.ndarray:
    """Return `y` as a boolean array (True = case). Accepts 0/1, True/False.

    Raises InputError for other values, NaN, or (with `require_both`) a single class.
    """
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise InputError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype == bool:
        out = arr.copy()
    else:
        try:
            values = arr.astype(float)
        except (TypeError, ValueError):
            bad = next((v for v in arr if str(v) not in ("0", "1", "True", "False")), arr[0])
            raise InputError(f"{name} must be 0/1 or True/False; found value {bad!r}") from None
        if np.isnan(values).any():
            raise InputError(f"{name} has {int(np.isnan(values).sum())} missing value(s)")
        bad = values[(values != 0) & (values != 1)]
        if bad.size:
            raise InputError(f"{name} must be 0/1 or True/False; found value {bad[0]!r}")
        out = values == 1
    if require_both:
        n_pos = int(out.sum())
        if n_pos == 0 or n_pos == out.size:
            only = "cases (1)" if n_pos else "controls (0)"
            raise InputError(f"{name} has only one class: all {out.size} rows are {only}; "
                             "ROC statistics need both cases and controls")
    return out


def finite_scores(x, name: str = "score", length: int | None = None) -> np.ndarray:
    """Return `x` as a float array; refuse non-numeric, NaN or infinite values."""
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise InputError(f"score {name!r} must be one-dimensional, got shape {arr.shape}")
    try:
        values = arr.astype(float)
    except (TypeError, ValueError):
        bad = next((v for v in arr if not _is_number(v)), arr[0])
        raise InputError(f"score {name!r} is not numeric: found value {bad!r}") from None
    if length is not None and values.size != length:
        raise InputError(f"score {name!r} has {values.size} values but the outcome has {length}")
    n_nan = int(np.isnan(values).sum())
    if n_nan:
        raise InputError(f"score {name!r} has {n_nan} missing (NaN) value(s)")
    if not np.isfinite(values).all():
        raise InputError(f"score {name!r} has infinite value(s)")
    return values


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
