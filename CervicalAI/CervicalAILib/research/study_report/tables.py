"""The report's tables (CSV + Markdown): Table 1, and per model Table 2, Table 4, the oracle table, the
coefficients, per-case scores and decision curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from CervicalAILib.core import atomic
from CervicalAILib.research.fit import clinical as clin
from CervicalAILib.research.stats import table2, table2_rows, table4, table4_rows
from CervicalAILib.research.stats.tables import format_auc, format_p, write_table
from CervicalAILib.research.study_report.config import (
    COHORT_LABELS,
    ENDPOINT_TITLES,
    ENDPOINTS,
    ORACLE_COLUMNS,
)


def _table1(cohort_frame, splits) -> Any:
    """Paper 004's Table 1: clinical characteristics by LNM status per cohort, with p-values."""
    merged = cohort_frame.merge(splits, on="case_id", how="inner")
    cohorts = [c for c in ("training", "internal_validation", "external_validation") if (merged["cohort"] == c).any()]
    header = ["Clinical feature"]
    for cohort in cohorts:
        label = COHORT_LABELS[cohort]
        header += [f"{label} LNM(-)", f"{label} LNM(+)", f"{label} p"]
    rows: list[list[str]] = []
    parts = {c: merged[merged["cohort"] == c] for c in cohorts}

    def p_value(name: str, cohort: str) -> str:
        part = parts[cohort]
        values = part[name].tolist()
        variable = clin.infer_variable(name, values)
        return format_p(clin.univariate_test(variable, values, part["lnm"].to_numpy(dtype=int)).p)

    row = ["N"]
    for cohort in cohorts:
        part = parts[cohort]
        row += [str(int((part["lnm"] == 0).sum())), str(int((part["lnm"] == 1).sum())), ""]
    rows.append(row)
    for name, label in (("age", "Age (years)"), ("scc_ag", "SCC-Ag (ng/mL)"), ("ln_short_axis_mm", "Largest node short axis (mm)")):
        if name not in merged:
            continue
        row = [f"{label}, median [IQR]"]
        for cohort in cohorts:
            part = parts[cohort]
            for level in (0, 1):
                x = part.loc[part["lnm"] == level, name].astype(float)
                row.append(f"{x.median():.1f} [{x.quantile(0.25):.1f}; {x.quantile(0.75):.1f}]" if len(x) else "/")
            row.append(p_value(name, cohort))
        rows.append(row)
    for name, label in (("figo_stage", "FIGO stage"), ("c_lnm", "c_LNM"), ("histology", "Histological subtype"),
                        ("sra", "SRA positive")):
        if name not in merged:
            continue
        row = [label]
        for cohort in cohorts:
            row += ["", "", p_value(name, cohort)]
        rows.append(row)
        levels = sorted(merged[name].astype(str).unique())
        if set(levels) <= {"0", "1"}:
            levels = ["1"]
        for level in levels:
            row = [f"  {'yes' if level == '1' and len(levels) == 1 else level}"]
            for cohort in cohorts:
                part = parts[cohort]
                for outcome in (0, 1):
                    group = part[part["lnm"] == outcome]
                    count = int((group[name].astype(str) == level).sum())
                    row.append(f"{count} ({100.0 * count / max(len(group), 1):.1f}%)")
                row.append("")
            rows.append(row)
    return pd.DataFrame(rows, columns=header)


def _table2_rows(evaluation: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for cohort, metrics in evaluation["cohorts"].items():
        rows += table2_rows(COHORT_LABELS.get(cohort, cohort), metrics)
    return rows


def _table4_rows(evaluation: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for cohort, metrics in evaluation["cohorts"].items():
        rows += table4_rows(COHORT_LABELS.get(cohort, cohort), metrics)
    return rows


def _oracle_table(evaluation: dict[str, Any]):
    rows = []
    for cohort, metrics in evaluation["oracle"].items():
        dlrc, oracle = metrics["scores"]["DLRC"], metrics["scores"]["Oracle"]
        comparison = metrics["comparisons"][0]
        rows.append([COHORT_LABELS.get(cohort, cohort), str(metrics["n"]), str(metrics["n_cases"]),
                     format_auc(dlrc["auc"], dlrc["auc_ci"]), format_auc(oracle["auc"], oracle["auc_ci"]),
                     difference_text(comparison),
                     format_p(comparison["p"])])
    return pd.DataFrame(rows, columns=["Cohort", "n", "Events", "DLRC AUC (95% CI)", "Oracle AUC (95% CI)",
                                       "DLRC - oracle (95% CI)", "DeLong p"])


def difference_text(comparison: dict[str, Any]) -> str:
    """'+0.012 (-0.020 to +0.044)'; '/' for what is undefined (e.g. a CI with a handful of cases)."""
    def signed(value) -> str:
        return "/" if value is None else f"{value:+.3f}"

    ci = comparison.get("diff_ci") or [None, None]
    return f"{signed(comparison.get('diff'))} ({signed(ci[0])} to {signed(ci[1])})"


def _features_table(result):
    rows = []
    for score, family in result.model["scores"].items():
        fam = result.model["families"][family]
        label = "Rad_score" if score == "rad_score" else f"DL_score ({family})"
        rows.append([label, "(intercept)", f"{fam['intercept']:+.4f}"])
        for name, coefficient in zip(fam["features"], fam["coefficients"]):
            rows.append([label, name, f"{coefficient:+.4f}"])
    rows.append(["DLRC", "(intercept)", f"{result.dlrc.intercept_:+.4f}"])
    for column, coefficient in result.dlrc.coef_.items():
        rows.append(["DLRC", column, f"{coefficient:+.4f}"])
    return pd.DataFrame(rows, columns=["Model", "Predictor", "Coefficient"])


def write_tables(tab_dir: Path, cohort_frame, fits, evaluations) -> None:
    splits = fits["lnm"].cases[["case_id", "cohort"]]
    write_table(_table1(cohort_frame, splits), tab_dir / "table1_clinical", title="Table 1. Clinical characteristics "
                "by LNM status (p: Bao et al.'s univariate tests)", blank_repeats=())
    for endpoint in ENDPOINTS:
        write_model_tables(tab_dir, endpoint, endpoint, ENDPOINT_TITLES[endpoint], fits[endpoint], evaluations[endpoint])


def write_model_tables(tab_dir: Path, name: str, endpoint: str, title: str, fit, evaluation) -> None:
    """Table 2, Table 4, the oracle table, the coefficients, per-case scores and decision curves of one model."""
    table2(_table2_rows(evaluation), out=tab_dir / f"table2_{name}")
    rows = _table4_rows(evaluation)
    if rows:
        table4(rows, out=tab_dir / f"table4_{name}")
    write_table(_oracle_table(evaluation), tab_dir / f"oracle_{name}",
                title=f"DLRC against the generator's oracle probability ({title})")
    write_table(_features_table(fit), tab_dir / f"models_{name}", title=f"Selected features and coefficients ({title})")
    frame = evaluation["scores_frame"]
    keep = [c for c in ("case_id", "center", "cohort", endpoint, "rad_score", "dl_score", "dlrc_probability",
                        ORACLE_COLUMNS[endpoint], "sra", "c_lnm") if c in frame.columns]
    atomic.write_text(tab_dir / f"scores_{name}.csv",
                      frame[keep].to_csv(index=False, lineterminator="\n", float_format="%.10g"))
    curves = [dict(row, cohort=cohort) for cohort, rows in evaluation["decision_curves"].items() for row in rows]
    atomic.write_text(tab_dir / f"decision_curve_{name}.csv",
                      pd.DataFrame(curves, columns=["cohort", "threshold", "model", "net_benefit"])
                      .to_csv(index=False, lineterminator="\n", float_format="%.10g"))
