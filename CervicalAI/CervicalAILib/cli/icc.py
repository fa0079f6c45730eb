"""`cervicalai icc`: feature reproducibility between two segmentations of the same cases.

    cervicalai icc FEATURES_A FEATURES_B --out DIR [--kind ICC3|ICC2] [--threshold 0.75]

writes DIR/icc.csv (one row per feature: ICC, 95% CI, F test, cases, kept) and
DIR/kept_features.txt (one feature name per line, ICC > threshold), as seed 004 does with
two readers' (or one reader's repeated) contours of the same 30 cases.
"""

from __future__ import annotations

import argparse
import logging
import sys

from CervicalAILib.cli.options import float_in
from CervicalAILib.core.atomic import atomic_directory, write_text
from CervicalAILib.core.errors import InputError
from CervicalAILib.core.output_guard import check_output_path
from CervicalAILib.core.progress import line_progress
from CervicalAILib.research.stats.reproducibility import icc_table, read_feature_table, reproducible_features

log = logging.getLogger(__name__)
OUTPUT_FILES = ["icc.csv", "kept_features.txt"]
# Below this many cases an ICC cannot tell a reproducible feature from an unreproducible one (with 2 cases
# nearly every feature passes); below RECOMMENDED_CASES the intervals are wide and the run says so.
MIN_CASES = 5
RECOMMENDED_CASES = 30  # seed 004's 30 doubly delineated cases

EPILOG = """\
input:
  Two feature tables (CSV or parquet) from `cervicalai extract`, one per segmentation (reader 1 and
  reader 2, or reader and automatic contour), each with a `case_id` column. Rows are matched by
  case_id; cases in only one table are left out with a warning. Features are the numeric columns
  present in both tables; when the tables use the project's {ROLE}_feature names (T2W_, ADC_, DWI_,
  CET1_), only those columns are features (clinical and outcome columns are ignored).

kinds:
  ICC3  ICC(3,1), two-way mixed, consistency (default; the usual choice for fixed readers)
  ICC2  ICC(2,1), two-way random, absolute agreement (stricter: a systematic offset lowers it)

example:
  cervicalai icc reader1_features.csv reader2_features.csv --out icc/ --threshold 0.75
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("features_a", metavar="FEATURES_A", help="feature table of the first segmentation")
    parser.add_argument("features_b", metavar="FEATURES_B", help="feature table of the second segmentation")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (icc.csv, kept_features.txt)")
    parser.add_argument("--kind", default="ICC3", type=str.upper, choices=("ICC3", "ICC2"),
                        help="ICC3 = ICC(3,1) consistency (default), ICC2 = ICC(2,1) absolute agreement")
    parser.add_argument("--threshold", type=float_in(-1.0, 1.0), default=0.75,
                        help="keep features with ICC strictly above this value (default 0.75, seed 004)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing, non-empty output folder")


def run(args: argparse.Namespace) -> int:
    check_output_path(args.out, [args.features_a, args.features_b], overwrite=args.overwrite, owned=OUTPUT_FILES)
    line_progress(0.0, "reading feature tables")
    table_a = read_feature_table(args.features_a)
    table_b = read_feature_table(args.features_b)
    common = len(set(table_a["case_id"]) & set(table_b["case_id"])) if "case_id" in table_a and "case_id" in table_b else 0
    if common < MIN_CASES:
        raise InputError(f"the two tables share {common} case(s); an ICC needs at least {MIN_CASES} (seed 004 used "
                         f"{RECOMMENDED_CASES}): with so few, almost any feature looks reproducible")
    line_progress(0.3, f"computing {args.kind} for every feature")
    result = icc_table(table_a, table_b, kind=args.kind)
    kept = reproducible_features(result["icc"], args.threshold)
    result["kept"] = result.index.isin(kept)
    undefined = int(result["icc"].isna().sum())
    if undefined:
        log.warning("%d feature(s) have no ICC (constant over the cases, or fewer than 2 complete cases) "
                    "and are not kept", undefined)
    line_progress(0.9, "writing results")
    with atomic_directory(args.out, overwrite=args.overwrite, owned=OUTPUT_FILES) as tmp:
        write_text(tmp / "icc.csv", result.reset_index().to_csv(index=False, lineterminator="\n", float_format="%.10g"))
        write_text(tmp / "kept_features.txt", "".join(f"{name}\n" for name in kept))
    line_progress(1.0, "done")
    cases = int(result["n_cases"].max()) if len(result) else 0
    print(f"{args.kind} over {cases} case(s): {len(kept)} of {len(result)} feature(s) have ICC > {args.threshold:g}")
    if cases < RECOMMENDED_CASES:
        widths = (result["ci_high"] - result["ci_low"]).dropna()
        width = f"; median 95% CI width {widths.median():.2f}" if len(widths) else ""
        print(f"warning: only {cases} cases (seed 004 used {RECOMMENDED_CASES}){width}: many features kept here may "
              "not be reproducible; read the lower CI bound in icc.csv", file=sys.stderr)
    print(f"results written to {args.out}")
    return 0
