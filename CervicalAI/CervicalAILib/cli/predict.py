"""`cervicalai predict`: the per-patient readout (LNM risk, scores, nomogram, staging)."""

from __future__ import annotations

import argparse
from pathlib import Path

from CervicalAILib.cli.options import output_path
from CervicalAILib.contracts.readout import READOUT_FILE, Readout
from CervicalAILib.contracts.readout_text import summary_text
from CervicalAILib.core.atomic import to_json
from CervicalAILib.core.errors import InputError
from CervicalAILib.core.output_guard import check_output_path
from CervicalAILib.core.progress import line_progress
from CervicalAILib.pipeline import OUTPUT_FILES, load_inputs, predict_case


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "Writes OUT/readout.json (see docs/readout.md), OUT/nomogram.png and .svg, and prints a summary.\n"
        "clinical.json holds the reader's values, e.g.\n"
        '  {"age": 52, "figo_stage": "IB2", "histology": "SCC", "ln_short_axis_mm": 7.5,\n'
        '   "ln_long_axis_mm": 10.0, "ln_necrosis": false, "confined_to_cervix": true, "center": "A"}\n'
        "c_LNM is derived from the short axis (>= 10 mm). Features are computed on each sequence's own\n"
        "grid: give --transforms (the folder written by 'cervicalai study register') to reuse the\n"
        "registration of the segmentation step; otherwise the sequences are registered now.\n"
        "Research tool: the shipped models were trained on synthetic data and are not for clinical use."
    )
    parser.add_argument("case", type=Path, metavar="CASE", help="case folder (T2W.nii.gz, ...) or DICOM study folder")
    parser.add_argument("--mask", required=True, type=Path, help="tumour mask on the T2WI grid (the reviewed segmentation)")
    parser.add_argument("--clinical", type=Path, help="clinical.json (default: CASE/clinical.json when present)")
    parser.add_argument("--bundle", type=Path, help="LNM risk-model bundle (default: the shipped dlrc-lnm)")
    parser.add_argument("--stage-bundle", type=Path, help="stage-group model bundle (default: the shipped one)")
    parser.add_argument("--no-stage", action="store_true", help="skip the stage-group model")
    parser.add_argument("--transforms", type=Path, help="folder with transforms/<ROLE>.tfm from 'study register'")
    parser.add_argument("--center", help="the patient's centre (ComBat harmonisation; unknown -> pooled reference)")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="where the deep-feature encoder runs")
    parser.add_argument("--out", required=True, type=output_path, help="readout folder to write")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--json", action="store_true", help="print readout.json instead of the summary")


def run(args: argparse.Namespace) -> int:
    clinical = args.clinical
    if clinical is None:
        default = args.case / "clinical.json"
        if not default.is_file():
            raise InputError("no clinical values: give --clinical clinical.json (or put clinical.json in the case folder)")
        clinical = default
    check_output_path(args.out, [args.case, args.mask, clinical, args.transforms, args.bundle, args.stage_bundle],
                      overwrite=args.overwrite, owned=OUTPUT_FILES)
    inputs = load_inputs(args.case, args.mask, clinical, transforms_dir=args.transforms, center=args.center)
    readout = predict_case(
        inputs,
        out_dir=args.out,
        lnm_bundle=args.bundle,
        stage_bundle=args.stage_bundle,
        use_stage=not args.no_stage,
        device=args.device,
        overwrite=args.overwrite,
        progress=line_progress,
    )
    if args.json:
        print(to_json(readout), end="")
    else:
        print(summary_text(Readout.from_dict(readout)))
        print(f"  readout: {args.out / READOUT_FILE}")
    return 0
