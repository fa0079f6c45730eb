"""Reading a tabular file (CSV or parquet) with the errors every table reader gives."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from CervicalAILib.core.errors import InputError

PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".txt")


def read_table(path: str | Path, what: str = "table", text_columns: Sequence[str] = (),
               other_suffixes_as_csv: bool = False) -> Any:
    """A pandas DataFrame from a parquet or CSV file; `what` names the table in errors.

    `text_columns` are read from CSV as text, so that an ID such as "007" stays "007". Other file
    suffixes are refused unless `other_suffixes_as_csv`.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} not found", path)
    suffix = path.suffix.lower()
    if suffix not in PARQUET_SUFFIXES + CSV_SUFFIXES and not other_suffixes_as_csv:
        raise InputError(f"{what} must be .csv or .parquet", path)
    try:
        if suffix in PARQUET_SUFFIXES:
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype={column: str for column in text_columns} or None)
    except Exception as exc:  # noqa: BLE001 - pandas/pyarrow raise many types for a broken file
        raise InputError(f"cannot read the {what} ({exc})", path) from exc
