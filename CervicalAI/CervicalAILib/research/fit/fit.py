"""Fit a seed-004 risk model (Rad_score, DL_score, DLRC) from a cohort feature table.

Order of work, all on the training cohort unless said otherwise:

1. clean the table: cases whose extraction failed (`extraction_error`, NaN features) or whose
   endpoint is missing are excluded and listed; all-NaN, mostly-NaN (> max_nan_fraction of cases)
   and constant features are dropped and reported; duplicate case IDs are refused.
2. split into cohorts (`SplitSpec`); refuse when the training cohort has fewer than `min_events`
   cases in either outcome class.
3. ComBat per feature family (`harmonise.py`: neuroHarmonize, SITE = centre), learned on training only.
4. seed 004's chain per family (`selection.py`) -> one score per family; the radiomics family
   gives Rad_score; among deep families the one with the best cross-validated AUC on the training
   cohort (the whole chain refitted in each fold; validation cohorts never consulted) gives DL_score.
5. clinical variables: univariate tests (`clinical.py`), keep p < clinical_p.
6. DLRC (`dlrc.py`): backward stepwise logistic regression by AIC over Rad_score, DL_score and the
   retained clinical variables; Youden cut-off on training; training ranges; nomogram.
7. every case of every cohort is scored with the same code the per-patient readout uses.

`_fit_risk_model` runs these steps, one function each; the fitted parts are the serving objects
(`scoring/`: ComBat, FamilyScore, DLRCModel) that `bundle.py` writes with their `to_dict`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from CervicalAILib.contracts.feature_names import RADIOMICS_FAMILY, role_of
from CervicalAILib.core.errors import InputError
from CervicalAILib.core.progress import ProgressCallback, no_progress, sub_progress
from CervicalAILib.core.provenance import software_versions as core_software_versions
from CervicalAILib.io.case import ROLES
from CervicalAILib.research.fit import clinical as clin
from CervicalAILib.research.fit.dlrc import DLRCFit, fit_dlrc
from CervicalAILib.research.fit.harmonise import fit_combat
from CervicalAILib.research.fit.selection import (
    FamilySelection,
    SelectionConfig,
    cross_validated_auc,
    select_family,
)
from CervicalAILib.research.fit.table import (
    CENTER,
    COHORT_TRAINING,
    EXTRACTION_ERROR,
    FeatureTable,
    SplitSpec,
    assign_cohorts,
    cohort_order,
    endpoint_spec,
    endpoint_values,
)
from CervicalAILib.research.stats.thresholds import youden_cutoff as best_youden_cutoff
from CervicalAILib.scoring.combat import ComBat, Harmonisation
from CervicalAILib.scoring.dlrc import DLRCModel, sigmoid
from CervicalAILib.scoring.nomogram import build_nomogram
from CervicalAILib.scoring.patient import SCORE_LABELS, score_patient
from CervicalAILib.scoring.risk_model import MODEL_SCHEMA, RiskModel

log = logging.getLogger(__name__)

# what fits a risk model: recorded in the bundle's provenance
FIT_DISTRIBUTIONS = ("numpy", "scipy", "pandas", "scikit-learn", "statsmodels", "neuroHarmonize", "neuroCombat")


@dataclass
class FitConfig:
    """Everything that decides the fitted model; written in full into the bundle's provenance."""

    endpoint: str = "lnm"
    split: SplitSpec = field(default_factory=SplitSpec)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    clinical: list[str] | None = None  # candidates; None = seed 004's list (those in the table)
    exclude_clinical: list[str] = field(default_factory=lambda: list(clin.DEFAULT_EXCLUDED))
    clinical_p: float = 0.05
    combat: bool = True
    combat_covariates: list[str] = field(default_factory=list)
    family_cv_folds: int = 5
    max_nan_fraction: float = 0.1
    min_events: int = 10
    families: list[str] | None = None  # restrict to these families (default: all in the table)
    # candidate features only from these MRI sequences, in every family (default: every sequence in the
    # table); e.g. ("T2W", "ADC", "DWI") for a model that a study without contrast (CE-T1WI) can use
    roles: list[str] | None = None
    # reproducible features (e.g. `cervicalai icc` kept_features.txt, ICC > 0.75 as in seed 004): in
    # every family that has a feature on the list, the features not on it are left out
    keep_features: list[str] | None = None
    keep_features_source: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "split": self.split.as_dict(),
            "selection": self.selection.as_dict(),
            "clinical_candidates": self.clinical,
            "excluded_clinical": list(self.exclude_clinical),
            "clinical_p": self.clinical_p,
            "combat": self.combat,
            "combat_covariates": list(self.combat_covariates),
            "deep_family_choice": f"highest mean held-out AUC, {self.family_cv_folds}-fold stratified CV on training",
            "family_cv_folds": self.family_cv_folds,
            "max_nan_fraction": self.max_nan_fraction,
            "min_events": self.min_events,
            "families": self.families,
            # only when set, so that the provenance of a fit over every sequence stays as it was
            **({"roles": list(self.roles)} if self.roles is not None else {}),
            "keep_features": None if self.keep_features is None else {
                "source": self.keep_features_source, "count": len(self.keep_features),
                "rule": "in each family with a listed feature, only listed features are candidates"},
        }


@dataclass
class FitResult:
    config: FitConfig
    endpoint_column: str
    cases: Any  # DataFrame: case_id, center, cohort, outcome, status, reason
    dropped_features: dict[str, list[dict[str, str]]]
    combat_note: str
    families: dict[str, FamilySelection]
    family_cv_auc: dict[str, float]
    deep_family: str | None
    clinical_tests: list[dict[str, Any]]
    clinical_variables: dict[str, clin.ClinicalVariable]
    clinical_retained: list[str]
    dlrc: DLRCModel
    dlrc_log: dict[str, Any]  # selection.json "dlrc"
    model: dict[str, Any]  # the model document (model.json)
    harmonisation: Harmonisation  # combat.json: ComBat of the features the scores use
    nomogram: dict[str, Any]
    scores: Any = None  # DataFrame per case, filled by score_cohorts
    metrics: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    table: FeatureTable | None = None

    @property
    def training(self):
        return self.cases[self.cases["cohort"] == COHORT_TRAINING]

    def risk_model(self) -> RiskModel:
        """The fitted parts as the readout composes them (in memory: no bundle, no files)."""
        return RiskModel(
            manifest={"name": "in-memory", "version": "fit", "endpoint": self.config.endpoint},
            model=self.model, nomogram=self.nomogram,
            families={f: s.model for f, s in self.families.items() if s.model is not None},
            dlrc=self.dlrc, harmonisation=self.harmonisation,
        )


def software_versions() -> dict[str, str]:
    """The statistics stack a fit used (recorded in the risk bundle's provenance)."""
    return core_software_versions(distributions=FIT_DISTRIBUTIONS)


# --------------------------------------------------------------------------- cleaning


def _clean(table: FeatureTable, y, config: FitConfig):
    """Excluded cases (id -> reason) and dropped features (family -> [{name, reason}])."""
    frame = table.frame
    reasons: dict[str, str] = {}
    for case_id in frame.index[y.isna()]:
        reasons[case_id] = "endpoint value missing"
    if EXTRACTION_ERROR in frame.columns:
        errors = frame[EXTRACTION_ERROR]
        # empty / NaN / 0 / "false" / "ok" mean no error; anything else is the error message
        failed = errors.map(lambda v: not (v is None or (isinstance(v, float) and np.isnan(v))
                                           or str(v).strip().lower() in ("", "0", "false", "none", "nan", "ok")))
        for case_id in frame.index[failed]:
            reasons.setdefault(case_id, f"extraction failed: {str(errors[case_id]).strip()[:200]}")
    if config.combat and CENTER in frame.columns:
        for case_id in frame.index[frame[CENTER].isna()]:
            reasons.setdefault(case_id, "centre missing (ComBat needs it)")

    families = {f: cols for f, cols in table.families.items() if config.families is None or f in config.families}
    if config.roles is not None:
        unknown_roles = [r for r in config.roles if r not in ROLES]
        if unknown_roles:
            raise InputError(f"unknown sequence(s) {', '.join(unknown_roles)} (known: {', '.join(ROLES)})", table.path)
        families = {f: [c for c in cols if role_of(c) in config.roles] for f, cols in families.items()}
        families = {f: cols for f, cols in families.items() if cols}
        if not families:
            raise InputError(f"no feature column of the sequence(s) {', '.join(config.roles)} in the table", table.path)
    if config.families:
        unknown = [f for f in config.families if f not in table.families]
        if unknown:
            raise InputError(f"feature famil{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)} not in the "
                             f"table (found: {', '.join(table.families)})", table.path)
    dropped: dict[str, list[dict[str, str]]] = {f: [] for f in families}
    kept: dict[str, list[str]] = {f: list(cols) for f, cols in families.items()}
    if config.keep_features is not None:
        listed = set(config.keep_features)
        if not listed & {c for cols in families.values() for c in cols}:
            raise InputError(f"none of the {len(listed)} reproducible features listed ({config.keep_features_source or 'list'}) "
                             "is a column of the feature table", table.path)
        for family, cols in families.items():
            if listed & set(cols):
                kept[family] = [c for c in cols if c in listed]
                dropped[family] += [{"name": c, "reason": "not on the reproducible-feature list (ICC)"}
                                    for c in cols if c not in listed]
    return reasons, kept, dropped


def _drop_missing(frame, train_ids, kept, dropped, config: FitConfig, reasons: dict[str, str]):
    """Missing values, judged on the training cohort only (validation data never steers selection).

    A feature missing in more than `max_nan_fraction` of the training cases is dropped; a training
    case still missing a kept feature is excluded (listed with the feature). Validation cases keep
    their gaps: a score that needs a missing feature is then unavailable for that case, never imputed.
    Returns the training case ids that remain.
    """
    for family, cols in kept.items():
        if not cols:
            continue
        nan_count = frame.loc[train_ids, cols].isna().sum(axis=0)
        keep = []
        for col in cols:
            if nan_count[col] == len(train_ids):
                dropped[family].append({"name": col, "reason": "all values missing (NaN) in the training cohort"})
            elif nan_count[col] > config.max_nan_fraction * len(train_ids):
                dropped[family].append({"name": col, "reason": f"missing in {int(nan_count[col])} of {len(train_ids)} training cases"})
            else:
                keep.append(col)
        kept[family] = keep
    all_kept = [c for cols in kept.values() for c in cols]
    if not all_kept:
        return train_ids
    incomplete = frame.loc[train_ids, all_kept].isna()
    bad = train_ids[incomplete.any(axis=1).to_numpy()]
    for case_id in bad:
        missing = [c for c in all_kept if incomplete.at[case_id, c]]
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        reasons[case_id] = f"training case without feature {missing[0]}{more} (failed extraction)"
    return train_ids[~train_ids.isin(list(bad))]


def _drop_constant(frame, train_ids, kept, dropped):
    for family, cols in kept.items():
        if not cols:
            continue
        values = frame.loc[train_ids, cols].to_numpy(dtype=float)
        constant = np.ptp(values, axis=0) == 0
        for col, flag in zip(cols, constant):
            if flag:
                dropped[family].append({"name": col, "reason": "constant in the training cohort"})
        kept[family] = [c for c, flag in zip(cols, constant) if not flag]


# --------------------------------------------------------------------------- helpers


def youden_cutoff(y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """The statistics module's Youden cut-off (pROC's candidates and tie rule) as a bundle entry, so
    the bundle's cut-off is the one `cervicalai evaluate` chooses on the training cohort."""
    best = best_youden_cutoff(np.asarray(y, dtype=int), np.asarray(score, dtype=float))
    return {"cutoff": best.cutoff, "youden_index": best.youden, "sensitivity": best.sensitivity,
            "specificity": best.specificity}


def value_range(values: np.ndarray) -> dict[str, float]:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return {
        "min": float(values.min()),
        "max": float(values.max()),
        "p01": float(np.percentile(values, 1)),
        "p99": float(np.percentile(values, 99)),
    }


def _auc(y, s) -> float | None:
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y, dtype=int)
    s = np.asarray(s, dtype=float)
    ok = np.isfinite(s)
    if ok.sum() < 2 or len(set(y[ok].tolist())) < 2:
        return None
    return float(roc_auc_score(y[ok], s[ok]))


# --------------------------------------------------------------------------- main entry


def fit_risk_model(table: FeatureTable, config: FitConfig, progress: ProgressCallback | None = None) -> FitResult:
    """Fit Rad_score, DL_score and the DLRC model on `table`; see the module docstring.

    BLAS runs single-threaded here: the fits are many small matrix products, which threads only
    slow down (badly so on a busy machine), and one thread keeps the sums in a fixed order.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _fit_risk_model(table, config, progress)


def _fit_risk_model(table: FeatureTable, config: FitConfig, progress: ProgressCallback | None) -> FitResult:
    progress = progress or no_progress
    warnings_out: list[str] = []
    cohort = _training_cohort(table, config, progress, warnings_out)
    progress(0.05, "ComBat harmonisation")
    harmonised = _harmonise_training(table, config, cohort)
    families, family_cv_auc, deep_family = _select_families(cohort, harmonised, config, progress, warnings_out)
    progress(0.78, "clinical variables")
    clinical_variables, clinical_tests, retained = _clinical_candidates(table, config, cohort, warnings_out)
    progress(0.82, "DLRC model")
    score_family = {"rad_score": RADIOMICS_FAMILY if families.get(RADIOMICS_FAMILY) and families[RADIOMICS_FAMILY].available
                    else None, "dl_score": deep_family}
    score_values = {score: _family_values(families[family], cohort, harmonised)[1]
                    for score, family in score_family.items() if family}
    design, term_columns, term_specs = _dlrc_design(table, config, cohort, score_family, score_values,
                                                    clinical_variables, retained)
    dlrc = fit_dlrc(design, cohort.y_train, term_columns, term_specs, cohort.train_ids, config.endpoint, table.path)
    warnings_out += dlrc.warnings
    nomogram = build_nomogram(dlrc.model.to_dict(), dlrc.term_data, outcome_label=cohort.spec["outcome_label"],
                              endpoint=config.endpoint)
    harmonisation = Harmonisation(
        applied_=any(c is not None for c in harmonised.combat.values()), note_=harmonised.note,
        training_centers_=harmonised.train_centers,
        families_={family: combat.subset(families[family].features) for family, combat in harmonised.combat.items()
                   if combat is not None and family in families and families[family].available},
    )
    model_doc = {
        "schema": MODEL_SCHEMA,
        "endpoint": config.endpoint,
        "endpoint_column": cohort.endpoint_column,
        "positive": cohort.spec["positive"],
        "negative": cohort.spec["negative"],
        "outcome_label": cohort.spec["outcome_label"],
        "scores": {score: family for score, family in score_family.items() if family},
        "families": {f: m.model.to_dict() for f, m in families.items() if m.model is not None},
        "dlrc": dlrc.model.to_dict(),
        "cutoffs": _cutoffs(cohort, dlrc, score_values),
        "training_ranges": _training_ranges(table, cohort, harmonised, families, score_values, dlrc,
                                            clinical_variables, retained),
        "features_used": sorted({f for fam in families.values() for f in fam.features}),
    }
    cases = _case_list(table, config, cohort)
    if harmonisation.applied_:
        warnings_out += _unseen_centre_warnings(cases, harmonised.train_centers)
    result = FitResult(
        config=config, endpoint_column=cohort.endpoint_column, cases=cases, dropped_features=cohort.dropped,
        combat_note=harmonised.note, families=families, family_cv_auc=family_cv_auc, deep_family=deep_family,
        clinical_tests=clinical_tests, clinical_variables=clinical_variables, clinical_retained=retained,
        dlrc=dlrc.model, dlrc_log=dlrc.log, model=model_doc, harmonisation=harmonisation, nomogram=nomogram,
        warnings=warnings_out, table=table,
    )
    progress(0.88, "scoring every case")
    score_cohorts(result)
    progress(1.0, "fit complete")
    return result


# --------------------------------------------------------------------------- the steps


@dataclass
class TrainingCohort:
    """The checked table's cases and candidate features: who trains, what was left out and why."""

    endpoint_column: str
    spec: dict[str, str]  # the endpoint's wording (`table.endpoint_spec`)
    y_all: Any  # Series: the endpoint of every case of the table (NaN when missing)
    reasons: dict[str, str]  # excluded case -> why
    cohorts: Any  # Series: the cohort of every included case
    train_ids: Any  # Index: the training cases that remain
    y_train: np.ndarray
    kept: dict[str, list[str]]  # family -> candidate feature columns (ComBat may drop more)
    dropped: dict[str, list[dict[str, str]]]  # family -> [{name, reason}]


def _training_cohort(table: FeatureTable, config: FitConfig, progress: ProgressCallback,
                     warnings_out: list[str]) -> TrainingCohort:
    """Step 1-2: clean the table, split it, refuse a training cohort with too few events."""
    frame = table.frame
    endpoint = config.endpoint
    y_all, endpoint_column = endpoint_values(table, endpoint)
    classes = sorted(set(y_all.dropna().astype(int).tolist()))
    if len(classes) < 2:
        raise InputError(f"endpoint {endpoint!r} (column {endpoint_column!r}) has only one class "
                         f"({classes[0] if classes else 'no values'}); a risk model needs both", table.path)
    progress(0.01, "checking the feature table")
    reasons, kept, dropped = _clean(table, y_all, config)
    included = frame.index[~frame.index.isin(list(reasons))]
    if len(included) == 0:
        raise InputError("no case left after excluding failed extractions and missing endpoints", table.path)
    y = y_all[included].astype(int)
    cohorts = assign_cohorts(frame.loc[included], y, config.split, table.path)
    train_ids = included[(cohorts == COHORT_TRAINING).to_numpy()]
    train_ids = _drop_missing(frame, train_ids, kept, dropped, config, reasons)
    y_train = y[train_ids].to_numpy()
    n_pos, n_neg = int(y_train.sum()), int(len(y_train) - y_train.sum())
    spec = endpoint_spec(endpoint)
    if min(n_pos, n_neg) < config.min_events:
        which = spec["positive"] if n_pos < n_neg else spec["negative"]
        raise InputError(
            f"the training cohort has only {min(n_pos, n_neg)} case(s) with {which} ({n_pos} positive, {n_neg} negative "
            f"of {len(y_train)}); at least {config.min_events} events are needed to fit a logistic model - refusing to fit",
            table.path,
        )
    _drop_constant(frame, train_ids, kept, dropped)
    for family, items in dropped.items():
        if items:
            warnings_out.append(f"{family}: dropped {len(items)} feature(s) (constant or missing); see selection.json")
    if reasons:
        warnings_out.append(f"excluded {len(reasons)} case(s) (failed extraction or missing endpoint); see split.csv")
    return TrainingCohort(endpoint_column=endpoint_column, spec=spec, y_all=y_all, reasons=reasons, cohorts=cohorts,
                          train_ids=train_ids, y_train=y_train, kept=kept, dropped=dropped)


@dataclass
class HarmonisedTraining:
    """Step 3: each family's training matrix (columns `TrainingCohort.kept[family]`), harmonised when
    ComBat was learned, and the learned parameters (None per family when not applied)."""

    note: str
    train_centers: list[Any]
    combat: dict[str, ComBat | None]
    values: dict[str, np.ndarray]


def _combat_note(table: FeatureTable, config: FitConfig, train_centers: list[Any]) -> str:
    if not config.combat:
        return "not applied (disabled)"
    if CENTER not in table.frame.columns:
        raise InputError(f"no {CENTER!r} column: ComBat needs the centre of every case (or fit without ComBat)", table.path)
    if len(train_centers) < 2:
        return (f"not applied: the training cohort comes from one centre ({', '.join(train_centers)}), so there is no "
                "centre effect to estimate")
    return f"ComBat learned on the training cohort, centres {', '.join(train_centers)}"


def _combat_covariates(table: FeatureTable, config: FitConfig, train_ids) -> dict[str, np.ndarray] | None:
    import pandas as pd  # research extra

    if not config.combat_covariates:
        return None
    frame = table.frame
    missing_cov = [c for c in config.combat_covariates if c not in frame.columns]
    if missing_cov:
        raise InputError(f"ComBat covariate column(s) not found: {', '.join(missing_cov)}", table.path)
    cov_frame = frame.loc[train_ids, config.combat_covariates].apply(pd.to_numeric, errors="coerce")
    if cov_frame.isna().any().any():
        bad = cov_frame.index[cov_frame.isna().any(axis=1)][:5]
        raise InputError(f"ComBat covariates missing/non-numeric for training case(s) {', '.join(bad)}", table.path)
    return {c: cov_frame[c].to_numpy() for c in config.combat_covariates}


def _harmonise_training(table: FeatureTable, config: FitConfig, cohort: TrainingCohort) -> HarmonisedTraining:
    """ComBat per family, learned on the training cohort; drops the features it cannot harmonise."""
    frame, train_ids, kept, dropped = table.frame, cohort.train_ids, cohort.kept, cohort.dropped
    train_centers = sorted(set(frame.loc[train_ids, CENTER].dropna())) if CENTER in frame.columns else []
    note = _combat_note(table, config, train_centers)
    covariates = _combat_covariates(table, config, train_ids)
    learn = config.combat and len(train_centers) >= 2
    train_center_of_case = frame.loc[train_ids, CENTER].to_numpy() if CENTER in frame.columns else None
    combat: dict[str, ComBat | None] = {}
    harmonised_train: dict[str, np.ndarray] = {}
    for family, cols in kept.items():
        values = frame.loc[train_ids, cols].to_numpy(dtype=float)
        if cols and learn:
            # ComBat scales each centre by its own variance: a feature constant within a centre cannot be harmonised
            flat = np.zeros(len(cols), dtype=bool)
            for center in train_centers:
                rows = train_center_of_case == center
                newly = (np.ptp(values[rows], axis=0) == 0) & ~flat
                for col in np.asarray(cols)[newly]:
                    dropped[family].append({"name": str(col), "reason": f"constant within training centre {center} "
                                            "(ComBat cannot harmonise it)"})
                flat |= newly
            cols = [c for c, f in zip(cols, flat) if not f]
            kept[family] = cols
            values = values[:, ~flat]
        if cols and learn:
            params, harmonised = fit_combat(values, frame.loc[train_ids, CENTER].tolist(), cols, covariates)
            bad = ~np.all(np.isfinite(harmonised), axis=0)
            for col in np.asarray(cols)[bad]:
                dropped[family].append({"name": str(col), "reason": "ComBat gave non-finite values"})
            kept[family] = [c for c, b in zip(cols, bad) if not b]
            harmonised_train[family] = harmonised[:, ~bad]
            combat[family] = params
        else:
            harmonised_train[family] = values
            combat[family] = None
    return HarmonisedTraining(note=note, train_centers=train_centers, combat=combat, values=harmonised_train)


def _select_families(cohort: TrainingCohort, harmonised: HarmonisedTraining, config: FitConfig,
                     progress: ProgressCallback, warnings_out: list[str]
                     ) -> tuple[dict[str, FamilySelection], dict[str, float], str | None]:
    """Step 4: the selection chain per family; the deep family with the best cross-validated AUC."""
    kept, y_train = cohort.kept, cohort.y_train
    families: dict[str, FamilySelection] = {}
    names = [f for f in kept if kept[f]]
    for k, family in enumerate(names):
        progress(0.10 + 0.45 * k / max(len(names), 1), f"feature selection: {family}")
        families[family] = select_family(family, harmonised.values[family], kept[family], y_train, config.selection)
        if not families[family].available:
            warnings_out.append(f"{family}: no score ({families[family].log.get('stopped')})")
        elif families[family].log.get("stepwise", {}).get("skipped"):
            warnings_out.append(f"{family}: {len(families[family].features)} LASSO feature(s) separate the training "
                                "classes perfectly; the score is the LASSO model (no stepwise AIC refit)")
    deep = [f for f in families if f != RADIOMICS_FAMILY and families[f].available]
    family_cv_auc: dict[str, float] = {}
    if len(deep) > 1:
        report = sub_progress(progress, 0.55, 0.75)
        for k, family in enumerate(deep):
            report(k / len(deep), f"cross-validating the chain: {family}")
            family_cv_auc[family] = cross_validated_auc(family, harmonised.values[family], kept[family], y_train,
                                                        config.selection, config.family_cv_folds)
        deep_family = max(deep, key=lambda f: (family_cv_auc[f], -deep.index(f)))
    else:
        deep_family = deep[0] if deep else None
    return families, family_cv_auc, deep_family


def _clinical_candidates(table: FeatureTable, config: FitConfig, cohort: TrainingCohort, warnings_out: list[str]
                         ) -> tuple[dict[str, clin.ClinicalVariable], list[dict[str, Any]], list[str]]:
    """Step 5: univariate tests of the clinical candidates; (variables, tests, retained names)."""
    frame, endpoint = table.frame, config.endpoint
    candidates = list(config.clinical) if config.clinical is not None else [c for c in clin.DEFAULT_CLINICAL if c in frame.columns]
    circular = [c for c in candidates if c in clin.DEFINES_ENDPOINT.get(endpoint, ()) or c == cohort.endpoint_column]
    if config.clinical is not None and circular:
        raise InputError(f"clinical variable(s) {', '.join(circular)} define the {endpoint!r} endpoint; "
                         "they cannot be predictors of it")
    missing_clinical = [c for c in candidates if c not in frame.columns]
    if missing_clinical:
        raise InputError(f"clinical column(s) not found: {', '.join(missing_clinical)}", table.path)
    if circular and not set(circular) <= set(config.exclude_clinical):
        warnings_out.append(f"clinical candidate(s) {', '.join(circular)} left out: they define the {endpoint!r} endpoint")
    excluded_clinical = set(config.exclude_clinical) | set(circular)
    candidates = [c for c in candidates if c not in excluded_clinical]
    variables: dict[str, clin.ClinicalVariable] = {}
    tests: list[dict[str, Any]] = []
    retained: list[str] = []
    for name in candidates:
        values = frame.loc[cohort.train_ids, name].tolist()
        variable = clin.infer_variable(name, values)
        result = clin.univariate_test(variable, values, cohort.y_train)
        tests.append(result.as_dict() | {"retained": result.p < config.clinical_p})
        variables[name] = variable
        if result.p < config.clinical_p:
            retained.append(name)
    return variables, tests, retained


def _family_values(selection: FamilySelection, cohort: TrainingCohort, harmonised: HarmonisedTraining
                   ) -> tuple[np.ndarray, np.ndarray]:
    """A family's chosen features over the training cohort (harmonised) and its score per training case."""
    kept = cohort.kept[selection.family]
    values = harmonised.values[selection.family][:, [kept.index(f) for f in selection.features]]
    return values, selection.model.decision_function(values)


def _dlrc_design(table: FeatureTable, config: FitConfig, cohort: TrainingCohort, score_family: dict[str, str | None],
                 score_values: dict[str, np.ndarray], variables: dict[str, clin.ClinicalVariable], retained: list[str]
                 ) -> tuple[np.ndarray, dict[str, list[str]], dict[str, dict[str, Any]]]:
    """Step 6a: the DLRC candidates' training design: (matrix, term -> its columns, term -> its bundle entry)."""
    term_columns: dict[str, list[str]] = {}
    design_parts: list[np.ndarray] = []
    term_specs: dict[str, dict[str, Any]] = {}
    for score, values in score_values.items():
        term_columns[score] = [score]
        design_parts.append(values.reshape(-1, 1))
        term_specs[score] = {"name": score, "label": SCORE_LABELS[score], "kind": "score", "family": score_family[score],
                             "columns": [score]}
    for name in retained:
        variable = variables[name]
        term_columns[name] = variable.columns
        design_parts.append(variable.encode(table.frame.loc[cohort.train_ids, name].tolist()))
        term_specs[name] = variable.as_dict() | {"kind": variable.kind, "columns": variable.columns}
    if not term_columns:
        raise InputError("no predictor for the DLRC model: no family gave a score and no clinical variable had "
                         f"p < {config.clinical_p}; the data show no usable signal for {config.endpoint!r}", table.path)
    return np.hstack(design_parts), term_columns, term_specs


def _cutoffs(cohort: TrainingCohort, dlrc: DLRCFit, score_values: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """Step 6b: Youden cut-offs on the training cohort, of the DLRC probability and of each score."""
    cutoffs = {"dlrc_probability": youden_cutoff(cohort.y_train[dlrc.complete], sigmoid(dlrc.linear_predictor))
               | {"chosen_on": COHORT_TRAINING}}
    for score, values in score_values.items():
        cutoffs[score] = youden_cutoff(cohort.y_train, values) | {"chosen_on": COHORT_TRAINING}
    return cutoffs


def _training_ranges(table: FeatureTable, cohort: TrainingCohort, harmonised: HarmonisedTraining,
                     families: dict[str, FamilySelection], score_values: dict[str, np.ndarray], dlrc: DLRCFit,
                     variables: dict[str, clin.ClinicalVariable], retained: list[str]) -> dict[str, Any]:
    """Step 6c: training ranges of the features used, the scores, the clinical values and the DLRC log-odds."""
    ranges: dict[str, Any] = {"features": {}, "scores": {}, "clinical": {},
                              "dlrc_linear_predictor": value_range(dlrc.linear_predictor)}
    for family, selection in families.items():
        if not selection.available:
            continue
        values, scores = _family_values(selection, cohort, harmonised)
        for j, feature in enumerate(selection.features):
            ranges["features"][feature] = value_range(values[:, j])
        ranges["scores"][family] = value_range(scores)
    for score, values in score_values.items():
        ranges["scores"][score] = value_range(values)
    for name in retained:
        if variables[name].kind == "continuous":
            ranges["clinical"][name] = value_range(variables[name].encode(table.frame.loc[cohort.train_ids, name].tolist())[:, 0])
    return ranges


def _case_list(table: FeatureTable, config: FitConfig, cohort: TrainingCohort):
    """cohort/split.csv: every case of the table with its cohort, endpoint and why it was excluded."""
    import pandas as pd  # research extra

    frame = table.frame
    return pd.DataFrame({
        "case_id": frame.index,
        "center": frame[CENTER].to_numpy() if CENTER in frame.columns else None,
        "cohort": [cohort.cohorts.get(c, "excluded") if c not in cohort.reasons else "excluded" for c in frame.index],
        config.endpoint: [None if np.isnan(v) else int(v) for v in cohort.y_all.to_numpy()],
        "reason": [cohort.reasons.get(c, "") for c in frame.index],
    }).reset_index(drop=True)


def _unseen_centre_warnings(cases, train_centers: list[Any]) -> list[str]:
    included = cases["cohort"] != "excluded"
    unseen = sorted({c for c in cases.loc[included, "center"].dropna()} - set(train_centers))
    return [f"centre {center} ({int(((cases['center'] == center) & included).sum())} case(s)) was not in the training "
            "cohort: ComBat uses the pooled reference of the training centres for its cases" for center in unseen]


def score_cohorts(result: FitResult) -> None:
    """Score every included case with the per-patient code path; fill result.scores and metrics."""
    import pandas as pd  # research extra

    model = result.risk_model()
    needed = result.model["features_used"]
    clinical_names = [t["name"] for t in result.dlrc.terms_ if t["kind"] != "score"]
    columns = list(dict.fromkeys(needed + clinical_names + list(result.config.combat_covariates)))
    frame = result.table.frame[columns]  # only what scoring reads: rows of a wide table are slow to build
    rows = []
    included = result.cases[result.cases["cohort"] != "excluded"]
    outcome = dict(zip(result.cases["case_id"], result.cases[result.config.endpoint]))
    out_of_range: dict[str, int] = {}
    for case_id, center, cohort in zip(included["case_id"], included["center"], included["cohort"]):
        row = frame.loc[case_id]
        features = {f: float(row[f]) for f in needed}
        clinical_values = {c: _plain(row[c]) for c in clinical_names}
        covariates = {c: _plain(row[c]) for c in result.config.combat_covariates}
        scored = score_patient(model, features, clinical_values, center=center, covariates=covariates,
                               all_families=True, strict_clinical=False)
        for warning in scored["warnings"]:
            if "outside the training range" in warning:
                out_of_range[cohort] = out_of_range.get(cohort, 0) + 1
        record = {"case_id": case_id, "center": center, "cohort": cohort,
                  result.config.endpoint: int(outcome[case_id]),
                  "rad_score": scored["rad_score"], "dl_score": scored["dl_score"]}
        for family, value in scored["family_scores"].items():
            record[f"score_{family}"] = value
        record["dlrc_linear_predictor"] = scored["linear_predictor"]
        record["dlrc_probability"] = scored["probability"]
        record["harmonisation"] = scored["harmonisation"]["mode"]
        rows.append(record)
    scores = pd.DataFrame(rows)
    result.scores = scores
    metrics: dict[str, Any] = {"auc": {}, "n": {}, "events": {}}
    score_cols = [c for c in scores.columns if c in ("rad_score", "dl_score", "dlrc_probability") or c.startswith("score_")]
    for cohort in cohort_order(scores["cohort"].unique().tolist()):
        part = scores[scores["cohort"] == cohort]
        y = part[result.config.endpoint].to_numpy()
        metrics["n"][cohort] = int(len(part))
        metrics["events"][cohort] = int(np.sum(y))
        metrics["auc"][cohort] = {c: _auc(y, part[c].to_numpy(dtype=float)) for c in score_cols}
    metrics["family_cv_auc"] = result.family_cv_auc
    metrics["cases_with_out_of_range_warnings"] = out_of_range
    result.metrics = metrics


def _plain(value: Any) -> Any:
    """numpy/pandas scalar -> plain Python (None for missing)."""
    if value is None:
        return None
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value
