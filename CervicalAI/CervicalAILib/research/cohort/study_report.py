"""The seed-004 study reproduced end to end on a synthetic multi-centre cohort (`cervicalai study-report`).

Steps, each reusing the engine's own parts:

1. cohort: `synth.generate_cohort` with five centres (shares of seed 004's 685/207/97/85/21),
   1100 x scale cases; centre A is split 7:3 (stratified by LNM, one split for both endpoints) into training and
   internal validation, centres B-E form the external validation cohort (seed 004: 481/204/410).
2. features: `cohort.extract_cohort` (radiomics of T2WI, DWI, CE-T1WI on each sequence's own
   grid with its own tumour mask; deep features of the 2D and 3D encoders). Resumable.
3. models: `models.fit_risk_model` per endpoint (LNM; stage group), training cohort only:
   ComBat, Mann-Whitney U, Spearman, LASSO, stepwise AIC -> Rad_score and DL_score (the deep family
   with the best cross-validated training AUC), clinical variables (p < 0.05), DLRC by stepwise AIC.
4. statistics: `stats.evaluate_scores` per cohort (Table 2 incl. the SRA rule, Table 4 DeLong,
   Youden cut-offs of the training cohort carried to validation), ROC, calibration with
   Hosmer-Lemeshow, decision curves; the generator's oracle probability (the best any model can
   do) with its AUC per cohort and DeLong against the DLRC.
5. report: Markdown with tables and figures, CSV tables, metrics.json, and the two risk-model
   bundles (`dlrc-lnm`, `dlrc-stage-group`) with their provenance.

A rerun of the same command resumes: an existing matching cohort and feature table are reused,
a partial extraction continues where it stopped.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from CervicalAILib import RESEARCH_USE_STATEMENT, __version__
from CervicalAILib.bundles.catalog import default_entry
from CervicalAILib.bundles.defaults import default_bundle_path
from CervicalAILib.contracts.feature_names import RADIOMICS_FAMILY, encoder_of_family, role_of
from CervicalAILib.core import atomic
from CervicalAILib.core.errors import CervicalAIError, InputError, OutputExistsError
from CervicalAILib.core.progress import ProgressCallback, no_progress, sub_progress
from CervicalAILib.research.cohort.config import DEFAULT_ENCODERS, DEFAULT_ROLES, ExtractionConfig
from CervicalAILib.research.cohort.extract import extract_cohort
from CervicalAILib.research.cohort.table import sidecar_path_for
from CervicalAILib.research.fit.table import cohort_order
from CervicalAILib.research.stats import evaluate_scores
from CervicalAILib.research.stats import figures as fig
from CervicalAILib.research.stats.tables import format_auc, format_p, write_table
from CervicalAILib.scoring.risk_model import load_risk_model

BASE_CASES = 1100  # seed 004: 1095 patients
CENTERS = 5  # seed 004: five centres
TRAIN_CENTER = "A"
TRAIN_FRACTION = 0.7
SPLIT_STRATUM = "lnm"  # both endpoints share the split of centre A, stratified by LNM
ENDPOINTS = ("lnm", "stage_group")  # each fitted into a bundle named as the shipped default for it (the model catalogue)
GENERATION_RECORD = "cohort_generation.json"  # in the work folder: wall and CPU seconds of generating the cohort
ORACLE_COLUMNS = {"lnm": "oracle_lnm_probability", "stage_group": "oracle_stage_probability"}
COHORT_LABELS = {"training": "Training", "internal_validation": "Internal validation",
                 "external_validation": "External validation"}
ENDPOINT_TITLES = {"lnm": "lymph-node metastasis (LNM)", "stage_group": "chemoradiotherapy stage group (IB3, IIA2-IVB)"}
SHORT_TITLES = {"lnm": "LNM", "stage_group": "Stage group"}  # figure titles (variants: VARIANTS)
# Seed 004's published results (Table 2), for the side-by-side comparison in the report.
SEED004_AUC = {
    "Radiomics": (0.735, 0.767, 0.718),
    "DL (ResNet152_2D)": (0.751, 0.725, 0.716),
    "DLRC": (0.807, 0.789, 0.807),
}
SEED004_SRA = {"sensitivity": (0.336, 0.333, 0.378), "specificity": (0.970, 0.950, 0.958)}
SEED004_SIZES = (481, 204, 410)


@dataclass
class StudyConfig:
    """Everything the study run depends on; written into metrics.json and the report."""

    out: Path
    work: Path | None = None  # cohort + feature table (default: <out>.work beside the report)
    bundles: Path | None = None  # risk-model bundles (default: <out>/bundles)
    seed: int = 4
    scale: float = 1.0
    jobs: int = 2
    matrix_scale: float = 1.0
    roles: tuple[str, ...] = DEFAULT_ROLES
    encoders: tuple[str, ...] = DEFAULT_ENCODERS
    settings_dir: Path | None = None
    cohort: Path | None = None  # an existing cohort instead of generating one
    split_seed: int = 42
    min_events: int = 10
    mwu_p: float = 0.01
    figures: bool = True
    overwrite: bool = False
    # models fitted besides seed 004's two (VARIANTS, below), e.g. the LNM model without contrast
    variants: tuple[str, ...] = ("lnm_no_contrast",)
    # fit only the variants (the cohort and feature table as usual); they are compared with the full
    # model of `reference` (a risk bundle fitted on the same cohort and split; default: the shipped one)
    variants_only: bool = False
    reference: Path | None = None

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.work = Path(self.work) if self.work is not None else self.out.with_name(self.out.name + ".work")
        self.bundles = Path(self.bundles) if self.bundles is not None else None
        self.settings_dir = Path(self.settings_dir) if self.settings_dir is not None else None
        self.cohort = Path(self.cohort) if self.cohort is not None else None
        self.reference = Path(self.reference) if self.reference is not None else None

        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise InputError(f"unknown model variant(s) {', '.join(unknown)} (known: {', '.join(VARIANTS)})")
        if self.variants_only and not self.variants:
            raise InputError("--variants-only needs at least one variant")
        if not (isinstance(self.scale, (int, float)) and 0 < self.scale <= 10):
            raise InputError(f"--scale must be in (0, 10], got {self.scale!r}")
        if not isinstance(self.jobs, int) or self.jobs < 1:
            raise InputError(f"--jobs must be a positive integer, got {self.jobs!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise InputError(f"--seed must be a non-negative integer, got {self.seed!r}")
        if self.min_events < 2:
            raise InputError(f"--min-events must be at least 2, got {self.min_events}")
        if not 0 < self.mwu_p < 1:
            raise InputError(f"--mwu-p must be in (0, 1), got {self.mwu_p}")

    @property
    def n_cases(self) -> int:
        return max(1, int(round(BASE_CASES * self.scale)))

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, Path):
                out[key] = str(value)
            elif isinstance(value, tuple):
                out[key] = list(value)
        return out


@dataclass
class StudyResult:
    out: Path
    metrics: dict[str, Any]
    bundles: dict[str, Path]
    seconds: float
    report: Path = field(default_factory=Path)


# ----------------------------------------------------------------------------------------------
# steps 1-2: cohort and features


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


def _cohort(config: StudyConfig, progress: ProgressCallback) -> Path:
    """The synthetic cohort: an existing one given by the user, a matching earlier one, or a new one."""
    from CervicalAILib.research.synth import GENERATOR_VERSION, SynthParams, generate_cohort

    if config.cohort is not None:
        progress(1.0, f"using the cohort {config.cohort}")
        return config.cohort
    folder = config.work / "cohort"
    wanted = {"seed": config.seed, "n_cases": config.n_cases, "n_centers": CENTERS, "version": GENERATOR_VERSION,
              "matrix_scale": config.matrix_scale}
    manifest = folder / "generator.json"
    if manifest.is_file():
        try:
            found = json.loads(manifest.read_text(encoding="utf-8"))
        except ValueError:
            found = {}
        have = {"seed": found.get("seed"), "n_cases": found.get("n_cases"), "n_centers": found.get("n_centers"),
                "version": found.get("version"),
                "matrix_scale": (found.get("parameters") or {}).get("matrix_scale")}
        if have == wanted:
            progress(1.0, f"reusing the cohort generated before in {folder}")
            return folder
        differences = ", ".join(f"{k} {have[k]} (wanted {wanted[k]})" for k in wanted if have[k] != wanted[k])
        if not config.overwrite:
            raise OutputExistsError(f"{folder}: a different cohort is there ({differences}); use --overwrite to "
                                    "regenerate it or choose another --work folder")
    elif folder.exists() and any(folder.iterdir()) and not config.overwrite:
        raise OutputExistsError(f"{folder}: exists and is not a generated cohort; use --overwrite or another --work")
    load = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), _all_cpu_seconds()
    generate_cohort(folder, config.n_cases, config.seed, centers=CENTERS, jobs=config.jobs,
                    params=SynthParams(matrix_scale=config.matrix_scale), progress=progress, overwrite=True)
    # kept beside the cohort so that a resumed study can still state what generating it cost
    atomic.write_json(config.work / GENERATION_RECORD, {
        "cases": config.n_cases, "jobs": config.jobs, "wall_seconds": round(time.perf_counter() - wall, 1),
        "cpu_seconds": round(_all_cpu_seconds() - cpu, 1), "load_average_before": round(load, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
        "created": datetime.now(UTC).isoformat(timespec="seconds")})
    return folder


def _all_cpu_seconds() -> float:
    """CPU seconds of this process and of its finished worker processes."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _features(config: StudyConfig, cohort: Path, progress: ProgressCallback) -> tuple[Path, dict[str, Any]]:
    """The feature table: reused when an earlier run made it from the same cohort and configuration."""
    from CervicalAILib.research.cohort.index import read_cohort_table

    extraction = ExtractionConfig.build(roles=config.roles, settings_dir=config.settings_dir,
                                        encoders=list(config.encoders))
    table = config.work / "features.parquet"
    sidecar_path = sidecar_path_for(table)
    if table.is_file() and sidecar_path.is_file():
        try:
            sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
        except ValueError:
            sidecar = {}
        fingerprint = extraction.fingerprint()
        same = (sidecar.get("roles") == fingerprint["roles"]
                and sidecar.get("radiomics_settings_sha256") == fingerprint["radiomics_settings_sha256"]
                and sidecar.get("encoders") == fingerprint["encoders"]
                and sidecar.get("software") == fingerprint["software"]
                and (sidecar.get("cohort") or {}).get("cohort_csv_sha256") == read_cohort_table(cohort).csv_sha256)
        if same:
            progress(1.0, f"reusing the feature table extracted before: {table}")
            return table, sidecar
    # overwrite=True replaces a stale table; finished cases of the same configuration are still reused
    result = extract_cohort(cohort, table, extraction, jobs=config.jobs, overwrite=True, progress=progress)
    return table, result.sidecar_data


# ----------------------------------------------------------------------------------------------
# steps 3-4: models and statistics per endpoint


def _fit(table_path: Path, endpoint: str, config: StudyConfig, progress: ProgressCallback,
         roles: tuple[str, ...] | None = None):
    from CervicalAILib.research.fit.fit import FitConfig, fit_risk_model
    from CervicalAILib.research.fit.selection import SelectionConfig
    from CervicalAILib.research.fit.table import SplitSpec, read_feature_table

    table = read_feature_table(table_path)
    fit_config = FitConfig(
        endpoint=endpoint,
        # one split for both endpoints, stratified by LNM (seed 004's endpoint), so that Table 1 and every
        # cohort mean the same patients whichever endpoint is read
        split=SplitSpec(train_centers=[TRAIN_CENTER], train_fraction=TRAIN_FRACTION, seed=config.split_seed,
                        stratify_by=SPLIT_STRATUM),
        selection=SelectionConfig(mwu_p=config.mwu_p),
        min_events=config.min_events,
        family_cv_folds=min(5, config.min_events),
        roles=list(roles) if roles is not None else None,
    )
    return fit_risk_model(table, fit_config, progress=progress)


def _training_statement(endpoint: str, result, sidecar: dict[str, Any]) -> str:
    training = result.training
    n, events = len(training), int(training[endpoint].sum())
    generator = (sidecar.get("cohort") or {}).get("generator") or {}
    source = (f"{generator.get('generator', 'CervicalAI synthetic pelvic MRI')} {generator.get('version', '')}".strip()
              + (f", `{generator['regenerate']}`" if generator.get("regenerate") else ""))
    return (f"Trained on synthetic data from the CervicalAI generator, not for clinical use. {n} training cases "
            f"({events} positive for {endpoint}) of centre {TRAIN_CENTER} of a synthetic multi-centre cohort ({source}): "
            f"the 70 % training part of a 7:3 split stratified by LNM (seed {result.config.split.seed}); "
            f"features from `cervicalai extract` on {', '.join(sidecar.get('roles') or [])}. Made by "
            "`cervicalai study-report`, which reproduces seed 004's study. "
            + _mask_statement(sidecar))


def _mask_statement(sidecar: dict[str, Any]) -> str:
    """Where the training masks came from, against what the readout uses (a reviewer's question)."""
    sources = (sidecar.get("masks") or {}).get("sources") or {}
    if not sources:
        return ""
    parts = [f"{role}: " + ", ".join(f"{n} {source}" for source, n in sorted(counts.items()))
             for role, counts in sources.items()]
    return ("Training tumour masks per sequence (" + "; ".join(parts) + "). The readout instead carries the "
            "reader's T2WI mask onto each sequence through the co-registration, so its features also carry the "
            "registration error (mean 0.2-0.9 mm on synthetic pairs, Testing/benchmarks/results/registration.md); train with the same mask "
            "source as the readout (`cervicalai extract` without per-sequence labels) to remove that difference.")


def _model_scores(result, endpoint: str) -> tuple[dict[str, str], dict[str, str]]:
    """Display name -> scores.csv column, and the notes on models the fit could not build."""
    models: dict[str, str] = {}
    notes: dict[str, str] = {}
    scores = result.model["scores"]
    if "rad_score" in scores:
        models["Radiomics"] = "rad_score"
    else:
        notes["Radiomics"] = "no radiomics score: " + str(result.families.get(RADIOMICS_FAMILY).log.get("stopped", "")
                                                         if result.families.get(RADIOMICS_FAMILY) else "no radiomics features")
    if "dl_score" in scores:
        models[f"DL ({encoder_of_family(scores['dl_score'])})"] = "dl_score"
    else:
        notes["DL"] = "no deep-learning score (no deep family gave one)"
    models["DLRC"] = "dlrc_probability"
    return models, notes


def _evaluate_endpoint(endpoint: str, result, cohort_frame, config: StudyConfig, fig_dir: Path | None,
                       progress: ProgressCallback, name: str | None = None, title: str | None = None) -> dict[str, Any]:
    """Table 2 / Table 4 metrics, oracle comparison, decision curves and figures for one endpoint
    (`name`: the model's key in file names when it is not the endpoint's own model, `title` its figure title)."""
    import pandas as pd

    from CervicalAILib.research.fit.table import cohort_order
    from CervicalAILib.research.stats import cutoffs_from, decision_curves, evaluate_scores
    from CervicalAILib.research.stats.decision_curve import DEFAULT_THRESHOLDS, parse_threshold_range

    file_key, figure_title = name or endpoint, title or SHORT_TITLES[endpoint]  # `name` is reused below
    models, notes = _model_scores(result, endpoint)
    scores = result.scores.merge(cohort_frame, on="case_id", how="left", suffixes=("", "_cohort"))
    oracle_column = ORACLE_COLUMNS[endpoint]
    thresholds = parse_threshold_range(DEFAULT_THRESHOLDS)
    out: dict[str, Any] = {"models": models, "notes": notes, "cohorts": {}, "oracle": {}, "skipped": {},
                           "decision_curves": {}}
    cutoffs, directions = None, "higher"
    names = cohort_order(scores["cohort"].unique().tolist())
    for k, cohort in enumerate(names):
        progress(k / max(len(names), 1), f"{endpoint}: statistics for the {cohort} cohort")
        part = scores[scores["cohort"] == cohort]
        y = part[endpoint].to_numpy(dtype=int)
        values = {}
        for name, column in models.items():
            raw = part[column].to_numpy(dtype=float)
            # Rad_score and DL_score are the log-odds of their logistic models: the models' probabilities
            values[name] = raw if column == "dlrc_probability" else _sigmoid(raw)
        rules = {"SRA": part["sra"].to_numpy(dtype=float)} if endpoint == "lnm" and "sra" in part else None
        if y.min() == y.max():
            out["skipped"][cohort] = f"only one outcome class among its {len(y)} case(s)"
            continue
        source = "training cohort (maximum Youden index)"
        metrics = evaluate_scores(y, values, cutoffs=cutoffs, directions=directions, rules=rules,
                                  cutoff_from=source if cutoffs else "given")
        if cohort == "training":
            cutoffs, directions = cutoffs_from(metrics)
        out["cohorts"][cohort] = metrics
        oracle = part[oracle_column].to_numpy(dtype=float)
        out["oracle"][cohort] = evaluate_scores(y, {"DLRC": values["DLRC"], "Oracle": oracle},
                                                cutoffs={"DLRC": cutoffs["DLRC"]} if cutoffs else None)
        curves = decision_curves(y, values, thresholds)
        out["decision_curves"][cohort] = curves
        if fig_dir is not None:
            _cohort_figures(fig_dir, file_key, cohort, y, values, metrics, curves, figure_title)
    if "training" not in out["cohorts"]:
        raise CervicalAIError(f"{endpoint}: the training cohort has one outcome class only; nothing to evaluate")
    out["scores_frame"] = pd.DataFrame(scores)
    return out


def _cohort_figures(fig_dir: Path, endpoint: str, cohort: str, y, values, metrics, curves, model_title: str) -> None:
    from CervicalAILib.research.stats import figures as fig

    label = COHORT_LABELS.get(cohort, cohort)
    title = f"{model_title}: {label}"
    fig.roc_figure(fig_dir / f"roc_{endpoint}_{cohort}.png", y, values,
                   {n: metrics["scores"][n]["direction"] for n in values}, title=f"ROC, {title}")
    hl = {n: metrics["scores"][n].get("hosmer_lemeshow") for n in values}
    fig.calibration_figure(fig_dir / f"calibration_{endpoint}_{cohort}.png", y, values, 10,
                           title=f"Calibration, {title}", hosmer_lemeshow=hl)
    fig.decision_curve_figure(fig_dir / f"decision_curve_{endpoint}_{cohort}.png", curves,
                              title=f"Decision curves, {title}")


# ----------------------------------------------------------------------------------------------
# tables


def _cohort_summary(cohort_frame, splits) -> list[dict[str, Any]]:
    rows = []
    merged = cohort_frame.merge(splits, on="case_id", how="inner")
    for cohort in ("training", "internal_validation", "external_validation"):
        part = merged[merged["cohort"] == cohort]
        if len(part) == 0:
            continue
        rows.append({"cohort": cohort, "centres": ", ".join(sorted(part["center"].astype(str).unique())),
                     "n": int(len(part)), "lnm_positive": int(part["lnm"].sum()),
                     "lnm_rate": float(part["lnm"].mean()),
                     "crt_group": int(part["stage_group_crt"].sum()) if "stage_group_crt" in part else None})
    return rows


def _table1(cohort_frame, splits) -> Any:
    """Seed 004's Table 1: clinical characteristics by LNM status per cohort, with p-values."""
    import pandas as pd

    from CervicalAILib.research.fit import clinical as clin

    merged = cohort_frame.merge(splits, on="case_id", how="inner")
    cohorts = [c for c in ("training", "internal_validation", "external_validation") if (merged["cohort"] == c).any()]
    header = ["Clinical feature"]
    for cohort in cohorts:
        label = COHORT_LABELS[cohort]
        header += [f"{label} LNM(-)", f"{label} LNM(+)", f"{label} p"]
    rows: list[list[str]] = []
    parts = {c: merged[merged["cohort"] == c] for c in cohorts}

    def p_value(name: str, cohort: str) -> str:
        from CervicalAILib.research.stats.tables import format_p

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
    from CervicalAILib.research.stats import table2_rows

    rows = []
    for cohort, metrics in evaluation["cohorts"].items():
        rows += table2_rows(COHORT_LABELS.get(cohort, cohort), metrics)
    return rows


def _table4_rows(evaluation: dict[str, Any]) -> list[dict[str, Any]]:
    from CervicalAILib.research.stats import table4_rows

    rows = []
    for cohort, metrics in evaluation["cohorts"].items():
        rows += table4_rows(COHORT_LABELS.get(cohort, cohort), metrics)
    return rows


def _oracle_table(evaluation: dict[str, Any]):
    import pandas as pd

    from CervicalAILib.research.stats.tables import format_auc, format_p

    rows = []
    for cohort, metrics in evaluation["oracle"].items():
        dlrc, oracle = metrics["scores"]["DLRC"], metrics["scores"]["Oracle"]
        comparison = metrics["comparisons"][0]
        rows.append([COHORT_LABELS.get(cohort, cohort), str(metrics["n"]), str(metrics["n_cases"]),
                     format_auc(dlrc["auc"], dlrc["auc_ci"]), format_auc(oracle["auc"], oracle["auc_ci"]),
                     _difference_text(comparison),
                     format_p(comparison["p"])])
    return pd.DataFrame(rows, columns=["Cohort", "n", "Events", "DLRC AUC (95% CI)", "Oracle AUC (95% CI)",
                                       "DLRC - oracle (95% CI)", "DeLong p"])


def _difference_text(comparison: dict[str, Any]) -> str:
    """'+0.012 (-0.020 to +0.044)'; '/' for what is undefined (e.g. a CI with a handful of cases)."""
    def signed(value) -> str:
        return "/" if value is None else f"{value:+.3f}"

    ci = comparison.get("diff_ci") or [None, None]
    return f"{signed(comparison.get('diff'))} ({signed(ci[0])} to {signed(ci[1])})"


def _features_table(result):
    import pandas as pd

    rows = []
    for score, family in result.model["scores"].items():
        fam = result.model["families"][family]
        label = "Rad_score" if score == "rad_score" else f"DL_score ({family})"
        rows.append([label, "(intercept)", f"{fam['intercept']:+.4f}"])
        for name, coefficient in zip(fam["features"], fam["coefficients"]):
            rows.append([label, name, f"{coefficient:+.4f}"])
    rows.append(["DLRC", "(intercept)", f"{result.dlrc.intercept:+.4f}"])
    for column, coefficient in result.dlrc.coefficients.items():
        rows.append(["DLRC", column, f"{coefficient:+.4f}"])
    return pd.DataFrame(rows, columns=["Model", "Predictor", "Coefficient"])


# ----------------------------------------------------------------------------------------------
# the whole study


def run_study(config: StudyConfig, progress: ProgressCallback | None = None) -> StudyResult:
    """Run the study and write the report folder (atomically) and the risk-model bundles: seed 004's two
    and the variants (`config.variants`); with `config.variants_only`, the variants alone."""
    import pandas as pd

    from CervicalAILib.research.fit.bundle import write_risk_bundle

    progress = progress or no_progress
    start = time.perf_counter()
    cpu_start = time.process_time()
    load_start = os.getloadavg()
    out = config.out
    if out.exists() and any(out.iterdir()) and not config.overwrite:
        raise OutputExistsError(f"{out}: report folder exists and is not empty (use --overwrite to replace it)")
    bundle_root = config.bundles
    names = {} if config.variants_only else {endpoint: default_entry(endpoint).name for endpoint in ENDPOINTS}
    names.update({key: VARIANTS[key].bundle for key in config.variants})
    bundle_paths = {key: (bundle_root or out / "bundles") / name for key, name in names.items()}
    if bundle_root is not None and not config.overwrite:
        taken = [p for p in bundle_paths.values() if p.exists() and any(p.iterdir())]
        if taken:
            raise OutputExistsError(f"{taken[0]}: bundle folder exists (use --overwrite to replace it)")
    # the full model a variant is compared with, when this run does not fit it (checked before the long steps)
    reference = read_reference(config) if config.variants_only else None
    config.work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def stage(name: str, t0: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - t0, 1)
        return now

    t = time.perf_counter()
    fit_cpu = 0.0
    cohort = _cohort(config, sub_progress(progress, 0.0, 0.2))
    t = stage("cohort", t)
    table_path, sidecar = _features(config, cohort, sub_progress(progress, 0.2, 0.75))
    t = stage("extraction", t)
    cohort_frame = pd.read_csv(cohort / "cohort.csv", dtype={"case_id": str, "center": str})

    fits: dict[str, Any] = {}
    evaluations: dict[str, Any] = {}
    cpu_mark = _all_cpu_seconds()
    step = 0.16 / max(len(names), 1)
    for k, key in enumerate(names):
        variant = VARIANTS.get(key)
        fits[key] = _fit(table_path, variant.endpoint if variant else key, config,
                         sub_progress(progress, 0.75 + step * k, 0.75 + step * (k + 1)),
                         roles=variant.roles if variant else None)
    t = stage("fit", t)

    with atomic.atomic_directory(out, overwrite=config.overwrite) as tmp:
        fig_dir = tmp / "figures"
        tab_dir = tmp / "tables"
        fig_dir.mkdir()
        tab_dir.mkdir()
        for k, endpoint in enumerate(e for e in ENDPOINTS if e in fits):
            evaluations[endpoint] = _evaluate_endpoint(
                endpoint, fits[endpoint], cohort_frame, config, fig_dir if config.figures else None,
                sub_progress(progress, 0.91 + 0.02 * k, 0.93 + 0.02 * k))
        for key in config.variants:
            variant = VARIANTS[key]
            if reference is None:  # the full model of this run
                reference = Reference(label=default_entry(variant.endpoint).name,
                                         scores=fits[variant.endpoint].scores)
            evaluations[key] = evaluate_variant(key, fits[key], reference, cohort_frame, config,
                                                   fig_dir if config.figures else None, sub_progress(progress, 0.95, 0.97))
        t = stage("statistics", t)
        fit_cpu = _all_cpu_seconds() - cpu_mark
        progress(0.97, "writing the bundles and the report")
        bundles = {}
        for key, path in bundle_paths.items():
            target = tmp / "bundles" / path.name if bundle_root is None else path
            bundles[key] = write_risk_bundle(
                fits[key], target, name=names[key], version="1.0.0", synthetic=True,
                training_data=_training_statement(fits[key].config.endpoint, fits[key], sidecar)
                + (VARIANTS[key].statement if key in VARIANTS else ""),
                intended_use=VARIANTS[key].intended_use if key in VARIANTS else None, overwrite=config.overwrite)
        if config.figures:
            from CervicalAILib.scoring.nomogram import render_nomogram

            for key, fit in fits.items():
                title = VARIANTS[key].title if key in VARIANTS else ENDPOINT_TITLES[key]
                render_nomogram(fit.nomogram, fig_dir / f"nomogram_{key}.png", title=f"DLRC nomogram: {title}")
        stage("report", t)
        if config.variants_only:
            metrics = variants_metrics(config, cohort, sidecar, fits, evaluations, bundles, bundle_paths, timings,
                                          time.perf_counter() - start, load_start)
        else:
            metrics = _metrics(config, cohort, sidecar, fits, evaluations, bundles, bundle_paths, timings,
                               time.perf_counter() - start, time.process_time() - cpu_start, load_start)
            metrics["timing"]["pipeline"] = _pipeline_cost(config, sidecar, fit_cpu)
            _write_tables(tab_dir, cohort_frame, fits, evaluations)
        for key in config.variants:
            write_variant_tables(tab_dir, key, fits[key], evaluations[key])
        atomic.write_json(tmp / "metrics.json", metrics)
        text = (variants_markdown(config, metrics, fits, tab_dir) if config.variants_only
                else _markdown(config, metrics, fits, evaluations, tab_dir, cohort_frame))
        atomic.write_text(tmp / "study_report.md", text)
    progress(1.0, f"study report written to {out}")
    return StudyResult(out=out, metrics=metrics, bundles=bundle_paths, seconds=time.perf_counter() - start,
                       report=out / "study_report.md")


def _write_tables(tab_dir: Path, cohort_frame, fits, evaluations) -> None:
    from CervicalAILib.research.stats.tables import write_table

    splits = fits["lnm"].cases[["case_id", "cohort"]]
    write_table(_table1(cohort_frame, splits), tab_dir / "table1_clinical", title="Table 1. Clinical characteristics "
                "by LNM status (p: seed 004's univariate tests)", blank_repeats=())
    for endpoint in ENDPOINTS:
        write_model_tables(tab_dir, endpoint, endpoint, ENDPOINT_TITLES[endpoint], fits[endpoint], evaluations[endpoint])


def write_model_tables(tab_dir: Path, name: str, endpoint: str, title: str, fit, evaluation) -> None:
    """Table 2, Table 4, the oracle table, the coefficients, per-case scores and decision curves of one model."""
    import pandas as pd

    from CervicalAILib.research.stats import table2, table4
    from CervicalAILib.research.stats.tables import write_table

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


def _metrics(config, cohort, sidecar, fits, evaluations, bundles, bundle_paths, timings, wall, cpu, load_start):
    splits = fits["lnm"].cases[["case_id", "cohort"]]
    import pandas as pd

    cohort_frame = pd.read_csv(cohort / "cohort.csv", dtype={"case_id": str, "center": str})

    endpoints = {endpoint: model_metrics(fits[endpoint], evaluations[endpoint], bundles[endpoint], bundle_paths[endpoint])
                 for endpoint in ENDPOINTS}
    out = metrics_head(config, "Seed 004 (Bao et al., DLRC model for LNM) reproduced on a synthetic multi-centre cohort",
                       cohort, cohort_frame, sidecar)
    out["cohort"]["summary"] = _cohort_summary(cohort_frame, splits)
    out.update(endpoints=endpoints, timing=timing_metrics(timings, wall, cpu, load_start))
    if config.variants:
        out["variants"] = {key: variant_metrics(key, fits[key], evaluations[key], bundles[key], bundle_paths[key])
                           for key in config.variants}
    return out


def metrics_head(config: StudyConfig, title: str, cohort: Path, cohort_frame, sidecar: dict[str, Any]) -> dict[str, Any]:
    """The first keys of metrics.json: what was run, on which cohort, with which features."""
    return {
        "schema": "cervicalai.study-report/1",
        "title": title,
        "research_use": RESEARCH_USE_STATEMENT,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command_text(config),
        "config": config.as_dict(),
        "cohort": {"folder": str(cohort), "n_cases": int(len(cohort_frame)),
                   "generator": (sidecar.get("cohort") or {}).get("generator")},
        "extraction": extraction_metrics(sidecar),
    }


def extraction_metrics(sidecar: dict[str, Any]) -> dict[str, Any]:
    return {**{k: sidecar.get(k) for k in ("roles", "encoders", "features_per_family", "masks", "cases", "failed_cases",
                                           "timing", "radiomics_settings_sha256", "radiomics_settings_source", "software")},
            "radiomics_image_types": _image_types(sidecar)}


def timing_metrics(timings: dict[str, float], wall: float, cpu: float, load_start) -> dict[str, Any]:
    return {"wall_seconds": round(wall, 1), "cpu_seconds_main_process": round(cpu, 1), "stages_seconds": timings,
            "load_average_at_start": [round(v, 2) for v in load_start],
            "load_average_at_end": [round(v, 2) for v in os.getloadavg()], "cpus": os.cpu_count(),
            "machine": f"{platform.machine()}, {platform.system()} {platform.release()}",
            "python": sys.version.split()[0], "cervicalai": __version__}


def model_metrics(fit, evaluation: dict[str, Any], bundle, bundle_path: Path) -> dict[str, Any]:
    """One fitted model's figures, selection and bundle, as metrics.json holds them."""
    return {
        "models": evaluation["models"],
        "notes": evaluation["notes"],
        "skipped_cohorts": evaluation["skipped"],
        "cohorts": evaluation["cohorts"],
        "oracle": evaluation["oracle"],
        "selected": {score: {"family": family, "features": fit.model["families"][family]["features"],
                             "coefficients": fit.model["families"][family]["coefficients"]}
                     for score, family in fit.model["scores"].items()},
        "deep_family_cv_auc": fit.family_cv_auc,
        "clinical_retained": fit.clinical_retained,
        "dlrc": {"intercept": fit.dlrc.intercept, "coefficients": fit.dlrc.coefficients},
        "combat": fit.combat_note,
        "fit_warnings": fit.warnings,
        "excluded_cases": int((fit.cases["cohort"] == "excluded").sum()),
        "bundle": {"name": bundle.label, "path": str(bundle_path),
                   "bundle_json_sha256": _sha(bundle.bundle.path / "bundle.json") if bundle.bundle else None},
    }


def _pipeline_cost(config: StudyConfig, sidecar: dict[str, Any], fit_cpu: float) -> dict[str, Any]:
    """CPU minutes of the whole pipeline, including steps an earlier (resumed) run did, and the
    wall time they make on two free cores (generation and extraction run on both, fitting on one)."""
    generation = None
    record = config.work / GENERATION_RECORD
    if config.cohort is None and record.is_file():
        try:
            generation = json.loads(record.read_text(encoding="utf-8"))
        except ValueError:
            generation = None
    timing = sidecar.get("timing") or {}
    per_case = timing.get("all_components_cpu_seconds_per_case")
    cases = (sidecar.get("cases") or {}).get("extracted", 0)
    out: dict[str, Any] = {
        "generation_cpu_minutes": round(generation["cpu_seconds"] / 60, 1) if generation else None,
        "generation_record": generation,
        "extraction_cpu_minutes": round(per_case * cases / 60, 1) if per_case is not None else None,
        "fit_and_statistics_cpu_minutes": round(fit_cpu / 60, 1),
    }
    if out["generation_cpu_minutes"] is not None and out["extraction_cpu_minutes"] is not None:
        out["minutes_on_two_free_cores"] = round(
            (out["generation_cpu_minutes"] + out["extraction_cpu_minutes"]) / 2 + out["fit_and_statistics_cpu_minutes"], 1)
    return out


def _image_types(sidecar: dict[str, Any]) -> dict[str, list[str]]:
    """pyradiomics image types per sequence, read from the settings the extraction recorded."""
    import yaml

    out = {}
    for role, text in (sidecar.get("radiomics_settings") or {}).items():
        try:
            out[role] = list((yaml.safe_load(text) or {}).get("imageType") or {})
        except yaml.YAMLError:
            out[role] = []
    return out


def _sha(path: Path) -> str:
    from CervicalAILib.core.hashing import sha256_file

    return sha256_file(path)


# ----------------------------------------------------------------------------------------------
# Markdown


def _pct(value) -> str:
    return "/" if value is None else f"{100 * value:.1f}%"


def _auc_text(entry: dict[str, Any]) -> str:
    from CervicalAILib.research.stats.tables import format_auc

    return format_auc(entry.get("auc"), entry.get("auc_ci"))


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip()


def _markdown(config: StudyConfig, metrics: dict[str, Any], fits, evaluations, tab_dir: Path, cohort_frame) -> str:
    lnm = metrics["endpoints"]["lnm"]
    timing = metrics["timing"]
    summary_rows = metrics["cohort"]["summary"]
    ext = "external_validation"
    lines = [f"# {metrics['title']}", "",
             f"**{RESEARCH_USE_STATEMENT}** Every number below describes synthetic patients whose true risk is known; "
             "it says how well the pipeline recovers that risk, not how it would do on real patients.", "",
             "Reproduce (one command):", "", "```bash", command_text(config), "```", ""]
    # headline
    if ext in lnm["oracle"]:
        o = lnm["oracle"][ext]
        comparison = o["comparisons"][0]
        from CervicalAILib.research.stats.tables import format_p

        lines += ["## Headline", "",
                  f"- LNM, external validation (centres B-E, n = {o['n']}, {o['n_cases']} with LNM): the fitted **DLRC model "
                  f"AUC {_auc_text(o['scores']['DLRC'])}** against the **generator's oracle AUC "
                  f"{_auc_text(o['scores']['Oracle'])}** (the exact probability given the image-visible tumour biology and "
                  f"c_LNM, the ceiling for any model), difference {_difference_text(comparison)}, DeLong p "
                  f"{format_p(comparison['p'])}. "
                  f"Seed 004 reported a DLRC external AUC of 0.807 on real patients."]
        se = metrics["endpoints"]["stage_group"]["oracle"].get(ext)
        if se:
            lines.append(f"- Stage group (chemoradiotherapy vs surgery), external validation: DLRC AUC "
                         f"{_auc_text(se['scores']['DLRC'])}, oracle AUC {_auc_text(se['scores']['Oracle'])}.")
        lines += [f"- Run time of this run: {timing['wall_seconds'] / 60:.1f} min wall clock on {timing['cpus']} CPU cores "
                  f"(load average {timing['load_average_at_start'][0]:.1f} at the start, "
                  f"{timing['load_average_at_end'][0]:.1f} at the end: the cores were shared with other work); "
                  "stages: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in timing["stages_seconds"].items()) + "."]
        pipeline = timing.get("pipeline") or {}
        if pipeline.get("minutes_on_two_free_cores") is not None:
            lines.append(f"- Cost of the whole pipeline (also the steps an earlier run of the same configuration did, which "
                         f"this command reuses): generation {pipeline['generation_cpu_minutes']:.1f}, extraction "
                         f"{pipeline['extraction_cpu_minutes']:.1f}, fits and statistics "
                         f"{pipeline['fit_and_statistics_cpu_minutes']:.1f} CPU-minutes: "
                         f"**{pipeline['minutes_on_two_free_cores']:.1f} min on two free cores**.")
        lines.append("")
    # design
    generator = metrics["cohort"].get("generator") or {}
    lines += ["## Design", "",
              f"Seed 004 (Bao et al.): 1095 patients of five centres; centre A split 7:3 into training and internal "
              f"validation, centres B-E pooled as external validation ({'/'.join(map(str, SEED004_SIZES))}). Here: "
              f"`{generator.get('regenerate', 'cervicalai synth')}` ({metrics['cohort']['n_cases']} synthetic patients, "
              f"generator {generator.get('version', '?')}, centre shares of seed 004), the same split of centre A "
              f"(stratified by LNM, the same split for both endpoints, seed {config.split_seed}).", "",
              "| Cohort | Centres | n | LNM+ | LNM rate | Chemoradiotherapy group |", "|---|---|---|---|---|---|"]
    for row in summary_rows:
        lines.append(f"| {COHORT_LABELS[row['cohort']]} | {row['centres']} | {row['n']} | {row['lnm_positive']} | "
                     f"{_pct(row['lnm_rate'])} | {row['crt_group']} |")
    extraction = metrics["extraction"]
    sources = extraction.get("masks", {}).get("sources", {})
    failed = extraction.get("failed_cases") or []
    encoders = extraction.get("encoders") or []
    lines += ["", "Pipeline (all engine code; every setting in `metrics.json` and in each bundle's provenance):", "",
              f"1. **Features** (`cervicalai extract`): pyradiomics on {', '.join(extraction.get('roles') or [])}, each "
              "sequence on its own acquisition grid with its own tumour delineation (mask sources: "
              + "; ".join(f"{r}: " + ", ".join(f"{s} {n}" for s, n in v.items()) for r, v in sources.items())
              + f"); {extraction.get('features_per_family', {}).get('radiomics', 0)} radiomics features per case ("
              + ", ".join(sorted({t for types in extraction.get("radiomics_image_types", {}).values() for t in types}))
              + " images; settings: " + ", ".join(sorted(set((extraction.get("radiomics_settings_source") or {}).values())))
              + "), and deep features of "
              + (", ".join(f"{e['name']}@{e['version']} ({e['family']})" for e in encoders) or "no encoder")
              + f". Failed cases: {len(failed)}" + (f" ({', '.join(f['case_id'] for f in failed[:10])})" if failed else "") + ".",
              f"2. **Selection and fitting** (`cervicalai fit`, training cohort only): ComBat ({lnm['combat']}); "
              f"Mann-Whitney U p < {config.mwu_p}; Spearman |rho| > 0.8 removed; LASSO logistic regression (penalty by "
              f"{fits['lnm'].config.selection.lasso_folds}-fold CV, fewer folds when a class has fewer cases); "
              "backward stepwise logistic regression by AIC -> Rad_score, and DL_score from the deep family with the best "
              "cross-validated training AUC; clinical variables with univariate p < 0.05 (FIGO stage excluded as in seed 004); "
              "DLRC = backward stepwise logistic regression over Rad_score, DL_score and those clinical variables.",
              "3. **Statistics** (`CervicalAILib.research.stats`): AUC with DeLong 95% CI; cut-off of maximum Youden index on the "
              "training cohort, carried to the validation cohorts; accuracy, sensitivity, specificity, PPV, NPV; DeLong "
              "tests (paired); Hosmer-Lemeshow (10 groups); decision curves. The Radiomics and DL rows are the "
              "probabilities of their logistic models (sigmoid of Rad_score / DL_score; same AUC as the scores).", ""]
    lines += ["## Table 1. Clinical characteristics", "", _read(tab_dir / "table1_clinical.md").split("\n", 2)[-1], ""]
    for endpoint in ENDPOINTS:
        lines += _endpoint_section(endpoint, metrics["endpoints"][endpoint], fits[endpoint], tab_dir, config)

    for key, result in (metrics.get("variants") or {}).items():
        lines += variant_section(key, result, fits[key], tab_dir, config)
    lines += _seed004_comparison(lnm)
    lines += ["## Limitations", "",
              "- Synthetic data: the anatomy is geometric and the outcome follows a known logistic model of the tumour's "
              "size, cellularity, texture heterogeneity, enhancement heterogeneity, stromal invasion and extension, plus "
              "c_LNM (docs/synthetic_cohort.md). Real tumours carry more, and less tidy, information.",
              "- Seed 004 trained on one centre, as here. ComBat needs at least two centres in the training cohort, so the "
              "fit reports it as not applied; the radiomics settings z-score each image and the deep encoders z-score "
              "each crop, which removes the centres' gain differences but not their noise, contrast and resolution "
              "differences. External-validation losses measure that domain shift.",
              "- The deep encoders are small self-supervised networks trained on other synthetic cases "
              "(docs/deep_features.md), not ImageNet ResNets; seed 004's six DL models are two families here (2D, 3D).",
              "- Training-cohort figures are optimistic (the same cases chose the features); read the validation cohorts.",
              "- No ICC reproducibility filter: seed 004 kept features with ICC > 0.75 between two readers, but the "
              "synthetic cases have one delineation each. With a second contour per case, `cervicalai extract "
              "--mask-label NAME` and `cervicalai icc` give the list that `cervicalai fit --keep-features` applies.",
              ""]
    lines += ["## Files", "",
              "- `metrics.json`: every number above (and more: CIs of every metric, Hosmer-Lemeshow, DeLong statistics), "
              "the configuration, timings, extraction and fit provenance.",
              "- `tables/`: CSV and Markdown of every table; `scores_<endpoint>.csv` (per case: cohort, scores, oracle); "
              "`decision_curve_<endpoint>.csv`.",
              "- `figures/`: ROC, calibration and decision curves per endpoint and cohort; the DLRC nomograms.",
              "- Bundles: " + ", ".join(f"`{v['bundle']['name']}`" for v in metrics["endpoints"].values())
              + " (the shipped defaults " + " and ".join(f"`Resources/Models/{default_entry(e).folder}`" for e in ENDPOINTS)
              + " are copies of a full run's bundles, hashes intact).", ""]
    return "\n".join(lines)


def _endpoint_section(endpoint: str, result: dict[str, Any], fit, tab_dir: Path, config: StudyConfig,
                      name: str | None = None, heading: list[str] | None = None) -> list[str]:
    """The report section of one model: `name` is its key in file names (default: the endpoint's own model),
    `heading` replaces the section's title line."""
    title = ENDPOINT_TITLES[endpoint]
    name = name or endpoint
    lines = list(heading) if heading else [f"## {SHORT_TITLES[endpoint]}: {title}", ""]
    for model, note in result["notes"].items():
        lines.append(f"- {model}: {note}")
    for cohort, reason in result["skipped_cohorts"].items():
        lines.append(f"- {COHORT_LABELS.get(cohort, cohort)} cohort not evaluated: {reason}")
    if result["deep_family_cv_auc"]:
        lines.append(f"- Deep family for DL_score ({fit.config.family_cv_folds}-fold cross-validated training AUC of the "
                     "whole chain): "
                     + ", ".join(f"{f} {a:.3f}" for f, a in result["deep_family_cv_auc"].items()))
    lines.append(f"- Clinical variables retained (p < 0.05): {', '.join(result['clinical_retained']) or 'none'}; "
                 f"DLRC terms: {', '.join(result['dlrc']['coefficients'])}.")
    for warning in result["fit_warnings"]:
        lines.append(f"- Fit warning: {warning}")
    lines += ["", _read(tab_dir / f"models_{name}.md"), "",
              _read(tab_dir / f"table2_{name}.md").replace("predicting the endpoint", f"predicting {title}"), ""]
    if (tab_dir / f"table4_{name}.md").is_file():
        lines += [_read(tab_dir / f"table4_{name}.md"), ""]
    lines += [_read(tab_dir / f"oracle_{name}.md"), ""]
    if endpoint == "lnm":
        sra_lines = []
        for cohort, metrics in result["cohorts"].items():
            sra = (metrics.get("rules") or {}).get("SRA")
            dlrc = metrics["scores"]["DLRC"]
            if sra:
                sra_lines.append(f"| {COHORT_LABELS[cohort]} | {_pct(sra['sensitivity'])} | {_pct(dlrc['sensitivity'])} | "
                                 f"{_pct(sra['specificity'])} | {_pct(dlrc['specificity'])} | {_pct(sra['accuracy'])} | "
                                 f"{_pct(dlrc['accuracy'])} |")
        if sra_lines:
            lines += ["**Comparison with the standardized radiological assessment (SRA)** (DLRC at the training cohort's "
                      "Youden cut-off; seed 004: sensitivity 33.6-37.8% with SRA against 57.1-60.4% with DLRC):", "",
                      "| Cohort | SEN SRA | SEN DLRC | SPE SRA | SPE DLRC | ACC SRA | ACC DLRC |", "|---|---|---|---|---|---|---|",
                      *sra_lines, ""]
    if config.figures:
        cohorts = list(result["cohorts"])
        lines += [f"![DLRC nomogram](figures/nomogram_{name}.png)", ""]
        for kind, caption in (("roc", "ROC curves"), ("calibration", "Calibration (Hosmer-Lemeshow groups)"),
                              ("decision_curve", "Decision curves")):
            lines.append(f"{caption}: " + " ".join(f"![{caption}, {COHORT_LABELS.get(c, c)}](figures/{kind}_{name}_{c}.png)"
                                                   for c in cohorts))
            lines.append("")
    return lines


def _seed004_comparison(lnm: dict[str, Any]) -> list[str]:
    cohorts = ("training", "internal_validation", "external_validation")
    lines = ["## Side by side with seed 004 (LNM, AUC)", "",
             "| Model | Seed 004 training | here | Seed 004 internal | here | Seed 004 external | here |",
             "|---|---|---|---|---|---|---|"]
    dl_name = next((n for n in lnm["models"] if n.startswith("DL")), None)
    for name, published in SEED004_AUC.items():
        ours = "DLRC" if name == "DLRC" else "Radiomics" if name == "Radiomics" else dl_name
        cells = []
        for i, cohort in enumerate(cohorts):
            entry = (lnm["cohorts"].get(cohort) or {}).get("scores", {}).get(ours) if ours else None
            cells += [f"{published[i]:.3f}", f"{entry['auc']:.3f}" if entry else "/"]
        lines.append(f"| {name if ours == name else f'{name} / {ours}'} | " + " | ".join(cells) + " |")
    oracle_cells = []
    for cohort in cohorts:
        entry = (lnm["oracle"].get(cohort) or {}).get("scores", {}).get("Oracle")
        oracle_cells += ["/", f"{entry['auc']:.3f}" if entry else "/"]
    lines.append("| Oracle (generator) | " + " | ".join(oracle_cells) + " |")
    lines.append("")
    return lines


def command_text(config: StudyConfig) -> str:
    """The `cervicalai study-report` command that reproduces this run (options that differ from the defaults)."""
    defaults = StudyConfig(out=config.out)
    parts = ["cervicalai study-report", "--out", shlex.quote(str(config.out))]
    options = [("--seed", "seed"), ("--scale", "scale"), ("--jobs", "jobs"), ("--matrix-scale", "matrix_scale"),
               ("--split-seed", "split_seed"), ("--min-events", "min_events"), ("--mwu-p", "mwu_p")]
    for flag, name in options:
        if getattr(config, name) != getattr(defaults, name) or name == "seed":
            parts += [flag, str(getattr(config, name))]
    if config.work != defaults.work:
        parts += ["--work", shlex.quote(str(config.work))]
    for flag, value in (("--bundles", config.bundles), ("--cohort", config.cohort), ("--settings", config.settings_dir),
                        ("--reference", config.reference)):
        if value is not None:
            parts += [flag, shlex.quote(str(value))]
    if tuple(config.roles) != tuple(defaults.roles):
        parts += ["--roles", ",".join(config.roles)]
    if not config.encoders:
        parts.append("--no-deep")
    elif tuple(config.encoders) != tuple(defaults.encoders):
        parts += ["--encoders", *(shlex.quote(str(e)) for e in config.encoders)]
    if not config.figures:
        parts.append("--no-figures")
    if tuple(config.variants) != tuple(defaults.variants):
        parts += ["--variants", ",".join(config.variants) or "none"]
    if config.variants_only:
        parts.append("--variants-only")
    return " ".join(parts)


# --- risk models fitted besides seed 004's two (the model without contrast) --------------------------------
#
# Risk models of the study fitted besides seed 004's two: the LNM model without contrast.
#
# ESUR's protocol for cervical cancer makes contrast optional, so a study may have no CE-T1WI. The
# variant `lnm_no_contrast` is the same chain as `dlrc-lnm` (same cohort, same split, ComBat, Mann-Whitney
# U, Spearman, LASSO, stepwise AIC, Rad_score + DL_score + clinical variables) with the candidate
# features of every family restricted to T2WI and DWI/ADC; the readout uses it when CE-T1WI is missing.
#
# Its report section compares it, case by case, with the full model and with the generator's oracle on
# every cohort. A full `cervicalai study-report` fits it beside the full model; `--variants-only` fits it
# alone and reads the full model's per-case scores from a bundle fitted on the same cohort and split (by
# default the shipped `dlrc-lnm`), so the shipped full models need not be refitted.

CONTRAST_FREE_ROLES = ("T2W", "ADC", "DWI")
FULL_LABEL = "DLRC (full model)"


@dataclass(frozen=True)
class Variant:
    endpoint: str
    bundle: str  # bundle folder and name (its catalogue entry is the default for the variant's purpose)
    roles: tuple[str, ...]  # the MRI sequences its candidate features may come from
    title: str  # section title
    short: str  # figure titles
    label: str  # its DLRC probability in the comparison with the full model
    statement: str  # added to the bundle's training-data statement
    intended_use: str


VARIANTS = {
    "lnm_no_contrast": Variant(
        endpoint="lnm", bundle="dlrc-lnm-no-contrast", roles=CONTRAST_FREE_ROLES,
        title="LNM without contrast (T2WI + DWI/ADC)", short="LNM without contrast", label="DLRC without contrast",
        statement=(" Model without contrast: the candidate features of every family came from T2W, ADC and DWI only "
                   "(no CE-T1WI feature), the rest of the chain as the full dlrc-lnm model on the same cohort and "
                   "split; the readout uses it when a study has no CE-T1WI."),
        intended_use=("Research use: estimate the probability of pathological pelvic lymph-node metastasis before "
                      "treatment in cervical cancer, as a second opinion for a radiologist, from a reviewed tumour mask "
                      "on pelvic MRI without contrast (T2WI and DWI/ADC) plus clinical values; the readout uses it when "
                      "a study has no CE-T1WI. Not a diagnostic device."),
    ),
}


@dataclass
class Reference:
    """The full model a variant is compared with: its label and per-case scores (case_id, cohort, dlrc_probability)."""

    label: str
    scores: Any


def read_reference(config) -> Reference:
    """The full model of `config.reference` (default: the shipped model of the variants' endpoint), from the
    per-case scores its bundle carries (cohort/scores.csv)."""


    endpoints = sorted({VARIANTS[key].endpoint for key in config.variants})
    if len(endpoints) != 1:
        raise InputError(f"--variants-only compares with one full model; the variants have endpoints {', '.join(endpoints)}")
    path = config.reference or default_bundle_path(endpoints[0])
    model = load_risk_model(path)  # verifies every file's hash
    if model.endpoint != endpoints[0]:
        raise InputError(f"the reference model predicts {model.endpoint!r}, the variants {endpoints[0]!r}", path)
    scores_file = (model.manifest.get("artefacts") or {}).get("scores")
    if not scores_file:
        raise InputError("the reference bundle carries no per-case scores (cohort/scores.csv): fit the full model in "
                         "the same run instead (without --variants-only)", path)
    scores = pd.read_csv(model.bundle.path / scores_file, dtype={"case_id": str, "center": str})
    missing = [c for c in ("case_id", "cohort", "dlrc_probability") if c not in scores.columns]
    if missing:
        raise InputError(f"{scores_file} lacks the column(s) {', '.join(missing)}", path)
    return Reference(label=model.label, scores=scores)


def evaluate_variant(key: str, fit, reference: Reference, cohort_frame, config, fig_dir: Path | None, progress) -> dict[str, Any]:
    """The variant's own figures (as the full model's section) plus, per cohort, its DLRC probability
    against the full model's and the oracle's on the cases both models scored (paired DeLong)."""

    variant = VARIANTS[key]
    evaluation = _evaluate_endpoint(variant.endpoint, fit, cohort_frame, config, fig_dir, progress, name=key,
                                    title=variant.short)
    frame = evaluation["scores_frame"]
    full = reference.scores[["case_id", "cohort", "dlrc_probability"]].rename(
        columns={"cohort": "full_cohort", "dlrc_probability": "full_probability"})
    merged = frame.merge(full, on="case_id", how="inner")
    if merged.empty:
        raise InputError(f"the full model {reference.label} scored none of this cohort's cases: give the full model "
                         "fitted on this cohort (--reference)")
    # the same patients in the same cohorts, or the comparison would mix training and validation cases
    scored = merged[merged["cohort"] != "excluded"]
    moved = scored[(scored["full_cohort"] != scored["cohort"]) & (scored["full_cohort"] != "excluded")]
    if len(moved):
        row = moved.iloc[0]
        raise InputError(f"the full model {reference.label} was fitted on another split ({len(moved)} case(s) differ, e.g. "
                         f"{row['case_id']}: {row['full_cohort']} there, {row['cohort']} here): give the full model "
                         "fitted on this cohort and split (--reference)")
    oracle = ORACLE_COLUMNS[variant.endpoint]
    comparison: dict[str, Any] = {}
    for cohort in cohort_order([c for c in scored["cohort"].unique() if c != "excluded"]):
        part = scored[scored["cohort"] == cohort].dropna(subset=["dlrc_probability", "full_probability", oracle])
        y = part[variant.endpoint].to_numpy(dtype=int)
        if len(y) == 0 or y.min() == y.max():
            continue
        values = {variant.label: part["dlrc_probability"].to_numpy(dtype=float),
                  FULL_LABEL: part["full_probability"].to_numpy(dtype=float),
                  "Oracle": part[oracle].to_numpy(dtype=float)}
        comparison[cohort] = evaluate_scores(y, values)
        if fig_dir is not None:
            fig.roc_figure(fig_dir / f"roc_{key}_vs_full_{cohort}.png", y, values,
                           title=f"{variant.short} vs full model: {COHORT_LABELS.get(cohort, cohort)}")
    evaluation["comparison"] = comparison
    evaluation["reference"] = reference.label
    evaluation["comparison_cases"] = {"both_models": int(len(scored)), "variant_only": int((frame["cohort"] != "excluded").sum()
                                                                                           - len(scored))}
    return evaluation


def _comparison_table(evaluation: dict[str, Any], variant: Variant):


    rows = []
    for cohort, metrics in evaluation["comparison"].items():
        scores = metrics["scores"]
        pairs = {(c["a"], c["b"]): c for c in metrics["comparisons"]}
        against_full, against_oracle = pairs[(variant.label, FULL_LABEL)], pairs[(variant.label, "Oracle")]
        rows.append([COHORT_LABELS.get(cohort, cohort), str(metrics["n"]), str(metrics["n_cases"])]
                    + [format_auc(scores[name]["auc"], scores[name]["auc_ci"]) for name in (variant.label, FULL_LABEL, "Oracle")]
                    + [_difference_text(against_full), format_p(against_full["p"]),
                       _difference_text(against_oracle), format_p(against_oracle["p"])])
    return pd.DataFrame(rows, columns=["Cohort", "n", "Events", f"{variant.label} AUC (95% CI)", f"{FULL_LABEL} AUC (95% CI)",
                                       "Oracle AUC (95% CI)", "Without - full (95% CI)", "DeLong p (vs full)",
                                       "Without - oracle (95% CI)", "DeLong p (vs oracle)"])


def write_variant_tables(tab_dir: Path, key: str, fit, evaluation: dict[str, Any]) -> None:
    variant = VARIANTS[key]
    write_model_tables(tab_dir, key, variant.endpoint, variant.title, fit, evaluation)
    write_table(_comparison_table(evaluation, variant), tab_dir / f"comparison_{key}",
                title=f"{variant.label} against the full model ({evaluation['reference']}) and the generator's oracle, "
                      "paired on the cases both models scored")


def variant_metrics(key: str, fit, evaluation: dict[str, Any], bundle, bundle_path: Path) -> dict[str, Any]:
    variant = VARIANTS[key]
    return {"title": variant.title, "endpoint": variant.endpoint, "candidate_sequences": list(variant.roles),
            **model_metrics(fit, evaluation, bundle, bundle_path),
            "reference": evaluation["reference"], "comparison_cases": evaluation["comparison_cases"],
            "comparison": evaluation["comparison"]}


def variants_metrics(config, cohort: Path, sidecar: dict[str, Any], fits, evaluations, bundles, bundle_paths, timings,
                     wall: float, load_start) -> dict[str, Any]:
    """metrics.json of a --variants-only run."""



    cohort_frame = pd.read_csv(cohort / "cohort.csv", dtype={"case_id": str, "center": str})
    out = metrics_head(config, "Seed 004's DLRC chain: model variants on the study's synthetic multi-centre cohort",
                       cohort, cohort_frame, sidecar)
    out["variants"] = {key: variant_metrics(key, fits[key], evaluations[key], bundles[key], bundle_paths[key])
                       for key in config.variants}
    out["timing"] = timing_metrics(timings, wall, time.process_time(), load_start)
    return out


def variant_section(key: str, result: dict[str, Any], fit, tab_dir: Path, config) -> list[str]:
    """The report section of one variant: how it differs, its figures against the full model and the oracle,
    then the same tables and figures as the full model's section."""

    variant = VARIANTS[key]
    used = sorted({s for score in (fit.model.get("scores") or {}).values()
                   for s in _sequences(fit.model["families"][score]["features"])})
    heading = [f"## {variant.title}: `{variant.bundle}`", "",
               "ESUR's protocol makes contrast optional, and without CE-T1WI the full model cannot score a study. This "
               f"model is the same chain on the same cohort and split, with the candidate features of every family "
               f"restricted to {', '.join(variant.roles)} (no CE-T1WI feature; the fit used {', '.join(used) or 'none'}). "
               "The readout uses it when a study has no CE-T1WI and says so. The comparison below is paired on the "
               f"cases both models scored ({result['comparison_cases']['both_models']}), against the full model "
               f"`{result['reference']}` and the generator's oracle.", ""]
    for cohort in ("internal_validation", "external_validation"):
        metrics = result["comparison"].get(cohort)
        if metrics:
            scores = metrics["scores"]
            heading.append(f"- {COHORT_LABELS[cohort]} (n = {metrics['n']}, {metrics['n_cases']} events): without "
                           f"contrast AUC {_auc_text(scores[variant.label])}, full model {_auc_text(scores[FULL_LABEL])}, "
                           f"oracle {_auc_text(scores['Oracle'])}.")
    heading += ["", _read(tab_dir / f"comparison_{key}.md"), ""]
    if config.figures and result["comparison"]:
        heading += ["ROC against the full model and the oracle: "
                    + " ".join(f"![{COHORT_LABELS.get(c, c)}](figures/roc_{key}_vs_full_{c}.png)" for c in result["comparison"]),
                    ""]
    heading += [f"### The model without contrast in detail ({variant.endpoint}: same tables as the full model)", ""]
    return _endpoint_section(variant.endpoint, result, fit, tab_dir, config, name=key, heading=heading)


def _sequences(features: list[str]) -> set[str]:
    return {role_of(f) for f in features}


def variants_markdown(config, metrics: dict[str, Any], fits, tab_dir: Path) -> str:
    """study_report.md of a --variants-only run: the variant sections (a full run puts them in its report)."""

    generator = (metrics["cohort"].get("generator") or {})
    lines = [f"# {metrics['title']}", "",
             f"**{RESEARCH_USE_STATEMENT}** Every number below describes synthetic patients whose true risk is known.", "",
             "Reproduce (one command):", "", "```bash", command_text(config), "```", "",
             f"Cohort: `{generator.get('regenerate', 'cervicalai synth')}` ({metrics['cohort']['n_cases']} synthetic "
             f"patients, generator {generator.get('version', '?')}); the split of centre A as in the full study "
             f"(seed {config.split_seed}). Only the variants were fitted here; the full model's per-case scores come "
             "from its bundle.", ""]
    for key, result in metrics["variants"].items():
        lines += variant_section(key, result, fits[key], tab_dir, config)
    return "\n".join(lines)
