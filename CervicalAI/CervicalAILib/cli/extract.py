"""`cervicalai extract`: radiomics and deep features for a whole cohort (parallel, resumable)."""

from __future__ import annotations

import argparse
import sys

from CervicalAILib.cli.options import int_at_least
from CervicalAILib.core.output_guard import check_output_path
from CervicalAILib.core.progress import line_progress
from CervicalAILib.research.cohort import ExtractionConfig, extract_cohort

EPILOG = """\
The cohort is a folder of case folders plus cohort.csv (one row per case: case_id, center,
outcomes such as lnm and stage_group, clinical values). For each case and sequence the tumour
mask is used on the sequence's own grid: its own delineation (labels/tumor_<ROLE>), else the
T2WI mask (labels/tumor) carried by transforms/<ROLE>.tfm from `cervicalai study register`,
else by a registration run on the fly.

The table has one row per case: the cohort.csv columns, then radiomics columns
{ROLE}_{pyradiomics name} (e.g. CET1_wavelet-HLH_gldm_SmallDependenceEmphasis) and deep
columns {ROLE}_dl-{encoder}_F{index} (e.g. CET1_dl-resnet2d_F0123). Beside it, TABLE.json
records the settings, encoders and masks that made it, and the failed cases;
TABLE.parts/ holds each finished case (rerun the same command to resume an interrupted run)
and errors/<case>.log for each failed case. `cervicalai fit TABLE` reads both.

Exit status: 0 every case extracted; 3 the table was written but some cases failed (listed);
2 bad input (nothing written).

examples:
  cervicalai extract cohort/ --out features.parquet --jobs 2
  cervicalai extract cohort/ --out features.csv --roles T2W,ADC,DWI,CET1 --encoders 2d
  cervicalai extract cohort/ --out features.parquet --encoders my-encoder/ --settings my-settings/
  cervicalai extract cohort/ --out features.parquet --scheduler tcp://10.0.0.5:8786
"""


def _csv_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("cohort", metavar="COHORT", help="cohort folder: case folders and cohort.csv")
    parser.add_argument("--out", required=True, metavar="TABLE", help="feature table to write (.parquet or .csv)")
    parser.add_argument("--roles", type=_csv_list, default=["T2W", "DWI", "CET1"], metavar="R1,R2",
                        help="sequences to extract from (T2W, ADC, DWI, CET1; default T2W,DWI,CET1 as seed 004)")
    parser.add_argument("--encoders", nargs="+", default=["2d,3d"], metavar="2d,3d|PATH",
                        help="deep-feature encoders: 2d and/or 3d (the shipped default encoders) or encoder bundle "
                             "folders (default: 2d,3d)")
    parser.add_argument("--no-deep", action="store_true", help="radiomics only (no deep features)")
    parser.add_argument("--settings", metavar="DIR",
                        help="folder with pyradiomics parameter files <ROLE>.yaml (default: the engine's settings)")
    parser.add_argument("--jobs", type=int_at_least(1, 256), default=1, metavar="N",
                        help="worker processes, one case each at a time, one thread each (default 1)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run on an existing Dask cluster (e.g. tcp://host:8786); its workers must see the "
                             "cohort and encoder folders at the same paths")
    parser.add_argument("--no-register", action="store_true",
                        help="never register on the fly: a sequence without its own mask or transform gets the T2WI "
                             "mask through the scanner geometry (with a warning)")
    parser.add_argument("--mask-label", metavar="NAME",
                        help="use labels/NAME (on the T2WI grid) as every sequence's tumour mask, carried by the "
                             "transforms as in the readout (e.g. a second reader's contour for `cervicalai icc`); "
                             "default: each sequence's own labels/tumor_<ROLE>, else labels/tumor")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing table, also when a partial run with other options is there; "
                             "whatever is still valid is reused (e.g. the radiomics of a sequence whose settings did "
                             "not change when only the encoders did)")


class _TerminalBar:
    """A tqdm bar fed by progress(fraction, message) calls."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=1000, unit="‰", file=sys.stderr, dynamic_ncols=True,
                        bar_format="{l_bar}{bar}| [{elapsed}<{remaining}] {postfix}")

    def __call__(self, fraction: float, message: str) -> None:
        target = int(round(1000 * min(max(fraction, 0.0), 1.0)))
        if target > self.bar.n:
            self.bar.update(target - self.bar.n)
        self.bar.set_postfix_str(message[-60:], refresh=True)

    def close(self) -> None:
        self.bar.close()


def run(args: argparse.Namespace) -> int:
    encoders: list[str] = [] if args.no_deep else [item for value in args.encoders for item in _csv_list(value)]
    # an existing table is the command's own business (resume or --overwrite); an input never is
    check_output_path(args.out, [args.cohort, args.settings] + [e for e in encoders if e not in ("2d", "3d")],
                      overwrite=True, kind="file")
    config = ExtractionConfig.build(roles=args.roles, settings_dir=args.settings, encoders=encoders,
                                    register=not args.no_register, mask_label=args.mask_label)
    bar = _TerminalBar() if sys.stderr.isatty() else None
    try:
        result = extract_cohort(args.cohort, args.out, config, jobs=args.jobs, scheduler=args.scheduler,
                                overwrite=args.overwrite, progress=bar or line_progress)
    finally:
        if bar is not None:
            bar.close()
    timing = result.sidecar_data["timing"]
    lines = [f"{len(result.extracted)} of {result.n_cases} case(s) in {result.table} "
             f"({result.reused} reused from an earlier run), sidecar {result.sidecar}"]
    if "cases_per_minute" in timing:
        lines.append(f"{timing['cases_per_minute']:.1f} cases/min, {timing['cpu_seconds_per_case']:.2f} CPU s per case "
                     f"({timing['backend']})")
    elif timing.get("cases_completed_now"):
        lines.append(f"{timing['cases_completed_now']} case(s) completed from earlier parts (only the changed components "
                     f"computed: {timing['cpu_seconds_per_case']:.2f} CPU s per case, {timing['backend']})")
    for failure in result.failed:
        lines.append(f"FAILED {failure['case_id']}: {failure['error']} (log: {failure['log']})")
    print("\n".join(lines), file=sys.stderr)
    print(result.table)
    return 0 if not result.failed else 3
