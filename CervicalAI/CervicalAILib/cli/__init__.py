"""The `cervicalai` command line.

Each subcommand lives in its own module in this package and exposes
`add_arguments(parser)` and `run(args) -> int`. `cervicalai ...` imports only the module of the
command it runs (the top-level `--help` comes from the static COMMANDS table), so a command module
imports the engine at module level and `cervicalai --help` stays fast. A command whose module is not
installed (the Slicer extension may leave research commands out) is left out of `--help`.
`python -m CervicalAILib.cli ...` is what Slicer's background process runs.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import importlib.util
import logging
import os
import sys
import traceback
from pathlib import Path

from CervicalAILib import __version__
from CervicalAILib.core.errors import CervicalAIError

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
    ("study-report", "study_report", "reproduce the DLRC study of Bao et al. on a synthetic multi-centre cohort"),
    ("export", "export", "export masks as annotation data sets (nnU-Net, DICOM SEG, NRRD, NIfTI)"),
    ("report", "report", "write the per-patient report (HTML, optional PDF) from a readout folder"),
    ("review", "review", "review worklist: status, review in the browser, reader agreement, export the reviewed set"),
]


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser for `argv`: only the command that argv names has its module imported and its
    arguments added (the others are listed by name and help); argv None loads every installed command."""
    parser = argparse.ArgumentParser(
        prog="cervicalai",
        description="CervicalAI engine: cervical cancer MRI segmentation, radiomics and DLRC nomogram. "
        "Research use only; shipped models were trained on synthetic data.",
    )
    parser.add_argument("--version", action="version", version=f"cervicalai {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    parser.add_argument("--debug", action="store_true",
                        help="show the full Python traceback of an error (also: environment CERVICALAI_DEBUG=1)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = None if argv is None else chosen_command(argv)
    for name, module_name, help_text in COMMANDS:
        if not command_installed(module_name):
            continue
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if argv is None or name == chosen:
            module = importlib.import_module(f"{__name__}.{module_name}")
            module.add_arguments(sub)
            sub.set_defaults(_run=module.run)
    return parser


def chosen_command(argv: list[str]) -> str | None:
    """The command argv names: its first word that is not an option (the top-level options take no value)."""
    return next((word for word in argv if not word.startswith("-")), None)


def command_installed(module_name: str) -> bool:
    return importlib.util.find_spec(f"{__name__}.{module_name}") is not None


def configure_logging(verbose: bool = False, quiet: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="cervicalai: %(levelname)s: %(message)s", stream=sys.stderr)
    # third-party chatter (pyradiomics logs every feature class at INFO)
    for noisy in ("radiomics", "matplotlib", "PIL", "numexpr", "distributed", "highdicom", "fontTools"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


# What an OSError means to the user, by errno (the file it names comes first in the message).
OS_ERROR_WORDS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for the file system or the file size limit",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "is a folder, not a file",
    errno.ENOENT: "no such file or folder",
    errno.ENAMETOOLONG: "the file name is too long",
    errno.ELOOP: "too many levels of symbolic links (a link loop)",
    errno.EIO: "input/output error (a failing disk or network share)",
}


def os_error_line(exc: OSError) -> str:
    """One line for an OSError: the file(s) it names and what went wrong, in words."""
    standard = os.strerror(exc.errno) if exc.errno else None
    custom = exc.strerror if exc.strerror and exc.strerror != standard else None  # the engine's own words
    words = custom or OS_ERROR_WORDS.get(exc.errno or -1) or (exc.strerror or str(exc)).lower()
    files = [str(f) for f in (exc.filename, getattr(exc, "filename2", None)) if f]
    return f"{' -> '.join(files)}: {words}" if files else words


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else [str(word) for word in argv]
    chosen = chosen_command(argv)
    missing = {name for name, module_name, _ in COMMANDS if not command_installed(module_name)}
    if chosen in missing:
        print(f"cervicalai {chosen}: error: this command is not part of this installation", file=sys.stderr)
        return 2
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 1
    configure_logging(args.verbose, args.quiet)
    debug = args.debug or os.environ.get("CERVICALAI_DEBUG", "") not in ("", "0")
    command = args.command
    try:
        return int(args._run(args) or 0)
    except CervicalAIError as exc:
        if debug:
            traceback.print_exc()
        print(f"cervicalai {command}: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cervicalai {command}: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        if debug:
            traceback.print_exc()
        print(f"cervicalai {command}: error: not enough memory for this input (is an image absurdly large?)",
              file=sys.stderr)
        return 2
    except OSError as exc:
        # disk full, read-only folder, permission denied, a path through a file: the user's to fix
        if debug:
            traceback.print_exc()
        print(f"cervicalai {command}: error: {_one_line(os_error_line(exc))}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: one line here, the traceback with --debug
        if debug:
            raise
        where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        place = f" at {Path(where.filename).name}:{where.lineno}" if where else ""
        print(f"cervicalai {command}: internal error ({type(exc).__name__}: {_one_line(str(exc))[:300]}{place}); "
              "please report it with the output of `cervicalai --debug ...`", file=sys.stderr)
        return 1


def _one_line(text: str) -> str:
    return " ".join(text.split())
