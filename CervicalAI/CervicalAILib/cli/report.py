"""`cervicalai report`: the per-patient report (self-contained HTML, optional PDF) from a readout folder."""

from __future__ import annotations

import argparse
import logging
import sys

from CervicalAILib.core.errors import InputError
from CervicalAILib.export.deidentify import Deidentifier, load_key
from CervicalAILib.report import default_pdf_path, write_report

EPILOG = """\
READOUT_DIR is what `cervicalai predict ... --out DIR` wrote (readout.json, nomogram.png). The
report shows the case pseudonym, the sequences used, the key image (T2WI at the largest tumour
slice with the contour; ADC and CE-T1WI beside it), tumour volume and FIGO size class, the
nomogram with the patient marked, the LNM probability with the model's operating point, the
stage-group readout, warnings and the models used. Research tool: the shipped models were
trained on synthetic data and are not for clinical use.

--pseudonym shows the patient's keyed pseudonym (HMAC-SHA256 under your secret key, the same one
`cervicalai export --deidentify` uses, so the report and the exported masks name the patient
alike) instead of the readout's case id, which is the case folder's name and may be a record
number. The field is then labelled "Pseudonym" (else "Case").

examples:
  cervicalai report readout/ --out report.html
  cervicalai report readout/ --out report.html --pseudonym --key-file site.key
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
    group = parser.add_argument_group("pseudonym")
    group.add_argument("--pseudonym", "--deidentify", dest="pseudonym", action="store_true",
                       help="show the patient's keyed pseudonym instead of the case id")
    group.add_argument("--key", metavar="KEY", help="secret key for the pseudonym (at least 16 characters; "
                       "default $CERVICALAI_DEID_KEY)")
    group.add_argument("--key-file", metavar="FILE", help="file holding the secret key (safer than --key)")
    group.add_argument("--patient-id", metavar="ID", help="identity the pseudonym is keyed on (default: the "
                       "readout's case folder clinical.json patient_id / case_id, else the readout's case id)")


def run(args: argparse.Namespace) -> int:
    deidentifier = None
    if args.pseudonym:
        deidentifier = Deidentifier(load_key(args.key, args.key_file))
    elif args.key or args.key_file or args.patient_id:
        raise InputError("--key/--key-file/--patient-id given without --pseudonym")
    # matplotlib's PDF backend subsets fonts through fontTools, which logs every table at INFO
    logging.getLogger("fontTools").setLevel(max(logging.getLogger().level, logging.WARNING))
    pdf = default_pdf_path(args.out) if args.pdf is True else args.pdf
    paths = write_report(args.readout, args.out, pdf_path=pdf, overwrite=args.overwrite, deidentifier=deidentifier,
                         patient_id=args.patient_id)
    for note in paths.notes:
        print(f"note: {note}", file=sys.stderr)
    print(paths.html)
    if paths.pdf is not None:
        print(paths.pdf)
    return 0
