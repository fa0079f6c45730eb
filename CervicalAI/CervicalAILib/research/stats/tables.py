"""Seed 004's result tables as CSV and Markdown.

Table 2 (performance): Cohort | Model | AUC (95% CI) | ACC | SEN | SPE | PPV | NPV, one row
per model and cohort, percentages with one decimal, AUC with three; a binary rule such as
the standardized radiological assessment (SRA) has no AUC ("/"), and a proportion with a
zero denominator (e.g. NPV when nobody is called negative) reads "0/0", as in the paper.

Table 4 (model comparison): Model comparison | p-value per cohort, DeLong p-values with
"< 0.001" below one in a thousand.

`table2_rows` / `table4_rows` turn an `evaluate_scores` result (the metrics.json structure)
for one cohort into rows, so the study report can stack cohorts:

    rows = table2_rows("Training", train_metrics) + table2_rows("External validation", ext_metrics)
    table2(rows, out=report_dir / "table2")   # writes table2.csv and table2.md
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from CervicalAILib.core.atomic import write_text
from CervicalAILib.core.errors import InputError

TABLE2_COLUMNS = ["Cohort", "Model", "AUC (95% CI)", "ACC", "SEN", "SPE", "PPV", "NPV"]
_TABLE2_METRICS = [("ACC", "accuracy"), ("SEN", "sensitivity"), ("SPE", "specificity"), ("PPV", "ppv"), ("NPV", "npv")]


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def format_percent(value) -> str:
    """0.694 -> '69.4%'; undefined (0/0) -> '0/0'."""
    return "0/0" if _missing(value) else f"{100.0 * float(value):.1f}%"


def format_auc(auc, ci=None) -> str:
    """0.807, (0.766, 0.849) -> '0.807 (0.766–0.849)'; no AUC (a binary rule) -> '/'."""
    if _missing(auc):
        return "/"
    if ci is None or any(_missing(v) for v in ci):
        return f"{float(auc):.3f}"
    return f"{float(auc):.3f} ({float(ci[0]):.3f}–{float(ci[1]):.3f})"


def format_p(p) -> str:
    """DeLong p-value as in seed 004's Table 4: '< 0.001' or three decimals."""
    if _missing(p):
        return "/"
    return "< 0.001" if float(p) < 0.001 else f"{float(p):.3f}"


def table2_rows(cohort: str, metrics: dict) -> list[dict]:
    """Rows for `table2` from one cohort's metrics (scores first, then binary rules such as SRA)."""
    rows = []
    for name, m in metrics.get("scores", {}).items():
        rows.append({"cohort": cohort, "model": name, "auc": m.get("auc"), "auc_ci": m.get("auc_ci"),
                     **{key: m.get(key) for _, key in _TABLE2_METRICS}})
    for name, m in (metrics.get("rules") or {}).items():
        rows.append({"cohort": cohort, "model": name, "auc": None, "auc_ci": None,
                     **{key: m.get(key) for _, key in _TABLE2_METRICS}})
    return rows


def table2(rows: list[dict], out: str | Path | None = None) -> pd.DataFrame:
    """Seed-004 Table 2 from rows {cohort, model, auc, auc_ci, accuracy, sensitivity, specificity, ppv, npv}.

    Returns the formatted table; with `out` (a path without suffix) also writes out.csv and out.md.
    """
    records = []
    for i, row in enumerate(rows):
        for key in ("cohort", "model"):
            if key not in row:
                raise InputError(f"table 2 row {i + 1} has no {key!r}")
        records.append([str(row["cohort"]), str(row["model"]), format_auc(row.get("auc"), row.get("auc_ci")),
                        *(format_percent(row.get(key)) for _, key in _TABLE2_METRICS)])
    frame = pd.DataFrame(records, columns=TABLE2_COLUMNS)
    if out is not None:
        write_table(frame, out, title="Table 2. Performance in predicting the endpoint",
                    blank_repeats=("Cohort",))
    return frame


def table4_rows(cohort: str, metrics: dict) -> list[dict]:
    """Rows for `table4` from one cohort's metrics: one per DeLong comparison."""
    return [{"cohort": cohort, "a": c["a"], "b": c["b"], "p": c.get("p")} for c in metrics.get("comparisons", [])]


def table4(rows: list[dict], out: str | Path | None = None) -> pd.DataFrame:
    """Seed-004 Table 4: 'Model comparison' then one p-value column per cohort (in order of appearance)."""
    cohorts: list[str] = []
    pairs: list[str] = []
    values: dict[tuple[str, str], str] = {}
    for i, row in enumerate(rows):
        for key in ("cohort", "a", "b"):
            if key not in row:
                raise InputError(f"table 4 row {i + 1} has no {key!r}")
        cohort, pair = str(row["cohort"]), f"{row['a']} vs {row['b']}"
        if cohort not in cohorts:
            cohorts.append(cohort)
        if pair not in pairs:
            pairs.append(pair)
        values[(pair, cohort)] = format_p(row.get("p"))
    frame = pd.DataFrame([[pair, *(values.get((pair, c), "/") for c in cohorts)] for pair in pairs],
                         columns=["Model comparison", *cohorts])
    if out is not None:
        write_table(frame, out, title="Table 4. Model comparison (DeLong test), p-value per cohort")
    return frame


def to_markdown(frame: pd.DataFrame, blank_repeats: tuple[str, ...] = ()) -> str:
    """A GitHub-flavoured Markdown table; repeated values in `blank_repeats` columns are left blank."""
    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in frame.columns) + " |",
             "|" + "|".join(" --- " for _ in frame.columns) + "|"]
    previous: dict[str, str] = {}
    for _, row in frame.iterrows():
        cells = []
        for column in frame.columns:
            text = cell(row[column])
            if column in blank_repeats and previous.get(column) == text:
                cells.append("")
            else:
                cells.append(text)
            previous[column] = text
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_table(frame: pd.DataFrame, out: str | Path, title: str | None = None,
                blank_repeats: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """Write `out`.csv (UTF-8, every cell filled) and `out`.md (Markdown, optional title line)."""
    out = Path(out)
    if out.suffix.lower() in (".csv", ".md"):
        out = out.with_suffix("")
    csv_path, md_path = out.parent / f"{out.name}.csv", out.parent / f"{out.name}.md"
    write_text(csv_path, frame.to_csv(index=False, lineterminator="\n"))
    header = f"**{title}**\n\n" if title else ""
    write_text(md_path, header + to_markdown(frame, blank_repeats))
    return csv_path, md_path
