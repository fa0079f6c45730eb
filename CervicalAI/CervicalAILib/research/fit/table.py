"""Cohort feature tables: reading, column families, endpoints, cleaning and the train/validation split.

A feature table has one row per case: `case_id`, `center`, outcome columns (`lnm` 0/1,
`stage_group` "surgery"/"chemoradiotherapy" and/or `stage_group_crt` 0/1), clinical columns
(lower-case snake_case as in the generator's cohort.csv) and feature columns:

    radiomics   {ROLE}_{pyradiomics name}          e.g. CET1_wavelet-HLH_gldm_SmallDependenceEmphasis
    deep        {ROLE}_dl-{encoder}_F{index:04d}   e.g. CET1_dl-resnet2d_F0123 (family "dl-resnet2d")

An optional `extraction_error` column marks cases whose extraction failed (non-empty = failed).

Sidecar (optional, written by the cohort extraction beside the table as `<table>.json`, e.g.
`features.json` or `features.parquet.json`): provenance of the features, carried into the bundle.
Keys read here (others are kept verbatim under provenance.extraction):

    "radiomics_settings": {"T2W": "<pyradiomics YAML text>" or {...settings dict...}, ...}
    "encoders": [{"family": "dl-resnet2d", "name": "...", "version": "...", "sha256": "<bundle.json sha256>"}, ...]
                (or a dict family -> {...})
    "synthetic": true/false   (the cases are synthetic)
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from CervicalAILib.contracts.feature_names import RADIOMICS_FAMILY, family_of, is_feature_name
from CervicalAILib.core.errors import InputError
from CervicalAILib.core.hashing import sha256_file
from CervicalAILib.research.tables import read_table

CASE_ID = "case_id"
CENTER = "center"
EXTRACTION_ERROR = "extraction_error"

# Endpoints: column(s) holding them, what 1 means, and how string labels map to 0/1.
ENDPOINTS: dict[str, dict[str, Any]] = {
    "lnm": {
        "columns": ["lnm"],
        "positive": "pathological pelvic lymph-node metastasis",
        "negative": "no lymph-node metastasis",
        "outcome_label": "LNM risk",
        "labels": {"yes": 1, "no": 0, "positive": 1, "negative": 0, "true": 1, "false": 0},
    },
    "stage_group": {
        "columns": ["stage_group_crt", "stage_group"],
        "positive": "chemoradiotherapy group (FIGO 2018 IB3, IIA2-IVB)",
        "negative": "surgery group (FIGO 2018 IA-IB2, IIA1)",
        "outcome_label": "Chemoradiotherapy-group probability",
        "labels": {"chemoradiotherapy": 1, "surgery": 0, "crt": 1},
    },
}


@dataclass
class FeatureTable:
    """A loaded feature table, sorted by case_id (so results never depend on row order)."""

    path: Path | None
    frame: Any  # pandas.DataFrame, index = case_id
    families: dict[str, list[str]]
    sidecar: dict[str, Any] = field(default_factory=dict)
    sha256: str | None = None

    @property
    def feature_columns(self) -> list[str]:
        return [c for cols in self.families.values() for c in cols]

    def other_columns(self) -> list[str]:
        features = set(self.feature_columns)
        return [c for c in self.frame.columns if c not in features]


def _find_sidecar(path: Path) -> Path | None:
    for candidate in (path.with_suffix(".json"), path.with_name(path.name + ".json")):
        if candidate != path and candidate.is_file():
            return candidate
    return None


def read_feature_table(path: str | Path, sidecar: str | Path | None = None) -> FeatureTable:
    """Read a CSV or parquet feature table (and its sidecar) with the checks every fit needs."""
    path = Path(path)
    frame = read_table(path, "feature table", text_columns=(CASE_ID, CENTER))
    side: dict[str, Any] = {}
    side_path = Path(sidecar) if sidecar is not None else _find_sidecar(path)
    if side_path is not None:
        try:
            side = json.loads(side_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"cannot read the feature sidecar ({exc})", side_path) from exc
        if not isinstance(side, dict):
            raise InputError("feature sidecar must hold a JSON object", side_path)
    table = feature_table_from_frame(frame, path=path, sidecar=side)
    table.sha256 = sha256_file(path)
    return table


def feature_table_from_frame(frame, path: str | Path | None = None, sidecar: dict | None = None) -> FeatureTable:
    """Validate a DataFrame as a feature table: case ids, duplicates, numeric features.

    `path` is where the frame came from (for messages and provenance), None when built in memory.
    """
    import pandas as pd

    where = Path(path) if path is not None else "feature table"

    if CASE_ID not in frame.columns:
        raise InputError(f"no {CASE_ID!r} column (columns start: {', '.join(map(str, frame.columns[:8]))})", where)
    frame = frame.copy()
    ids = frame[CASE_ID]
    if ids.isna().any():
        raise InputError(f"{int(ids.isna().sum())} row(s) have no {CASE_ID}", where)
    frame[CASE_ID] = ids.astype(str)
    duplicated = sorted(set(frame.loc[frame[CASE_ID].duplicated(), CASE_ID]))
    if duplicated:
        shown = ", ".join(duplicated[:10]) + (" ..." if len(duplicated) > 10 else "")
        raise InputError(f"duplicate case IDs ({len(duplicated)}): {shown}; each case must appear once", where)
    if CENTER in frame.columns:
        frame[CENTER] = frame[CENTER].map(lambda v: None if pd.isna(v) else str(v))
    frame = frame.sort_values(CASE_ID, kind="mergesort").set_index(CASE_ID, drop=False)
    frame.index.name = None

    families: dict[str, list[str]] = {}
    for column in frame.columns:
        try:
            if not is_feature_name(str(column)):
                continue
        except InputError as exc:
            raise InputError(f"column {exc.message}", where) from None
        if not pd.api.types.is_numeric_dtype(frame[column]):
            converted = pd.to_numeric(frame[column], errors="coerce")
            bad = frame[column][converted.isna() & frame[column].notna()]
            if len(bad):
                raise InputError(
                    f"feature column {column!r} is not numeric (e.g. {bad.index[0]}: {bad.iloc[0]!r})", where
                )
            frame[column] = converted
        families.setdefault(family_of(str(column)), []).append(str(column))
    if not families:
        raise InputError(
            "no feature columns found (expected names like T2W_original_firstorder_Mean or CET1_dl-resnet2d_F0001)",
            where,
        )
    # inf is a failed value, never a measurement
    feature_cols = [c for cols in families.values() for c in cols]
    values = frame[feature_cols].to_numpy(dtype=float)
    if np.isinf(values).any():
        frame[feature_cols] = np.where(np.isinf(values), np.nan, values)
    ordered = {RADIOMICS_FAMILY: families.pop(RADIOMICS_FAMILY)} if RADIOMICS_FAMILY in families else {}
    ordered.update({k: families[k] for k in sorted(families)})
    return FeatureTable(path=Path(path) if path is not None else None, frame=frame, families=ordered,
                        sidecar=dict(sidecar or {}))


def endpoint_spec(endpoint: str) -> dict[str, Any]:
    """The named endpoints (lnm, stage_group) with their wording, or any other 0/1 column of the
    table by its name (a site's own endpoint, e.g. recurrence), described as `<name> = 1`."""
    if endpoint in ENDPOINTS:
        return ENDPOINTS[endpoint]
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", endpoint):
        raise InputError(f"endpoint {endpoint!r}: use lnm, stage_group or the name of a 0/1 column "
                         "(letters, digits, underscores)")
    return {"columns": [endpoint], "positive": f"{endpoint} = 1", "negative": f"{endpoint} = 0",
            "outcome_label": f"{endpoint} probability",
            "labels": {"yes": 1, "no": 0, "positive": 1, "negative": 0, "true": 1, "false": 0}}


def endpoint_values(table: FeatureTable, endpoint: str) -> tuple[Any, str]:
    """The endpoint as a float Series (1, 0 or NaN when missing) and the column it came from."""
    import pandas as pd

    spec = endpoint_spec(endpoint)
    column = next((c for c in spec["columns"] if c in table.frame.columns), None)
    if column is None:
        raise InputError(
            f"the table has no column for endpoint {endpoint!r} (expected {' or '.join(spec['columns'])})", table.path
        )
    raw = table.frame[column]

    def convert(value: Any) -> float:
        if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
            return np.nan
        if isinstance(value, (bool, np.bool_)):
            return float(value)
        if isinstance(value, (int, float, np.integer, np.floating)):
            if value in (0, 1):
                return float(value)
            raise InputError(f"endpoint column {column!r} holds {value!r}; expected 0 or 1", table.path)
        text = str(value).strip().lower()
        if text in ("", "nan", "na"):
            return np.nan
        if text in ("0", "1", "0.0", "1.0"):
            return float(text)
        if text in spec["labels"]:
            return float(spec["labels"][text])
        raise InputError(
            f"endpoint column {column!r} holds {value!r}; expected 0/1 or {'/'.join(sorted(spec['labels']))}", table.path
        )

    return raw.map(convert).astype(float), column


# --------------------------------------------------------------------------- split


COHORT_TRAINING = "training"
COHORT_INTERNAL = "internal_validation"
COHORT_EXTERNAL = "external_validation"
# split-column values understood as the standard validation cohorts (others keep their own name)
COHORT_ALIASES = {"internal": COHORT_INTERNAL, "internal_validation": COHORT_INTERNAL, "internal-validation": COHORT_INTERNAL,
                  "external": COHORT_EXTERNAL, "external_validation": COHORT_EXTERNAL, "external-validation": COHORT_EXTERNAL}


@dataclass
class SplitSpec:
    """How cases are assigned to cohorts. Exactly one mode is used:

    - column mode: `column` holds the cohort of each case; rows equal to `train_value` train.
    - centre mode: cases of `train_centers` are split (stratified by the endpoint, or by the 0/1
      column `stratify_by` so that several endpoints share one split) into training
      (`train_fraction`) and internal validation with `seed`; other centres are external validation.
    - neither: every case trains.
    """

    column: str | None = None
    train_value: str = "train"
    train_centers: list[str] | None = None
    train_fraction: float = 1.0
    seed: int = 42
    stratify_by: str | None = None  # default: the endpoint

    def as_dict(self) -> dict[str, Any]:
        if self.column:
            return {"mode": "column", "column": self.column, "train_value": self.train_value}
        if self.train_centers:
            return {
                "mode": "centres",
                "train_centers": list(self.train_centers),
                "train_fraction": self.train_fraction,
                "seed": self.seed,
                "stratified_by": self.stratify_by or "endpoint",
            }
        return {"mode": "all-training"}


def assign_cohorts(frame, y, spec: SplitSpec, where: str | Path | None = None):
    """Cohort name per case (pandas Series on frame's index)."""
    import pandas as pd

    if spec.column:
        if spec.column not in frame.columns:
            raise InputError(f"split column {spec.column!r} not found in the table", where)
        values = frame[spec.column].map(lambda v: None if pd.isna(v) else str(v))
        if values.isna().any():
            raise InputError(f"split column {spec.column!r} is empty for {int(values.isna().sum())} case(s)", where)
        if not (values == str(spec.train_value)).any():
            seen = ", ".join(sorted(set(values)))
            raise InputError(f"no case has {spec.column} == {spec.train_value!r} (values: {seen})", where)
        cohorts = values.where(values != str(spec.train_value), COHORT_TRAINING)
        return cohorts.map(lambda v: COHORT_ALIASES.get(v.lower(), v) if v != COHORT_TRAINING else v)
    cohorts = pd.Series(COHORT_TRAINING, index=frame.index, dtype=object)
    if not spec.train_centers:
        return cohorts
    if CENTER not in frame.columns:
        raise InputError(f"--train-centers needs a {CENTER!r} column", where)
    if not 0.0 < spec.train_fraction <= 1.0:
        raise InputError(f"train fraction must be in (0, 1], got {spec.train_fraction}")
    centers = frame[CENTER]
    wanted = [str(c) for c in spec.train_centers]
    unknown = [c for c in wanted if not (centers == c).any()]
    if unknown:
        raise InputError(f"training centre(s) {', '.join(unknown)} not found (centres: {', '.join(sorted(set(centers.dropna())))})", where)
    in_train_centers = centers.isin(wanted)
    cohorts[~in_train_centers] = COHORT_EXTERNAL
    if spec.train_fraction < 1.0:
        from sklearn.model_selection import train_test_split

        idx = frame.index[in_train_centers]
        if spec.stratify_by:
            if spec.stratify_by not in frame.columns:
                raise InputError(f"stratification column {spec.stratify_by!r} not found in the table", where)
            strata = pd.to_numeric(frame.loc[idx, spec.stratify_by], errors="coerce")
            if strata.isna().any() or not strata.isin([0, 1]).all():
                raise InputError(f"stratification column {spec.stratify_by!r} must be 0/1 for every case of the "
                                 "training centre(s)", where)
            labels = strata.to_numpy(dtype=int)
        else:
            labels = np.asarray(y[idx], dtype=int)
        stratify = labels if min(np.bincount(labels, minlength=2)) >= 2 else None
        _, internal = train_test_split(
            np.asarray(idx), train_size=spec.train_fraction, random_state=spec.seed, stratify=stratify
        )
        cohorts[list(internal)] = COHORT_INTERNAL
    return cohorts


def cohort_order(names: Sequence[str]) -> list[str]:
    """Training, internal, external first, then any other cohort names alphabetically."""
    fixed = [COHORT_TRAINING, COHORT_INTERNAL, COHORT_EXTERNAL]
    return [c for c in fixed if c in names] + sorted(c for c in set(names) if c not in fixed)
