"""`cervicalai report`: the per-patient report (self-contained HTML, optional PDF) from a readout folder."""

from __future__ import annotations

import argparse
import sys

EPILOG = """\
READOUT_DIR is what `cervicalai predict ... --out DIR` wrote (readout.json, nomogram.png). The
report shows the case pseudonym, the sequences used, the key image (T2WI at the largest tumour
slice with the contour; ADC and CE-T1WI beside it), tumour volume and FIGO size class, the
nomogram with the patient marked, the LNM probability with the model's operating point, the
stage-group readout, warnings and the models used. Research tool: the shipped models were
trained on synthetic data and are not for clinical use.

examples:
  cervicalai report readout/ --out report.html
  cervicalai report readout/ --out report.html --pdf          (also report.pdf)
  cervicalai report readout/ --out report.html --pdf print/patient.pdf
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("readout", metavar="READOUT_DIR", help="readout folder (readout.json + nomogram.png)")
    parser.add_argument("--out", required=True, metavar="FILE.html", help="HTML report to write")
    parser.add_argument("--pdf", nargs="?", const=True, default=None, metavar="FILE.pdf",
                        help="also write a one-page PDF (default name: the HTML's with .pdf)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing report files")


def run(args: argparse.Namespace) -> int:
    from ..report import default_pdf_path, write_report

    pdf = default_pdf_path(args.out) if args.pdf is True else args.pdf
    paths = write_report(args.readout, args.out, pdf_path=pdf, overwrite=args.overwrite)
    for note in paths.notes:
        print(f"note: {note}", file=sys.stderr)
    print(paths.html)
    if paths.pdf is not None:
        print(paths.pdf)
    return 0
