"""Validation statistics for one or more scores: the engine behind `cervicalai evaluate`.

`evaluate_scores` returns the metrics.json structure for one cohort:

    {"n", "n_cases", "n_controls", "paired",
     "scores": {NAME: {"auc", "auc_ci": [lo, hi], "auc_se", "direction", "cutoff", "cutoff_from",
                       "accuracy", "sensitivity", "specificity", "ppv", "npv" (+ "_ci" Wilson intervals),
                       "tp", "fp", "tn", "fn", "n", "n_cases", "n_controls", "n_missing", "is_probability",
                       "hosmer_lemeshow": {"statistic", "df", "p", "groups", "groups_requested"}  # probabilities only
                      }},
     "rules": {NAME: {...the diagnostic metrics of a binary rule such as SRA...}},      # when given
     "comparisons": [{"a", "b", "auc_a", "auc_b", "diff", "z", "p", "diff_ci": [lo, hi], "method", "n", "df"}]}

Missing scores (NaN) are dropped with a warning that names the count. Paired analysis (the
default: every score measured on the same patients) keeps the patients that have every score,
so all AUCs, cut-offs and DeLong tests describe the same people; unpaired analysis keeps each
score's own patients and compares AUCs with DeLong's unpaired test. Undefined numbers (e.g. a
CI with a single case, PPV when nobody is called positive) are written as null.

`evaluate_table` reads the columns of a table, optionally per cohort (`group`), carrying the
training cohort's Youden cut-offs (and directions) to the other cohorts; `write_evaluation`
writes metrics.json, decision_curve.csv, Tables 2 and 4 (CSV + Markdown) and the figures.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from CervicalAILib.core.atomic import atomic_directory, write_json, write_text
from CervicalAILib.core.errors import InputError
from CervicalAILib.core.progress import ProgressCallback, no_progress
from CervicalAILib.research.stats import figures as fig
from CervicalAILib.research.stats.calibration import hosmer_lemeshow
from CervicalAILib.research.stats.decision_curve import (
    DEFAULT_THRESHOLDS,
    decision_curves,
    parse_threshold_range,
)
from CervicalAILib.research.stats.inputs import binary_outcome
from CervicalAILib.research.stats.roc import (
    auc_ci,
    delong_paired_test,
    delong_unpaired_test,
    normalise_direction,
    resolve_direction,
)
from CervicalAILib.research.stats.tables import table2, table2_rows, table4, table4_rows
from CervicalAILib.research.stats.thresholds import diagnostic_metrics, metrics_at_cutoff, youden_cutoff
from CervicalAILib.research.tables import read_table as read_table_file

log = logging.getLogger(__name__)

YOUDEN_HERE = "this data (maximum Youden index)"


def _numeric_score(values, name: str, length: int) -> np.ndarray:
    """Float array with NaN for missing values; refuses non-numeric and infinite values."""
    if isinstance(values, pd.Series):
        series = values.reset_index(drop=True)
    elif isinstance(values, np.ndarray):
        series = pd.Series(values)
    else:
        series = pd.Series(list(values))
    if len(series) != length:
        raise InputError(f"score {name!r} has {len(series)} values but the outcome has {length}")
    if pd.api.types.is_bool_dtype(series):
        return series.astype(float).to_numpy()
    converted = pd.to_numeric(series, errors="coerce")
    bad = series.notna() & converted.isna()
    if bad.any():
        position = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"score {name!r} is not numeric: row {position + 1} holds {series.iloc[position]!r} "
                         f"({int(bad.sum())} non-numeric value(s))")
    out = converted.to_numpy(dtype=float)
    if np.isinf(out).any():
        raise InputError(f"score {name!r} has {int(np.isinf(out).sum())} infinite value(s)")
    return out


def _directions_for(names, directions) -> dict[str, str]:
    if isinstance(directions, dict):
        return {name: normalise_direction(directions.get(name, "higher")) for name in names}
    return {name: normalise_direction(directions) for name in names}


def _clean(obj):
    """Floats that are NaN/inf become None; numpy scalars become Python numbers (JSON-ready)."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def _is_probability(values: np.ndarray) -> bool:
    finite = values[np.isfinite(values)]
    return finite.size > 0 and float(finite.min()) >= 0.0 and float(finite.max()) <= 1.0


def _rows_used(scores: dict[str, np.ndarray], paired: bool) -> dict[str, np.ndarray]:
    """Boolean mask of the patients each score is evaluated on (see the module docstring)."""
    if not scores:
        return {}
    present = {name: np.isfinite(values) for name, values in scores.items()}
    if paired:
        common = np.logical_and.reduce(list(present.values()))
        return {name: common for name in scores}
    return present


def evaluate_scores(y, scores: dict, cutoffs: dict | None = None, paired: bool = True,
                    directions: str | dict = "higher", rules: dict | None = None, hl_groups: int = 10,
                    level: float = 0.95, cutoff_from: str = "given") -> dict:
    """Validation statistics of each score against the binary outcome `y` (1/True = case).

    `scores` maps a name to its values (NaN = missing). `cutoffs` maps a name to a fixed
    cut-off (e.g. the training cohort's); scores without one get the maximum-Youden cut-off
    of this data. `directions` is 'higher' (default), 'lower', 'auto', or a dict per score.
    `rules` maps a name to binary calls (0/1, e.g. the SRA rule): diagnostic metrics only.
    Every pair of scores is compared by DeLong's test, paired unless `paired=False`.
    """
    y = binary_outcome(y, name="outcome")
    n_total = y.size
    if not scores and not rules:
        raise InputError("nothing to evaluate: give at least one score")
    arrays = {str(name): _numeric_score(values, str(name), n_total) for name, values in scores.items()}
    cutoffs = dict(cutoffs or {})
    direction_of = _directions_for(arrays, directions)
    used = _rows_used(arrays, paired)
    if paired and arrays:
        dropped = int((~next(iter(used.values()))).sum())
        if dropped:
            counts = ", ".join(f"{name}: {int(np.isnan(v).sum())}" for name, v in arrays.items() if np.isnan(v).any())
            log.warning("%d of %d patient(s) lack at least one score and are left out of the paired analysis (%s)",
                        dropped, n_total, counts)
    else:
        for name, values in arrays.items():
            if np.isnan(values).any():
                log.warning("score %r: %d of %d value(s) missing, left out", name, int(np.isnan(values).sum()), n_total)

    result: dict = {"n": n_total, "n_cases": int(y.sum()), "n_controls": int((~y).sum()), "paired": bool(paired),
                    "scores": {}, "comparisons": []}
    resolved: dict[str, str] = {}
    for name, values in arrays.items():
        mask = used[name]
        yy, ss = y[mask], values[mask]
        if yy.size == 0 or yy.all() or not yy.any():
            raise InputError(f"score {name!r}: the {yy.size} patient(s) with a value do not include both cases "
                             "and controls")
        direction = resolve_direction(yy, ss, direction_of[name])
        resolved[name] = direction
        area = auc_ci(yy, ss, direction, level)
        if name in cutoffs and cutoffs[name] is not None:
            cutoff, source = float(cutoffs[name]), cutoff_from
        else:
            cutoff, source = youden_cutoff(yy, ss, direction).cutoff, YOUDEN_HERE
        entry = {"auc": area.auc, "auc_ci": list(area.ci), "auc_se": area.standard_error, "direction": direction,
                 "cutoff": cutoff, "cutoff_from": source}
        entry.update(metrics_at_cutoff(yy, ss, cutoff, direction, level).as_dict())
        entry.update(n=int(yy.size), n_cases=int(yy.sum()), n_controls=int((~yy).sum()),
                     n_missing=int(np.isnan(values).sum()), is_probability=_is_probability(values))
        if entry["is_probability"]:
            try:
                entry["hosmer_lemeshow"] = hosmer_lemeshow(yy, ss, hl_groups).as_dict()
            except InputError as exc:
                entry["hosmer_lemeshow"] = None
                entry["hosmer_lemeshow_note"] = str(exc)
                log.warning("score %r: Hosmer-Lemeshow not computed: %s", name, exc)
        if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in area.ci):
            entry["auc_ci"] = None
        result["scores"][name] = entry

    if rules:
        result["rules"] = {}
        for name, values in rules.items():
            calls = _numeric_score(values, str(name), n_total)
            mask = np.isfinite(calls)
            if (~mask).any():
                log.warning("rule %r: %d of %d value(s) missing, left out", name, int((~mask).sum()), n_total)
            try:
                metrics = diagnostic_metrics(y[mask], calls[mask], level)
            except InputError as exc:
                raise InputError(f"rule {name!r}: {exc} (a rule must hold 0/1 calls)") from None
            result["rules"][str(name)] = {**metrics.as_dict(), "n": int(mask.sum()), "n_missing": int((~mask).sum())}

    for a, b in itertools.combinations(arrays, 2):
        if paired:
            mask = used[a]
            test = delong_paired_test(y[mask], arrays[a][mask], arrays[b][mask], resolved[a], resolved[b], level)
            n_used = int(mask.sum())
        else:
            ma, mb = used[a], used[b]
            test = delong_unpaired_test(y[ma], arrays[a][ma], y[mb], arrays[b][mb], resolved[a], resolved[b], level)
            n_used = int(ma.sum() + mb.sum())
        comparison = {"a": a, "b": b, "auc_a": test.auc_a, "auc_b": test.auc_b, "diff": test.difference,
                      "z": test.statistic, "p": test.p, "diff_ci": list(test.ci), "method": test.method, "n": n_used}
        if not paired:
            comparison["df"] = test.df
        result["comparisons"].append(comparison)
    return _clean(result)


# ----------------------------------------------------------------------------------------------
# Tables in, files out (the `cervicalai evaluate` command)


def read_table(path: str | Path) -> pd.DataFrame:
    """Read the evaluation table (CSV, or parquet)."""
    return read_table_file(path, "table", other_suffixes_as_csv=True)


def _require_column(table: pd.DataFrame, column: str, role: str) -> pd.Series:
    if column not in table.columns:
        shown = ", ".join(map(str, table.columns[:12])) + (", ..." if table.shape[1] > 12 else "")
        raise InputError(f"{role} column {column!r} not found; the table has: {shown}")
    return table[column]


_TRUE = {"1", "1.0", "true", "yes"}
_FALSE = {"0", "0.0", "false", "no"}


def outcome_from_column(table: pd.DataFrame, label: str, positive=None) -> tuple[np.ndarray, np.ndarray]:
    """(y, present): y True for cases; present False where the label is missing.

    Without `positive` the label must be 0/1 or True/False (1 = case); with it, the rows whose
    label equals `positive` are the cases (compared as numbers when the column is numeric).
    """
    column = _require_column(table, label, "label")
    present = column.notna().to_numpy()
    values = column[present]
    if positive is None:
        if pd.api.types.is_bool_dtype(values):
            y_present = values.to_numpy(dtype=bool)
        else:
            text = values.astype(str).str.strip().str.lower()
            unknown = sorted(set(text) - _TRUE - _FALSE)
            if unknown:
                raise InputError(f"label column {label!r} must be 0/1 or True/False, found {', '.join(unknown[:5])}; "
                                 "use --positive VALUE to name the value that marks a case")
            y_present = text.isin(_TRUE).to_numpy()
    else:
        wanted = str(positive).strip()
        if pd.api.types.is_bool_dtype(values):
            if wanted.lower() not in _TRUE | _FALSE:
                raise InputError(f"--positive {positive!r} is not a value of the True/False label column {label!r}")
            y_present = values.to_numpy(dtype=bool) == (wanted.lower() in _TRUE)
        elif pd.api.types.is_numeric_dtype(values):
            try:
                target = float(wanted)
            except ValueError:
                raise InputError(f"--positive {positive!r} does not occur in the numeric label column {label!r}") from None
            y_present = values.to_numpy(dtype=float) == target
        else:
            y_present = (values.astype(str).str.strip() == wanted).to_numpy()
        if not y_present.any():
            found = ", ".join(map(str, sorted(values.astype(str).unique())[:8]))
            raise InputError(f"no row of label column {label!r} equals --positive {positive!r} (values found: {found})")
    y = np.zeros(len(column), dtype=bool)
    y[present] = y_present
    if not present.all():
        log.warning("label %r is missing in %d row(s); those rows are left out", label, int((~present).sum()))
    if y_present.all() or not y_present.any():
        which = "cases" if y_present.any() else "controls"
        raise InputError(f"label column {label!r} has only one class: all {int(present.sum())} labelled rows are {which}")
    return y, present


def _same_value(value, text) -> bool:
    """A group value equals a command-line string (1.0 == "1" for numeric group columns)."""
    if str(value) == str(text):
        return True
    try:
        return float(value) == float(text)
    except (TypeError, ValueError):
        return False


def _slug(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._") or "group"
    slug, i = base, 2
    while slug in taken:
        slug, i = f"{base}_{i}", i + 1
    taken.add(slug)
    return slug


@dataclass
class CohortEvaluation:
    """One cohort's inputs and results (what the figures and tables are drawn from)."""

    name: str
    slug: str
    y: np.ndarray
    scores: dict[str, np.ndarray]
    rules: dict[str, np.ndarray]
    metrics: dict
    decision_curve: list[dict]


@dataclass
class Evaluation:
    metrics: dict
    overall: CohortEvaluation
    groups: list[CohortEvaluation] = field(default_factory=list)
    thresholds: np.ndarray | None = None
    hl_groups: int = 10


def _decision_rows(y: np.ndarray, scores: dict[str, np.ndarray], paired: bool, thresholds) -> list[dict]:
    """Decision-curve rows of the probability scores, plus treat-all and treat-none."""
    probabilities = {name: v for name, v in scores.items() if _is_probability(v)}
    used = _rows_used(scores, paired)
    if paired:
        mask = next(iter(used.values())) if used else np.ones(y.size, dtype=bool)
        return decision_curves(y[mask], {n: v[mask] for n, v in probabilities.items()}, thresholds)
    rows = [r for name, values in probabilities.items()
            for r in decision_curves(y[used[name]], {name: values[used[name]]}, thresholds)
            if r["model"] == name]
    return rows + decision_curves(y, {}, thresholds)


def cutoffs_from(metrics: dict, names=None) -> tuple[dict[str, float], dict[str, str]]:
    """(cut-offs, directions) of an `evaluate_scores` result, to carry to validation cohorts.

        train = evaluate_scores(y_train, scores_train)
        cutoffs, directions = cutoffs_from(train)
        external = evaluate_scores(y_ext, scores_ext, cutoffs, directions=directions, cutoff_from="training")
    """
    scores = metrics.get("scores") if isinstance(metrics, dict) else None
    if not isinstance(scores, dict):
        raise InputError("not a metrics structure: no 'scores' object")
    cutoffs, directions = {}, {}
    for name in (scores if names is None else names):
        entry = scores.get(name)
        if not isinstance(entry, dict) or entry.get("cutoff") is None:
            raise InputError(f"no cut-off for score {name!r} (it has: {', '.join(scores)})")
        cutoffs[name] = float(entry["cutoff"])
        directions[name] = normalise_direction(entry.get("direction", "higher"))
    return cutoffs, directions


def read_cutoffs(path: str | Path, names) -> tuple[dict[str, float], dict[str, str]]:
    """Cut-offs and directions of `names` from an earlier metrics.json (e.g. the training cohort's)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("cut-off file not found", path) from None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the cut-off file as JSON ({exc})", path) from exc
    try:
        return cutoffs_from(data, names)
    except InputError as exc:
        raise InputError(str(exc), path) from None


def evaluate_table(table: pd.DataFrame, label: str, scores: list[str], positive=None, rules: list[str] = (),
                   paired: bool = True, direction: str = "higher", cutoffs: dict | None = None,
                   cutoff_directions: dict | None = None, cutoff_from: str = "given", group: str | None = None,
                   train_group=None, thresholds=DEFAULT_THRESHOLDS, hl_groups: int = 10, level: float = 0.95,
                   cohort_name: str = "All", progress: ProgressCallback | None = None) -> Evaluation:
    """Evaluate `scores` (column names) against `label`, overall and per `group` (see module docstring)."""
    progress = progress or no_progress
    if not scores:
        raise InputError("give at least one --score column")
    for name in list(scores) + list(rules):
        _require_column(table, name, "score" if name in scores else "rule")
    duplicates = sorted({s for s in scores if list(scores).count(s) > 1})
    if duplicates:
        raise InputError(f"score column(s) given twice: {', '.join(duplicates)}")
    if train_group is not None and group is None:
        raise InputError("--train-group needs --group COL")
    if train_group is not None and cutoffs:
        raise InputError("give either --train-group (cut-offs chosen on that group) or --cutoff-from, not both")
    t = parse_threshold_range(thresholds) if isinstance(thresholds, str) else np.asarray(thresholds, dtype=float)

    y_all, present = outcome_from_column(table, label, positive)
    data = table.loc[present].reset_index(drop=True)
    y_all = y_all[present]
    score_arrays = {s: _numeric_score(data[s], s, len(data)) for s in scores}
    rule_arrays = {r: _numeric_score(data[r], r, len(data)) for r in rules}
    directions = dict(cutoff_directions) if cutoff_directions else direction

    group_values = None
    if group is not None:
        group_column = _require_column(data, group, "group")
        if group_column.isna().any():
            log.warning("group %r is missing in %d row(s); those rows appear only in the overall results",
                        group, int(group_column.isna().sum()))
        names = [v for v in pd.unique(group_column.dropna())]
        if train_group is not None:
            matches = [v for v in names if _same_value(v, train_group)]
            if not matches:
                raise InputError(f"--train-group {train_group!r} is not a value of group column {group!r} "
                                 f"(values: {', '.join(map(str, names[:8]))})")
            names = matches[:1] + [v for v in names if v is not matches[0]]
        group_values = (group_column, names)

    def run(name: str, mask: np.ndarray, slug_taken: set[str], cut, dirs, source) -> CohortEvaluation:
        y = y_all[mask]
        s = {k: v[mask] for k, v in score_arrays.items()}
        r = {k: v[mask] for k, v in rule_arrays.items()}
        try:
            metrics = evaluate_scores(y, s, cut, paired, dirs, r or None, hl_groups, level, source)
        except InputError as exc:
            raise InputError(f"cohort {name!r}: {exc}") from None
        return CohortEvaluation(str(name), _slug(name, slug_taken), y, s, r, metrics, _decision_rows(y, s, paired, t))

    taken: set[str] = set()
    group_results: list[CohortEvaluation] = []
    carried, carried_dirs, source = cutoffs, directions, cutoff_from
    if group_values is not None:
        column, names = group_values
        for i, value in enumerate(names):
            progress(0.1 + 0.8 * i / max(len(names), 1), f"evaluating group {value}")
            mask = (column == value).to_numpy()
            result = run(str(value), mask, taken, carried, carried_dirs, source)
            group_results.append(result)
            if i == 0 and train_group is not None:
                # the training group's Youden cut-offs and directions go to every other group
                carried, carried_dirs = cutoffs_from(result.metrics)
                source = f"group {value} (maximum Youden index)"
    progress(0.9, "evaluating all rows")
    overall = run(cohort_name, np.ones(len(data), dtype=bool), taken, carried, carried_dirs, source)
    metrics = dict(overall.metrics)
    if group_results:
        metrics["group_column"] = group
        metrics["groups"] = {g.name: g.metrics for g in group_results}
    return Evaluation(metrics, overall, group_results, t, hl_groups)


def write_evaluation(evaluation: Evaluation, out_dir: str | Path, overwrite: bool = False, figures: bool = True,
                     progress: ProgressCallback | None = None) -> Path:
    """Write metrics.json, decision_curve.csv, Tables 2 and 4 and the figures into `out_dir` (atomically)."""
    progress = progress or no_progress
    out_dir = Path(out_dir)
    cohorts = evaluation.groups or [evaluation.overall]
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        write_json(tmp / "metrics.json", evaluation.metrics)
        _write_dca(tmp / "decision_curve.csv", evaluation.overall.decision_curve)
        for cohort in evaluation.groups:
            _write_dca(tmp / f"decision_curve_{cohort.slug}.csv", cohort.decision_curve)
        table2([row for c in cohorts for row in table2_rows(c.name, c.metrics)], out=tmp / "table2")
        comparisons = [row for c in cohorts for row in table4_rows(c.name, c.metrics)]
        if comparisons:
            table4(comparisons, out=tmp / "table4")
        if figures:
            drawn = [("", evaluation.overall)] + [(f"_{c.slug}", c) for c in evaluation.groups]
            for i, (suffix, cohort) in enumerate(drawn):
                progress(0.2 + 0.8 * i / len(drawn), f"drawing figures {cohort.name}")
                _cohort_figures(fig, tmp, suffix, cohort, evaluation)
    return out_dir


def _write_dca(path: Path, rows: list[dict]) -> None:
    frame = pd.DataFrame(rows, columns=["threshold", "model", "net_benefit"])
    write_text(path, frame.to_csv(index=False, lineterminator="\n", float_format="%.15g"))


def _cohort_figures(fig, folder: Path, suffix: str, cohort: CohortEvaluation, evaluation: Evaluation) -> None:
    scores = cohort.metrics["scores"]
    used = _rows_used(cohort.scores, cohort.metrics["paired"])
    title = "" if cohort.name == "All" else f" — {cohort.name}"
    # each score on the patients it was evaluated on (the same patients in a paired analysis)
    outcomes = {name: cohort.y[used[name]] for name in cohort.scores}
    values = {name: cohort.scores[name][used[name]] for name in cohort.scores}
    fig.roc_figure(folder / f"roc{suffix}.png", outcomes, values, {n: scores[n]["direction"] for n in scores},
                   title=f"ROC curves{title}")
    probabilities = [n for n in scores if scores[n]["is_probability"] and scores[n].get("hosmer_lemeshow")]
    if probabilities:
        fig.calibration_figure(folder / f"calibration{suffix}.png", {n: outcomes[n] for n in probabilities},
                               {n: values[n] for n in probabilities}, evaluation.hl_groups,
                               title=f"Calibration{title}",
                               hosmer_lemeshow={n: scores[n]["hosmer_lemeshow"] for n in probabilities})
    fig.decision_curve_figure(folder / f"decision_curve{suffix}.png", cohort.decision_curve,
                              title=f"Decision curves{title}")
