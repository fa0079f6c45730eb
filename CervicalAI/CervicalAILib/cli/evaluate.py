"""`cervicalai evaluate`: ROC/AUC with DeLong CIs and tests, Youden cut-offs, calibration, decision curves.

    cervicalai evaluate TABLE.csv --label COL [--positive VALUE] --score COL [--score COL ...]
                       [--unpaired] [--thresholds START:STOP:STEP] --out DIR

writes DIR/metrics.json, DIR/decision_curve.csv, seed-004 Tables 2 and 4 (CSV + Markdown) and
PNG figures (ROC, calibration, decision curves).
"""

from __future__ import annotations

import argparse
import logging

from CervicalAILib.cli.options import int_at_least
from CervicalAILib.core.output_guard import check_output_path
from CervicalAILib.core.progress import line_progress, sub_progress
from CervicalAILib.research.stats.evaluate import evaluate_table, read_cutoffs, read_table, write_evaluation

log = logging.getLogger(__name__)
OUTPUT_FILES = ["*.json", "*.csv", "*.md", "*.png"]  # what evaluate writes (and --overwrite may replace)

EPILOG = """\
examples:
  # aSAH data: outcome "Poor" is the case; compare two scores (paired DeLong test)
  cervicalai evaluate aSAH.csv --label outcome --positive Poor --score wfns --score s100b --out results/

  # seed-004 design: cut-offs chosen on the training cohort, carried to the validation cohorts
  cervicalai evaluate scores.csv --label lnm --score Radiomics --score DL --score DLRC --rule SRA \\
      --group cohort --train-group training --out results/

  # a validation cohort on its own, with the training run's cut-offs
  cervicalai evaluate external.csv --label lnm --score DLRC --cutoff-from train/metrics.json --out external/

conventions:
  A higher score means "more likely a case" unless --direction lower (or auto, pROC's median rule).
  A patient is called positive when score >= cut-off. The cut-off maximises Youden's index
  (sensitivity + specificity - 1) on the data evaluated, on --train-group, or comes from --cutoff-from.
  Scores whose values all lie in [0, 1] are treated as probabilities: they also get the
  Hosmer-Lemeshow test (10 groups), a calibration curve and decision curves.
  Missing scores are left out with a warning (paired: patients lacking any score are left out).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("table", metavar="TABLE", help="CSV (or parquet) table, one row per patient")
    parser.add_argument("--label", required=True, metavar="COL", help="outcome column (e.g. lnm)")
    parser.add_argument("--positive", metavar="VALUE",
                        help="label value that marks a case (e.g. Poor); without it the label must be 0/1 or True/False")
    parser.add_argument("--score", action="append", required=True, metavar="COL", dest="scores",
                        help="score column to evaluate (repeat for several; every pair is compared)")
    parser.add_argument("--rule", action="append", default=[], metavar="COL", dest="rules",
                        help="binary decision column (0/1), e.g. the SRA rule: accuracy, sensitivity, ... without AUC")
    parser.add_argument("--unpaired", action="store_true",
                        help="scores come from different patients: each score keeps its own rows, DeLong unpaired test")
    parser.add_argument("--direction", choices=("higher", "lower", "auto"), default="higher",
                        help="which score values point to a case (default: higher)")
    parser.add_argument("--thresholds", default="0:0.99:0.01", metavar="START:STOP:STEP",
                        help="threshold probabilities of the decision curves (default 0:0.99:0.01)")
    parser.add_argument("--group", metavar="COL", help="also evaluate each cohort in this column separately")
    parser.add_argument("--train-group", metavar="VALUE",
                        help="with --group: choose cut-offs on this cohort and carry them to the others")
    parser.add_argument("--cutoff-from", metavar="METRICS_JSON",
                        help="use the cut-offs (and directions) of an earlier run's metrics.json, e.g. the training cohort's")
    parser.add_argument("--cohort-name", default="All", metavar="NAME",
                        help="name of the cohort in the tables (default All)")
    parser.add_argument("--hl-groups", type=int_at_least(3, 100), default=10, metavar="G",
                        help="Hosmer-Lemeshow groups, 3-100 (default 10)")
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing, non-empty output folder")


def run(args: argparse.Namespace) -> int:
    check_output_path(args.out, [args.table, args.cutoff_from], overwrite=args.overwrite, owned=OUTPUT_FILES)
    line_progress(0.0, "reading table")
    table = read_table(args.table)
    cutoffs = directions = None
    if args.cutoff_from:
        cutoffs, directions = read_cutoffs(args.cutoff_from, args.scores)
    evaluation = evaluate_table(
        table, args.label, args.scores, positive=args.positive, rules=args.rules, paired=not args.unpaired,
        direction=args.direction, cutoffs=cutoffs, cutoff_directions=directions,
        cutoff_from=str(args.cutoff_from) if args.cutoff_from else "given", group=args.group,
        train_group=args.train_group, thresholds=args.thresholds, hl_groups=args.hl_groups,
        cohort_name=args.cohort_name, progress=sub_progress(line_progress, 0.05, 0.4))
    out = write_evaluation(evaluation, args.out, overwrite=args.overwrite, figures=not args.no_figures,
                           progress=sub_progress(line_progress, 0.4, 1.0))
    line_progress(1.0, "done")
    _print_summary(evaluation.metrics)
    print(f"results written to {out}")
    return 0


def _fmt(value, digits: int = 3) -> str:
    return "NA" if value is None else f"{value:.{digits}f}"


def _print_summary(metrics: dict) -> None:
    print(f"{metrics['n']} patients ({metrics['n_cases']} cases, {metrics['n_controls']} controls), "
          f"{'paired' if metrics['paired'] else 'unpaired'} analysis")
    for name, m in metrics["scores"].items():
        ci = m.get("auc_ci") or [None, None]
        print(f"  {name}: AUC {_fmt(m['auc'])} ({_fmt(ci[0])}-{_fmt(ci[1])}), cut-off {m['cutoff']:.6g}, "
              f"sensitivity {_fmt(m['sensitivity'])}, specificity {_fmt(m['specificity'])}")
    for c in metrics["comparisons"]:
        print(f"  {c['a']} vs {c['b']}: difference {_fmt(c['diff'])}, z {_fmt(c['z'])}, p {_fmt(c['p'], 4)}")
