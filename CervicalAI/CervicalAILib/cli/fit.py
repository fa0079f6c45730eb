"""`cervicalai fit`: seed-004 feature selection and model fitting -> risk-model bundle."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from CervicalAILib.bundles.catalog import refuse_shipped_folder
from CervicalAILib.cli.options import float_in, int_at_least
from CervicalAILib.core.errors import InputError
from CervicalAILib.core.output_guard import check_output_path
from CervicalAILib.core.progress import line_progress
from CervicalAILib.research.fit.bundle import write_risk_bundle
from CervicalAILib.research.fit.fit import FitConfig, fit_risk_model
from CervicalAILib.research.fit.selection import SelectionConfig
from CervicalAILib.research.fit.table import SplitSpec, cohort_order, read_feature_table

log = logging.getLogger("cervicalai.fit")

EXAMPLES = """\
examples:
  # seed 004's design: centre A split 7:3 into training / internal validation, other centres external
  cervicalai fit features.parquet --endpoint lnm --train-centers A --train-fraction 0.7 --split-seed 42 --out lnm_bundle
  # cohorts given by a column of the table
  cervicalai fit features.csv --endpoint stage_group --split-column split --train-value train --out stage_bundle

The bundle folder holds the model (model.json), ComBat parameters, the nomogram, the selection log,
MODEL_CARD.md, and cohort/split.csv (case -> cohort) and cohort/scores.csv (every case's scores,
ready for `cervicalai evaluate`).
"""


# What a risk bundle folder holds (fit --overwrite replaces only these).
BUNDLE_FILES = ["bundle.json", "MODEL_CARD.md", "*.json", "*.md", "*.png", "*.svg", "*.csv", "radiomics/*", "cohort/*"]


def _csv_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EXAMPLES
    parser.add_argument("features", metavar="FEATURES", help="feature table (CSV or parquet, one row per case) from "
                        "`cervicalai extract`; its sidecar FEATURES.json, when present, is carried into the bundle")
    parser.add_argument("--endpoint", required=True, metavar="lnm|stage_group|COLUMN",
                        help="lnm: pathological lymph-node metastasis; stage_group: chemoradiotherapy group "
                        "(FIGO IB3, IIA2-IVB) vs surgery group (IA-IB2, IIA1); or the name of any 0/1 column of the "
                        "table (a site's own endpoint, e.g. recurrence)")
    parser.add_argument("--out", required=True, metavar="BUNDLE", help="output bundle folder")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bundle folder")
    split = parser.add_argument_group("training / validation split (default: every case trains)")
    split.add_argument("--train-split", metavar="COLUMN=VALUE",
                       help="shorthand for --split-column COLUMN --train-value VALUE (e.g. split=train)")
    split.add_argument("--split-column", metavar="COLUMN", help="column holding each case's cohort; other values "
                       "('internal', 'external', ...) become validation cohorts")
    split.add_argument("--train-value", default="train", help="value of --split-column that marks training cases "
                       "(default: train)")
    split.add_argument("--train-centers", type=_csv_list, metavar="A[,B]", help="centres whose cases train; other "
                       "centres form the external validation cohort")
    split.add_argument("--train-fraction", type=float_in(0.0, 1.0, low_open=True), default=1.0, help="fraction of the training centres' cases "
                       "that train (stratified by the endpoint); the rest is internal validation (seed 004: 0.7)")
    split.add_argument("--split-seed", type=int, default=42, help="random seed of the stratified split (default 42)")
    sel = parser.add_argument_group("selection (seed 004 defaults)")
    sel.add_argument("--mwu-p", type=float_in(0.0, 1.0, low_open=True), default=0.01, help="Mann-Whitney U threshold (default 0.01)")
    sel.add_argument("--spearman-rho", type=float_in(0.0, 1.0, low_open=True), default=0.8, help="|rho| above which a feature is redundant (0.8)")
    sel.add_argument("--lasso-folds", type=int_at_least(2, 100), default=10, help="cross-validation folds for the LASSO penalty (10)")
    sel.add_argument("--lasso-rule", choices=["min", "1se"], default="min",
                     help="penalty at the minimum CV deviance (min) or the sparsest within one SE (1se)")
    sel.add_argument("--seed", type=int, default=2026, help="seed of the CV folds and the LASSO solver (2026)")
    sel.add_argument("--family-cv-folds", type=int_at_least(2, 100), default=5, help="folds of the cross-validation that picks the "
                     "deep-feature family for DL_score (5)")
    sel.add_argument("--families", type=_csv_list, metavar="F1,F2", help="use only these feature families "
                     "(radiomics, dl-resnet2d, ...)")
    sel.add_argument("--sequences", type=_csv_list, metavar="R1,R2", help="candidate features only from these MRI "
                     "sequences, in every family (e.g. T2W,ADC,DWI for a model without contrast; default: all)")
    sel.add_argument("--max-nan-fraction", type=float_in(0.0, 1.0, high_open=True), default=0.1, help="drop a feature missing in more than this "
                     "fraction of cases (0.1); cases missing a kept feature are excluded and listed")
    clin = parser.add_argument_group("clinical variables")
    clin.add_argument("--clinical", type=_csv_list, metavar="VAR1,VAR2",
                      help="clinical candidates (default: seed 004's: age, parity, menopause, age_at_menopause, "
                      "family_history, figo_stage, c_lnm, histology, scc_ag - those in the table)")
    clin.add_argument("--exclude-clinical", type=_csv_list, default=["figo_stage"], metavar="VAR1,VAR2",
                      help="candidates left out (default figo_stage, as seed 004; pass '' to keep all)")
    clin.add_argument("--clinical-p", type=float_in(0.0, 1.0, low_open=True), default=0.05, help="univariate p threshold (0.05)")
    harm = parser.add_argument_group("harmonisation")
    harm.add_argument("--no-combat", action="store_true", help="do not harmonise features across centres")
    harm.add_argument("--combat-covariates", type=_csv_list, default=[], metavar="VAR1,VAR2",
                      help="numeric columns whose effect ComBat keeps (e.g. age); the readout then needs them")
    sel.add_argument("--keep-features", metavar="FILE", help="reproducible features, one name per line (e.g. "
                     "kept_features.txt from 'cervicalai icc', ICC > 0.75): in each family with a listed feature, "
                     "only the listed features are candidates")
    meta = parser.add_argument_group("bundle description")
    meta.add_argument("--name", help="bundle name (default cervicalai-<endpoint>-dlrc)")
    meta.add_argument("--model-version", default="1.0.0", help="bundle version (default 1.0.0)")
    meta.add_argument("--synthetic", action="store_true", help="state that the training data are synthetic "
                      "(automatic when the feature sidecar says so)")
    meta.add_argument("--training-data", help="plain-words statement of the training data (default: generated)")
    meta.add_argument("--case-lists-out", metavar="DIR", help="write split.csv and scores.csv here instead of into the "
                      "bundle (for a bundle shared beyond those who may see the case IDs)")
    meta.add_argument("--sidecar", help="feature sidecar JSON (default: FEATURES.json beside the table)")


def _summary(result, bundle) -> str:
    lines = [f"bundle {bundle.label} written to {bundle.bundle.path}" if bundle.bundle else "bundle written"]
    cases = result.cases
    counts = ", ".join(f"{c} {int((cases['cohort'] == c).sum())}" for c in cohort_order(cases["cohort"].unique().tolist()))
    lines.append(f"cases: {counts}")
    lines.append(f"ComBat: {result.combat_note}")
    for score, family in result.model["scores"].items():
        fam = result.model["families"][family]
        label = "Rad_score" if score == "rad_score" else "DL_score"
        lines.append(f"{label} ({family}), intercept {fam['intercept']:+.4f}:")
        for name, coefficient in zip(fam["features"], fam["coefficients"]):
            lines.append(f"    {coefficient:+.4f}  {name}")
    if result.family_cv_auc:
        lines.append("deep families, cross-validated training AUC: "
                     + ", ".join(f"{f} {a:.3f}" for f, a in result.family_cv_auc.items()))
    lines.append(f"clinical variables retained (p < {result.config.clinical_p}): {', '.join(result.clinical_retained) or 'none'}")
    lines.append(f"DLRC, intercept {result.dlrc.intercept_:+.4f}:")
    for column, coefficient in result.dlrc.coef_.items():
        lines.append(f"    {coefficient:+.4f}  {column}")
    cut = result.model["cutoffs"]["dlrc_probability"]
    lines.append(f"cut-off (Youden, training): probability >= {cut['cutoff']:.3f}")
    lines.append("AUC            Rad_score  DL_score  DLRC")
    for cohort in cohort_order(list(result.metrics["auc"])):
        auc = result.metrics["auc"][cohort]

        def f(v):
            return "   n/a" if v is None else f"{v:6.3f}"

        lines.append(f"  {cohort:<20} {f(auc.get('rad_score'))}  {f(auc.get('dl_score'))}  {f(auc.get('dlrc_probability'))}")
    excluded = cases[cases["cohort"] == "excluded"]
    for case_id, reason in list(zip(excluded["case_id"], excluded["reason"]))[:20]:
        lines.append(f"excluded: {case_id}: {reason}")
    if len(excluded) > 20:
        lines.append(f"excluded: ... {len(excluded) - 20} more (all in the split list)")
    for warning in result.warnings:
        lines.append(f"warning: {warning}")
    if bundle.bundle is not None and "scores" in bundle.manifest.get("artefacts", {}):
        scores = bundle.bundle.path / bundle.manifest["artefacts"]["scores"]
        lines.append(f"per-case scores: {scores} (e.g. cervicalai evaluate {scores} --label {result.config.endpoint} "
                     "--score rad_score --score dl_score --score dlrc_probability --group cohort --train-group training --out DIR)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    split_column, train_value = args.split_column, args.train_value
    if args.train_split:
        if "=" not in args.train_split:
            raise InputError(f"--train-split {args.train_split!r}: expected COLUMN=VALUE, e.g. split=train")
        split_column, train_value = (part.strip() for part in args.train_split.split("=", 1))
    if split_column and args.train_centers:
        raise InputError("use either a split column (--split-column/--train-split) or --train-centers, not both")
    if args.train_fraction != 1.0 and not args.train_centers:
        raise InputError("--train-fraction needs --train-centers (the centres whose cases are split)")
    inputs = [args.features, args.sidecar, args.keep_features]
    check_output_path(args.out, inputs, overwrite=args.overwrite, owned=BUNDLE_FILES)  # before the long fit
    refuse_shipped_folder(args.out)
    if args.case_lists_out:
        check_output_path(args.case_lists_out, inputs + [args.out], overwrite=args.overwrite, owned=["*.csv"],
                          option="--case-lists-out")
    keep = None
    if args.keep_features:
        keep_path = Path(args.keep_features)
        if not keep_path.is_file():
            raise InputError("reproducible-feature list not found", keep_path)
        keep = [line.strip() for line in keep_path.read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.startswith("#")]
    table = read_feature_table(args.features, sidecar=args.sidecar)
    config = FitConfig(
        endpoint=args.endpoint,
        split=SplitSpec(column=split_column, train_value=train_value, train_centers=args.train_centers,
                        train_fraction=args.train_fraction, seed=args.split_seed),
        selection=SelectionConfig(mwu_p=args.mwu_p, spearman_rho=args.spearman_rho, lasso_folds=args.lasso_folds,
                                  lasso_rule=args.lasso_rule, seed=args.seed),
        clinical=args.clinical,
        exclude_clinical=[c for c in args.exclude_clinical if c],
        clinical_p=args.clinical_p,
        combat=not args.no_combat,
        combat_covariates=args.combat_covariates,
        family_cv_folds=args.family_cv_folds,
        max_nan_fraction=args.max_nan_fraction,
        families=args.families,
        roles=args.sequences,
        keep_features=keep,
        keep_features_source=str(args.keep_features) if args.keep_features else None,
    )
    result = fit_risk_model(table, config, progress=line_progress)
    synthetic = bool(args.synthetic or table.sidecar.get("synthetic"))
    bundle = write_risk_bundle(
        result, args.out, name=args.name or f"cervicalai-{args.endpoint.replace('_', '-')}-dlrc",
        version=args.model_version, synthetic=synthetic, training_data=args.training_data,
        overwrite=args.overwrite, case_lists_dir=args.case_lists_out,
    )
    print(_summary(result, bundle))
    return 0
