"""`cervicalai export`: corrected tumour masks as annotation data sets (nnU-Net, DICOM SEG, NRRD, NIfTI)."""

from __future__ import annotations

import argparse
import sys

from CervicalAILib.core.errors import InputError
from CervicalAILib.core.progress import line_progress
from CervicalAILib.export.deidentify import Deidentifier, load_key
from CervicalAILib.export.dicom_seg import export_dicom_seg
from CervicalAILib.export.masks import export_mask_file
from CervicalAILib.export.nnunet import export_nnunet

EPILOG = """\
Every export writes a provenance manifest (manifest.json in a data set folder, FILE.manifest.json
beside a single file): case or pseudonym, sequences, how the contour was made (MANUAL,
SEMIAUTOMATIC, AUTOMATIC from the review record), the model that drew the automatic contour,
reviewer, review time, edit metrics, tool version, and the SHA-256 of every exported file.
Nothing is overwritten without --overwrite; folders appear only when complete.

--deidentify applies the DICOM PS3.15 Basic Application Level Confidentiality Profile to every
exported DICOM object and replaces patient identities by keyed pseudonyms (HMAC-SHA256 under your
secret key: the same patient gets the same pseudonym in every export made with the same key).
Keep the key secret and keep it: without it no pseudonym can be recomputed or reversed.

examples:
  cervicalai export nnunet cases/* --out nnUNet_raw --dataset-id 501 --name CervixTumour --reviewed-only
  cervicalai export dicom-seg --mask case/labels/tumor.nii.gz --reference-dicom study/T2_TRA --out seg.dcm
  cervicalai export dicom-seg --mask M --reference-dicom T2 --out partner/seg.dcm --images-out partner/T2 \\
      --deidentify --key-file site.key
  cervicalai export seg-nrrd --mask case/labels/tumor.nii.gz --out tumor.seg.nrrd --reviewed-only
  cervicalai export nifti --mask M --reference case/T2W.nii.gz --out tumor.nii.gz
"""


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--overwrite", action="store_true", help="replace existing output (never done otherwise)")
    group = parser.add_argument_group("de-identification")
    group.add_argument("--deidentify", action="store_true",
                       help="PS3.15 Basic Profile on DICOM, keyed pseudonyms instead of patient IDs and names")
    group.add_argument("--key", metavar="KEY", help="secret key for the keyed pseudonyms (at least 16 characters)")
    group.add_argument("--key-file", metavar="FILE", help="file holding the secret key (safer than --key)")
    group.add_argument("--dates", choices=("shift", "remove"), default="shift",
                       help="de-identified dates: shifted by a per-patient keyed offset (default; keeps intervals) "
                            "or removed")


def _add_reviewed_only(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reviewed-only", action="store_true",
                        help="refuse a mask without a valid review record (MASK.review.json, written by the Segment "
                             "module's Mark as reviewed)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    sub = parser.add_subparsers(dest="export_kind", metavar="KIND", required=True)

    nn = sub.add_parser("nnunet", help="nnU-Net v2 raw data set (imagesTr, labelsTr, dataset.json)",
                        description="Write DIR/DatasetNNN_NAME with every case on its T2WI grid.")
    nn.add_argument("cases", nargs="+", metavar="CASE", help="case folders (T2W.nii.gz ..., labels/tumor.nii.gz)")
    nn.add_argument("--out", required=True, metavar="DIR", help="nnU-Net raw folder (nnUNet_raw) to write into")
    nn.add_argument("--dataset-id", required=True, type=int, metavar="N", help="nnU-Net data set id, 1-999")
    nn.add_argument("--name", required=True, metavar="NAME", help="data set name (letters, digits, _ or -)")
    nn.add_argument("--reviewed-only", action="store_true",
                    help="exclude cases whose tumour mask has no valid review record (listed in the manifest)")
    nn.add_argument("--channels", metavar="ROLES",
                    help="comma-separated sequences, e.g. T2W,ADC (default: those every case has); cases lacking "
                         "one are excluded")
    nn.add_argument("--structures", metavar="NAMES",
                    help="organs to label after the tumour, by name from each case's labels/organs.nii.gz, e.g. "
                         "cervix,uterus,vagina,bladder,rectum (default: the tumour only); cases lacking one are excluded")
    nn.add_argument("--registration", choices=("rigid", "none"), default="rigid",
                    help="sequences not on the T2WI grid: rigid co-registration (default) or plain resampling")
    _add_common(nn)

    seg = sub.add_parser("dicom-seg", help="DICOM SEG referencing the source T2WI series (highdicom)")
    seg.add_argument("--mask", required=True, metavar="MASK", help="tumour mask (NIfTI/NRRD), e.g. labels/tumor.nii.gz")
    seg.add_argument("--reference-dicom", required=True, metavar="SERIES_DIR", help="folder of the T2WI DICOM series")
    seg.add_argument("--series", metavar="SERIES", help="series number/UID when the folder holds several series")
    seg.add_argument("--out", required=True, metavar="FILE", help="SEG file to write, e.g. seg.dcm")
    seg.add_argument("--images-out", metavar="DIR",
                     help="also write the reference images here (de-identified with --deidentify, so that the "
                          "SEG's references resolve for the recipient)")
    _add_reviewed_only(seg)
    _add_common(seg)

    for kind, help_text in (("seg-nrrd", "3D Slicer segmentation file (.seg.nrrd) with tumour terminology"),
                            ("nifti", "binary NIfTI mask (.nii.gz) with clean headers")):
        item = sub.add_parser(kind, help=help_text, description=help_text)
        item.add_argument("--mask", required=True, metavar="MASK", help="tumour mask (NIfTI/NRRD)")
        item.add_argument("--reference", metavar="IMAGE_OR_DICOM_DIR",
                          help="grid to export on (the T2WI file or DICOM series); default the mask's own grid")
        item.add_argument("--patient-id", metavar="ID", help="patient identity for the pseudonym (default: the "
                          "reference's PatientID, else the case folder's clinical.json / name)")
        item.add_argument("--out", required=True, metavar="FILE", help="file to write")
        _add_reviewed_only(item)
        _add_common(item)


def _deidentifier(args: argparse.Namespace):
    if not args.deidentify:
        if args.key or args.key_file:
            raise InputError("--key/--key-file given without --deidentify")
        return None
    return Deidentifier(load_key(args.key, args.key_file), dates=args.dates)


def run(args: argparse.Namespace) -> int:
    deidentifier = _deidentifier(args)
    if args.export_kind == "nnunet":
        channels = [c.strip().upper() for c in args.channels.split(",") if c.strip()] if args.channels else None
        result = export_nnunet(args.cases, args.out, args.dataset_id, args.name, overwrite=args.overwrite,
                               reviewed_only=args.reviewed_only, channels=channels, registration=args.registration,
                               deidentifier=deidentifier, progress=line_progress,
                               structures=[n.strip() for n in args.structures.split(",") if n.strip()]
                               if args.structures else None)
        for item in result.excluded:
            print(f"excluded {item['case']}: {item['reason']}", file=sys.stderr)
        for warning in result.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        print(f"{len(result.cases)} case(s), channels {', '.join(result.channels)}", file=sys.stderr)
        print(result.path)
    elif args.export_kind == "dicom-seg":
        result = export_dicom_seg(args.mask, args.reference_dicom, args.out, series=args.series,
                                  overwrite=args.overwrite, deidentifier=deidentifier, images_out=args.images_out,
                                  reviewed_only=args.reviewed_only, progress=line_progress)
        print(f"segment algorithm type {result.algorithm_type}; manifest {result.manifest_path}", file=sys.stderr)
        print(result.path)
    else:
        path, manifest_path, _ = export_mask_file(args.mask, args.out, kind=args.export_kind, reference=args.reference,
                                                  overwrite=args.overwrite, deidentifier=deidentifier,
                                                  patient_id=args.patient_id, reviewed_only=args.reviewed_only)
        print(f"manifest {manifest_path}", file=sys.stderr)
        print(path)
    return 0
