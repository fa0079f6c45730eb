"""Feature reproducibility between two segmentations of the same cases: ICC(3,1) and ICC(2,1).

Seed 004 keeps only features whose intraclass correlation between two readers' (or one
reader's repeated) segmentations exceeds 0.75. Here the ICC is computed for every feature at
once from the two-way ANOVA mean squares (Shrout & Fleiss 1979; McGraw & Wong 1996), with n
cases (rows) and k segmentations (raters):

    MSR = rows, MSC = raters (columns), MSE = residual mean square
    ICC(3,1) consistency, two-way mixed:      (MSR - MSE) / (MSR + (k-1) MSE)
    ICC(2,1) absolute agreement, two-way random:
                                             (MSR - MSE) / (MSR + (k-1) MSE + k (MSC - MSE) / n)

the definitions pingouin's `intraclass_corr` uses (ICC(C,1) and ICC(A,1)); the tests compare
every value with pingouin. The F test and 95% CI are pingouin's formulas too. A case with a
missing value in a feature is left out of that feature only (pingouin drops it likewise);
a feature that is constant over all cases has no ICC (NaN) and is never kept.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from CervicalAILib.core.errors import InputError
from CervicalAILib.research.tables import read_table

log = logging.getLogger(__name__)

KINDS = ("ICC3", "ICC2")
DEFAULT_THRESHOLD = 0.75
ID_COLUMN = "case_id"
FEATURE_PREFIXES = ("T2W_", "ADC_", "DWI_", "CET1_")  # the project's feature-name convention


def _normalise_kind(kind: str) -> str:
    key = str(kind).upper().replace("(", "").replace(")", "").replace(",", "").replace(" ", "")
    aliases = {"ICC3": "ICC3", "ICC31": "ICC3", "ICCC1": "ICC3", "ICC2": "ICC2", "ICC21": "ICC2", "ICCA1": "ICC2"}
    if key not in aliases:
        raise InputError(f"ICC kind must be ICC3 (consistency, ICC(3,1)) or ICC2 (absolute agreement, ICC(2,1)); "
                         f"got {kind!r}")
    return aliases[key]


def read_feature_table(path: str | Path) -> pd.DataFrame:
    """Read a feature table (CSV or parquet) and check its `case_id` column."""
    path = Path(path)
    table = read_table(path, "feature table", text_columns=(ID_COLUMN,))  # "007" stays "007", never 7
    if ID_COLUMN not in table.columns:
        raise InputError(f"feature table has no {ID_COLUMN!r} column (columns: {', '.join(map(str, table.columns[:8]))}"
                         f"{', ...' if table.shape[1] > 8 else ''})", path)
    table[ID_COLUMN] = table[ID_COLUMN].astype(str)
    return table


def _indexed(table: pd.DataFrame, label: str) -> pd.DataFrame:
    if not isinstance(table, pd.DataFrame):
        raise InputError(f"{label} must be a pandas DataFrame")
    if ID_COLUMN in table.columns:
        if table[ID_COLUMN].isna().any():
            raise InputError(f"{label}: {ID_COLUMN} has {int(table[ID_COLUMN].isna().sum())} missing value(s)")
        ids = table[ID_COLUMN].astype(str)
        table = table.drop(columns=[ID_COLUMN]).set_axis(ids.to_numpy(), axis=0)
    else:
        table = table.set_axis(table.index.astype(str), axis=0)
    duplicated = table.index[table.index.duplicated()].unique()
    if len(duplicated):
        raise InputError(f"{label}: duplicate case_id(s) {', '.join(map(str, duplicated[:5]))}")
    return table


def feature_columns(table: pd.DataFrame) -> list[str]:
    """The columns treated as features: numeric, and named {ROLE}_... when any column is.

    Feature tables from `cervicalai extract` also carry clinical and outcome columns (age,
    lnm, ...); those are not segmentation-dependent and are left out when the table uses the
    project's `{ROLE}_feature` names. A table without such names is all features.
    """
    numeric = [c for c in table.columns if c != ID_COLUMN and pd.api.types.is_numeric_dtype(table[c])
               and not pd.api.types.is_bool_dtype(table[c])]
    prefixed = [c for c in numeric if str(c).startswith(FEATURE_PREFIXES)]
    return prefixed if prefixed else numeric


def match_tables(table_a: pd.DataFrame, table_b: pd.DataFrame, features: list[str] | None = None
                 ) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Align two feature tables by case_id -> (A[n, p], B[n, p], case_ids, features).

    Cases present in only one table are left out with a warning; features default to the
    numeric feature columns present in both tables.
    """
    a = _indexed(table_a, "first feature table")
    b = _indexed(table_b, "second feature table")
    common = [c for c in a.index if c in set(b.index)]
    only_a = sorted(set(a.index) - set(b.index))
    only_b = sorted(set(b.index) - set(a.index))
    if only_a or only_b:
        log.warning("ICC: %d case(s) only in the first table (%s) and %d only in the second (%s) are left out",
                    len(only_a), ", ".join(only_a[:5]), len(only_b), ", ".join(only_b[:5]))
    if len(common) < 2:
        raise InputError(f"the two feature tables share {len(common)} case_id(s); the ICC needs at least 2")
    if features is None:
        fa = feature_columns(a.reset_index(drop=True))
        fb = set(feature_columns(b.reset_index(drop=True)))
        features = [f for f in fa if f in fb]
        dropped = sorted(map(str, set(fa) ^ fb))
        if dropped:
            log.warning("ICC: %d feature(s) present in only one table are left out (%s)", len(dropped),
                        ", ".join(map(str, dropped[:5])))
    else:
        for label, table in (("first", a), ("second", b)):
            missing = [f for f in features if f not in table.columns]
            if missing:
                raise InputError(f"{label} feature table lacks feature column(s) {', '.join(map(str, missing[:5]))}")
    if not features:
        raise InputError("the two feature tables have no numeric feature column in common")
    values = []
    for label, table in (("first", a), ("second", b)):
        block = table.loc[common, features]
        non_numeric = [f for f in features if not pd.api.types.is_numeric_dtype(block[f])]
        if non_numeric:
            raise InputError(f"{label} feature table: column(s) {', '.join(map(str, non_numeric[:5]))} are not numeric")
        values.append(block.to_numpy(dtype=float))
    return values[0], values[1], common, list(features)


def _anova_icc(ratings: np.ndarray, level: float = 0.95) -> dict[str, np.ndarray]:
    """ICC(3,1) and ICC(2,1) with F tests and CIs for ratings[n, k, p] (NaN = left out per feature).

    Everything is vectorised over the p features; a case with any NaN in a feature is dropped
    from that feature through the weight mask.
    """
    n_cases, k, _ = ratings.shape
    complete = np.isfinite(ratings).all(axis=1)  # [n, p]
    w = complete.astype(float)
    y = np.where(complete[:, None, :], ratings, 0.0)
    n = w.sum(axis=0)  # cases per feature
    with np.errstate(divide="ignore", invalid="ignore"):
        row_mean = y.mean(axis=1)  # [n, p]
        col_mean = (y * w[:, None, :]).sum(axis=0) / n  # [k, p]
        grand = (row_mean * w).sum(axis=0) / n  # [p]
        ss_rows = k * (w * (row_mean - grand) ** 2).sum(axis=0)
        ss_cols = n * ((col_mean - grand) ** 2).sum(axis=0)
        resid = y - row_mean[:, None, :] - col_mean[None, :, :] + grand
        ss_err = (w[:, None, :] * resid**2).sum(axis=(0, 1))
        df_rows = n - 1
        df_err = (n - 1) * (k - 1)
        msr = ss_rows / df_rows
        msc = ss_cols / (k - 1)
        mse = ss_err / df_err
        icc3 = (msr - mse) / (msr + (k - 1) * mse)
        icc2 = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
        f_value = msr / mse
        p_value = stats.f.sf(f_value, df_rows, df_err)
        alpha = 1.0 - level
        # ICC(3,1) interval (Shrout & Fleiss), as pingouin
        f3l = f_value / stats.f.ppf(1 - alpha / 2, df_rows, df_err)
        f3u = f_value * stats.f.ppf(1 - alpha / 2, df_err, df_rows)
        l3 = (f3l - 1) / (f3l + (k - 1))
        u3 = (f3u - 1) / (f3u + (k - 1))
        # ICC(2,1) interval (McGraw & Wong, Satterthwaite df), as pingouin
        fj = msc / mse
        vn = df_err * (k * icc2 * fj + n * (1 + (k - 1) * icc2) - k * icc2) ** 2
        vd = df_rows * k**2 * icc2**2 * fj**2 + (n * (1 + (k - 1) * icc2) - k * icc2) ** 2
        v = vn / vd
        f2u = stats.f.ppf(1 - alpha / 2, df_rows, v)
        f2l = stats.f.ppf(1 - alpha / 2, v, df_rows)
        l2 = n * (msr - f2u * mse) / (f2u * (k * msc + (k * n - k - n) * mse) + n * msr)
        u2 = n * (f2l * msr - mse) / (k * msc + (k * n - k - n) * mse + n * f2l * msr)
    undefined = (n < 2) | ~np.isfinite(icc3)
    for arr in (icc3, icc2, l3, u3, l2, u2, f_value, p_value):
        arr[undefined] = np.nan
    return {"ICC3": icc3, "ICC2": icc2, "ICC3_ci_low": l3, "ICC3_ci_high": u3, "ICC2_ci_low": l2,
            "ICC2_ci_high": u2, "F": f_value, "df1": df_rows, "df2": df_err, "p": p_value, "n": n}


def icc_table(table_a: pd.DataFrame, table_b: pd.DataFrame, kind: str = "ICC3", level: float = 0.95,
              features: list[str] | None = None) -> pd.DataFrame:
    """Per-feature ICC with its CI, F test and number of cases (index = feature name).

    Columns: icc, ci_low, ci_high, F, df1, df2, p, n_cases. Tables are matched by `case_id`
    (or by index when there is no such column).
    """
    kind = _normalise_kind(kind)
    if not 0.0 < level < 1.0:
        raise InputError(f"confidence level must be between 0 and 1, got {level!r}")
    a, b, _, names = match_tables(table_a, table_b, features)
    result = _anova_icc(np.stack([a, b], axis=1), level)
    return pd.DataFrame({
        "icc": result[kind], "ci_low": result[f"{kind}_ci_low"], "ci_high": result[f"{kind}_ci_high"],
        "F": result["F"], "df1": result["df1"], "df2": result["df2"], "p": result["p"],
        "n_cases": result["n"].astype(int)}, index=pd.Index(names, name="feature"))


def icc(table_a: pd.DataFrame, table_b: pd.DataFrame, kind: str = "ICC3") -> pd.Series:
    """ICC of every feature between two segmentations of the same cases (pandas Series by feature)."""
    return icc_table(table_a, table_b, kind)["icc"].rename(_normalise_kind(kind))


def reproducible_features(icc_values: pd.Series, threshold: float = DEFAULT_THRESHOLD) -> list[str]:
    """Features whose ICC is strictly above `threshold` (seed 004: 0.75); NaN ICCs are never kept."""
    if not -1.0 <= threshold <= 1.0:
        raise InputError(f"ICC threshold must lie in [-1, 1], got {threshold!r}")
    values = pd.Series(icc_values, dtype=float)
    return [str(f) for f in values.index[(values > threshold).to_numpy()]]
