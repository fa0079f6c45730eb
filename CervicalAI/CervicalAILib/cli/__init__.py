"""The `cervicalai` command line.

Each subcommand lives in its own module in this package and exposes
`add_arguments(parser)` and `run(args) -> int`. Command modules import heavy libraries
(torch, pyradiomics, onnxruntime, ...) inside `run`, so that `cervicalai --help` stays fast.
`python -m CervicalAILib.cli ...` is what Slicer's background process runs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .. import __version__
from ..errors import CervicalAIError

# (command, module in this package, one-line help). Order = order in --help.
COMMANDS: list[tuple[str, str, str]] = [
    ("demo", "demo", "run the whole pipeline on a built-in synthetic patient and print the readout"),
    ("study", "study", "inspect a DICOM/NIfTI study or co-register its sequences onto the T2WI grid"),
    ("synth", "synth", "generate a synthetic multi-parametric pelvic MRI cohort with ground truth"),
    ("segment", "segment", "segment the primary tumour (ONNX model bundle, CPU or GPU)"),
    ("train-seg", "train_seg", "train a tumour segmentation network and export it as a model bundle"),
    ("train-encoder", "train_encoder", "train the self-supervised deep-feature encoder and export it"),
    ("predict", "predict", "per-patient readout: radiomics, deep features, scores, nomogram, staging"),
    ("extract", "extract", "extract radiomics and deep features for a whole cohort"),
    ("icc", "icc", "feature reproducibility (ICC) between two segmentations of the same cases"),
    ("fit", "fit", "seed-004 feature selection and model fitting -> model bundle"),
    ("evaluate", "evaluate", "validation statistics: ROC/DeLong, cut-offs, calibration, decision curves"),
    ("study-report", "study_report", "reproduce the seed-004 study on a synthetic multi-centre cohort"),
    ("export", "export", "export masks as annotation data sets (nnU-Net, DICOM SEG, NRRD, NIfTI)"),
    ("report", "report", "write the per-patient report (HTML, optional PDF) from a readout folder"),
    ("review", "review", "review worklist: status, review in the browser, reader agreement, export the reviewed set"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cervicalai",
        description="CervicalAI engine: cervical cancer MRI segmentation, radiomics and DLRC nomogram. "
        "Research use only; shipped models were trained on synthetic data.",
    )
    parser.add_argument("--version", action="version", version=f"cervicalai {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name, help_text in COMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{module_name}":
                continue  # command not built yet
            raise
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def configure_logging(verbose: bool = False, quiet: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="cervicalai: %(levelname)s: %(message)s", stream=sys.stderr)
    # third-party chatter (pyradiomics logs every feature class at INFO)
    for noisy in ("radiomics", "matplotlib", "PIL", "numexpr", "distributed", "highdicom"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 1
    configure_logging(args.verbose, args.quiet)
    try:
        return int(args._run(args) or 0)
    except CervicalAIError as exc:
        print(f"cervicalai {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cervicalai {args.command}: interrupted", file=sys.stderr)
        return 130
