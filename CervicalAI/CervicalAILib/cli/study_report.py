"""`cervicalai study-report`: the study of Bao et al. (DLRC model for LNM) reproduced on a synthetic multi-centre cohort."""

from __future__ import annotations

import argparse
import sys

from CervicalAILib.core.output_guard import check_output_path
from CervicalAILib.core.progress import line_progress
from CervicalAILib.research.study_report import StudyReportConfig, run_study_report

EPILOG = """\
What it does, in one run (resumable: rerun the same command after an interruption):
  1. generates 1100 x SCALE synthetic patients of five centres (cervicalai synth; Bao et al.'s centre
     shares); centre A is split 7:3 into training / internal validation, centres B-E are the
     external validation cohort (Bao et al.: 481 / 204 / 410);
  2. extracts radiomics (T2WI, DWI, CE-T1WI) and deep features (2D and 3D encoders) for every case
     (cervicalai extract);
  3. fits the Radiomics, DL and DLRC models for LNM and for the stage group on the training cohort
     (cervicalai fit: ComBat, Mann-Whitney U, Spearman, LASSO, stepwise AIC, clinical variables);
  4. evaluates them on the three cohorts (Table 2 with the SRA rule, Table 4 DeLong comparisons,
     ROC, calibration with Hosmer-Lemeshow, decision curves) and against the generator's oracle
     probability, the best any model can do;
  5. writes OUT/study_report.md with its tables (CSV + Markdown) and figures (PNG), OUT/metrics.json,
     and the risk-model bundles dlrc-lnm, dlrc-stage-group and dlrc-lnm-no-contrast (the LNM model
     without contrast: T2WI + DWI/ADC features only, compared with the full model and the oracle)
     (OUT/bundles or --bundles DIR).

--variants-only fits only the variants (dlrc-lnm-no-contrast) on the same cohort and split and reads
the full model's per-case scores from --reference (default: the shipped dlrc-lnm), so that the
shipped full models are not refitted.

The cohort and the feature table go to --work (default OUT.work beside the report): about 16 GB
at full scale. Full scale takes about 75 minutes on two free CPU cores, most of it generating.

examples:
  cervicalai study-report --out study --jobs 2
  cervicalai study-report --out docs/study_report --work /data/study_work --bundles /data/refit --bundle-version 2.0.0
  cervicalai study-report --out tiny --scale 0.05 --matrix-scale 0.4     # a quick look, not a study
  cervicalai study-report --out no_contrast --variants-only --cohort study.work/cohort --work study.work
"""


def _csv_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--out", required=True, metavar="DIR", help="report folder to write")
    parser.add_argument("--seed", type=int, default=4, metavar="S", help="generator seed of the cohort (default 4)")
    parser.add_argument("--scale", type=float, default=1.0, metavar="F",
                        help="cohort size as a fraction of Bao et al.'s (1100 patients at 1.0; default 1.0)")
    parser.add_argument("--jobs", type=int, default=2, metavar="N", help="worker processes (default 2)")
    parser.add_argument("--work", metavar="DIR", help="folder for the cohort and feature table (default: OUT.work)")
    parser.add_argument("--bundles", metavar="DIR",
                        help="write the bundles dlrc-lnm/ and dlrc-stage-group/ here (default: OUT/bundles)")
    parser.add_argument("--cohort", metavar="DIR", help="use this existing cohort instead of generating one")
    parser.add_argument("--bundle-version", default="1.0.0", metavar="V",
                        help="version written into the risk-model bundles (default 1.0.0; bump it on a refit)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing report, bundles, and a work folder made with other options")
    inputs = parser.add_argument_group("features")
    inputs.add_argument("--roles", type=_csv_list, default=["T2W", "DWI", "CET1"], metavar="R1,R2",
                        help="sequences (default T2W,DWI,CET1, as Bao et al.)")
    inputs.add_argument("--encoders", nargs="+", default=["2d,3d"], metavar="2d,3d|PATH",
                        help="deep-feature encoders: 2d, 3d (the shipped encoders) or bundle folders (default 2d,3d)")
    inputs.add_argument("--no-deep", action="store_true", help="no deep features (no DL_score)")
    inputs.add_argument("--settings", metavar="DIR", help="pyradiomics settings folder with <ROLE>.yaml")
    inputs.add_argument("--matrix-scale", type=float, default=1.0, metavar="F",
                        help="generator matrix scale (below 1 for quick looks; default 1)")
    fit = parser.add_argument_group("fit (Bao et al.'s values; change only for smoke tests at tiny scale)")
    fit.add_argument("--split-seed", type=int, default=42, help="seed of the 7:3 split of centre A (default 42)")
    fit.add_argument("--min-events", type=int, default=10,
                     help="refuse to fit with fewer training cases in either outcome class (default 10)")
    fit.add_argument("--mwu-p", type=float, default=0.01, help="Mann-Whitney U threshold (default 0.01)")
    parser.add_argument("--no-figures", action="store_true", help="tables and metrics only")
    variants = parser.add_argument_group("model variants")
    variants.add_argument("--variants", type=_csv_list, default=["lnm_no_contrast"], metavar="V1,V2",
                          help="models fitted besides Bao et al.'s two (default lnm_no_contrast: LNM without contrast; "
                               "'none' for none)")
    variants.add_argument("--variants-only", action="store_true",
                          help="fit only the variants, compared with the full model of --reference")
    variants.add_argument("--reference", metavar="DIR",
                          help="with --variants-only: the full model's bundle, fitted on the same cohort and split "
                               "(default: the shipped dlrc-lnm)")


def config_from_args(args: argparse.Namespace):
    """The StudyReportConfig these command-line options describe."""
    encoders = () if args.no_deep else tuple(item for value in args.encoders for item in _csv_list(value))
    return StudyReportConfig(
        out=args.out, work=args.work, bundles=args.bundles, seed=args.seed, scale=args.scale, jobs=args.jobs,
        matrix_scale=args.matrix_scale, roles=tuple(args.roles), encoders=encoders, settings_dir=args.settings,
        cohort=args.cohort, split_seed=args.split_seed, min_events=args.min_events, mwu_p=args.mwu_p,
        figures=not args.no_figures, overwrite=args.overwrite,
        variants=tuple(v for v in args.variants if v != "none"), variants_only=args.variants_only, reference=args.reference,
        bundle_version=args.bundle_version,
    )


def run(args: argparse.Namespace) -> int:
    inputs = [args.cohort, args.bundles, args.settings, args.reference]
    check_output_path(args.out, inputs, overwrite=True)  # the study report replaces its own folder itself
    if args.work:
        check_output_path(args.work, inputs + [args.out], overwrite=True, option="--work")
    result = run_study_report(config_from_args(args), progress=line_progress)
    lines = [f"report: {result.report} ({result.seconds / 60:.1f} min)"]
    for cohort, metrics in (result.metrics.get("endpoints", {}).get("lnm") or {}).get("oracle", {}).items():
        d, o = metrics["scores"]["DLRC"], metrics["scores"]["Oracle"]
        lines.append(f"LNM {cohort}: DLRC AUC {d['auc']:.3f}, oracle AUC {o['auc']:.3f}")
    for key, variant in (result.metrics.get("variants") or {}).items():
        for cohort, metrics in variant["comparison"].items():
            lines.append(f"{key} {cohort}: " + ", ".join(f"{name} AUC {entry['auc']:.3f}"
                                                          for name, entry in metrics["scores"].items()))
    for endpoint, path in result.bundles.items():
        lines.append(f"bundle {endpoint}: {path}")
    print("\n".join(lines), file=sys.stderr)
    print(result.report)
    return 0
