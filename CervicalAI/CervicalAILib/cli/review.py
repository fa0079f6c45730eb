"""`cervicalai review`: the review worklist of a cohort (status, browser app, agreement, export)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from CervicalAILib.cli import segment
from CervicalAILib.core.atomic import write_text
from CervicalAILib.core.errors import CervicalAIError
from CervicalAILib.core.output_guard import check_output_path
from CervicalAILib.core.progress import line_progress
from CervicalAILib.export.reviewed_set import export_reviewed_set
from CervicalAILib.review.worklist import (
    SEGMENTATION_DIR,
    STATUSES,
    agreement_table,
    open_worklist,
    reader_folder_name,
    status_table,
)

EPILOG = """\
The worklist is a cohort folder (case folders, each with `cervicalai segment CASE --out
CASE/segmentation`; `review prepare` runs that for every case without it) or a CSV of case folders
(column `case`, optional `segmentation`). Each reader's status, working copies and reviewed copies
are kept in COHORT/cervicalai-review/<reader>/<case>/ (see docs/review.md); a reviewed copy is
never replaced, and a reader never writes another reader's files.

examples:
  cervicalai review prepare cohort
  cervicalai review serve cohort --reader "Dr Lee"            # then open the printed address
  cervicalai review status cohort
  cervicalai review agreement cohort --readers "Dr Lee" "Dr Roe" --out agreement.csv
  cervicalai review export cohort --reader "Dr Lee" --format nnunet --dataset-id 501 --name CervixTumour --out nnUNet_raw
  cervicalai review export cohort --reader "Dr Lee" --reader "Dr Roe" --consensus majority --format cases --out consensus
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    sub = parser.add_subparsers(dest="review_command", metavar="ACTION", required=True)

    status = sub.add_parser("status", help="print the worklist: every case's status per reader, and the counts")
    status.add_argument("worklist", type=Path, metavar="COHORT", help="cohort folder or CSV of case folders")
    status.add_argument("--reader", action="append", metavar="NAME", help="only this reader (repeatable)")

    serve = sub.add_parser("serve", help="review and correct the contours in the browser (trame-slicer)",
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           epilog="The server binds to 127.0.0.1 unless --host says otherwise; any other host needs a\n"
                                  "secret (--token-file, --token or CERVICALAI_REVIEW_TOKEN, 16+ characters) and the\n"
                                  "server refuses to start without one. The address to open is printed with the secret.")
    serve.add_argument("worklist", type=Path, metavar="COHORT", help="cohort folder or CSV of case folders")
    serve.add_argument("--reader", required=True, metavar="NAME", help="your name, recorded with every review")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 = any free port)")
    serve.add_argument("--token", help="the secret browsers must present (prefer --token-file)")
    serve.add_argument("--token-file", type=Path, help="file holding the secret")
    serve.add_argument("--ready-file", type=Path, help=argparse.SUPPRESS)  # tests: the address, once serving
    serve.add_argument("--encoder", default=None, choices=("jpeg", "turbo-jpeg", "png", "webp"),
                       help="image encoding of the views (default turbo-jpeg, else jpeg)")

    prepare = sub.add_parser("prepare", help="run the automatic segmentation for every case that has none")
    prepare.add_argument("worklist", type=Path, metavar="COHORT", help="cohort folder or CSV of case folders")
    prepare.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    prepare.add_argument("--model", type=Path, metavar="BUNDLE", help="segmentation model bundle (default: shipped)")

    agreement = sub.add_parser("agreement", help="Dice and HD95 between two readers' reviewed contours")
    agreement.add_argument("worklist", type=Path, metavar="COHORT", help="cohort folder or CSV of case folders")
    agreement.add_argument("--readers", nargs=2, required=True, metavar="NAME", help="the two readers")
    agreement.add_argument("--out", type=Path, help="also write the table as CSV")
    agreement.add_argument("--overwrite", action="store_true", help="replace an existing --out file")

    export = sub.add_parser("export", help="export the reviewed set (nnU-Net, DICOM SEG, .seg.nrrd, NIfTI, case folders)")
    export.add_argument("worklist", type=Path, metavar="COHORT", help="cohort folder or CSV of case folders")
    export.add_argument("--reader", action="append", required=True, metavar="NAME",
                        help="whose reviewed contours (repeat with --consensus for several readers)")
    export.add_argument("--consensus", choices=("majority",),
                        help="several readers: a voxel is tumour when more than half of them marked it")
    export.add_argument("--format", required=True, choices=("cases", "nnunet", "seg-nrrd", "nifti", "dicom-seg"))
    export.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    export.add_argument("--dataset-id", type=int, help="nnU-Net data set id (1-999)")
    export.add_argument("--name", help="nnU-Net data set name")
    export.add_argument("--dicom-root", type=Path, help="dicom-seg: folder with each case's DICOM study as <case_id>/")
    export.add_argument("--overwrite", action="store_true", help="replace an existing output")


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    for line in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)).rstrip())


def _status(args: argparse.Namespace) -> int:
    worklist = open_worklist(args.worklist)
    readers = args.reader or worklist.readers()
    header, rows = status_table(worklist, readers)
    _print_table(header, rows)
    print()
    if not readers:
        print(f"{len(worklist.cases)} case(s); no reader has started yet")
    for name in readers:
        reader = worklist.reader(name)
        counts = reader.counts()
        parts = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s])
        print(f"{reader.folder_name}: {counts['reviewed']} of {len(worklist.cases)} reviewed ({parts})")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    worklist = open_worklist(args.worklist)
    todo = [case for case in worklist.cases if case.segmentation is None]
    print(f"{len(worklist.cases) - len(todo)} case(s) already segmented; segmenting {len(todo)}", file=sys.stderr)
    for number, case in enumerate(todo, start=1):
        print(f"[{number}/{len(todo)}] {case.case_id}", file=sys.stderr)
        status = segment.run(argparse.Namespace(path=case.folder, out=case.folder / SEGMENTATION_DIR, model=args.model,
                                                nnunet_model=None, device=args.device, t2_only=False, json=False,
                                                overwrite=False, into_case=True))
        if status == segment.NO_ANATOMY_EXIT:
            print(f"{case.case_id}: no automatic contour (the reader draws the tumour)", file=sys.stderr)
    return 0


def _agreement(args: argparse.Namespace) -> int:
    import csv
    import io
    import statistics

    if args.out is not None:
        check_output_path(args.out, [args.worklist], overwrite=args.overwrite, kind="file")
    worklist = open_worklist(args.worklist)
    rows = agreement_table(worklist, *args.readers)
    if not rows:
        print("no case was reviewed by both readers")
        return 0
    header = list(rows[0])
    table = [[row[key] if not isinstance(row[key], float) else f"{row[key]:.3f}" for key in header] for row in rows]
    _print_table(header, [["" if c is None else str(c) for c in line] for line in table])
    dice = [row["dice"] for row in rows]
    print(f"\n{len(rows)} case(s) reviewed by both: Dice mean {statistics.fmean(dice):.3f}, median "
          f"{statistics.median(dice):.3f}, min {min(dice):.3f}")
    if args.out is not None:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_text(args.out, out.getvalue())
        print(f"written: {args.out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    check_output_path(args.out, [args.worklist, args.dicom_root], overwrite=args.overwrite)
    worklist = open_worklist(args.worklist)
    result = export_reviewed_set(worklist, args.reader, args.out, args.format, consensus=args.consensus,
                                 dataset_id=args.dataset_id, name=args.name, dicom_root=args.dicom_root,
                                 overwrite=args.overwrite, progress=line_progress)
    for item in result.excluded:
        print(f"excluded {item['case']}: {item['reason']}", file=sys.stderr)
    print(f"{len(result.cases)} case(s) exported", file=sys.stderr)
    print(result.path)
    return 0


def _serve(args: argparse.Namespace) -> int:
    import importlib.util

    if importlib.util.find_spec("CervicalAILib.web") is None:  # the Slicer extension installs no web app
        raise CervicalAIError("the web review app is not part of this installation (the Slicer extension ships the "
                              "serving engine only): run it from a pip install of CervicalAI with the web extra")
    from CervicalAILib.web.security import read_token  # web/ is optional (not installed in Slicer): only here

    reader_folder_name(args.reader)  # a missing or unsafe reader name is refused before anything starts
    token = read_token(args.token, args.token_file)
    open_worklist(args.worklist)
    for package in ("trame", "trame_slicer"):
        if importlib.util.find_spec(package) is None:
            raise CervicalAIError(f"the web review app needs the Python package {package} (`make venv` installs it; "
                                  "or pip install -e '.[web]' and pip install --no-deps -r requirements/web-nodeps.txt)")
    from CervicalAILib.web.server import (
        serve,  # trame / trame-slicer: heavy optional packages, imported only here
    )

    return serve(args.worklist, args.reader, args.host, args.port, token, rca_encoder=args.encoder,
                 ready_file=args.ready_file)


def run(args: argparse.Namespace) -> int:
    return {"status": _status, "serve": _serve, "prepare": _prepare, "agreement": _agreement,
            "export": _export}[args.review_command](args)
