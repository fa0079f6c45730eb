"""`cervicalai segment`: automatic contour of the primary tumour on a case folder or DICOM study."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from CervicalAILib.cli.options import output_path
from CervicalAILib.contracts.segmentation import SEGMENTATION_SUMMARY
from CervicalAILib.core.atomic import to_json
from CervicalAILib.core.errors import InputError
from CervicalAILib.core.output_guard import check_output_path
from CervicalAILib.core.progress import line_progress
from CervicalAILib.pipeline.segment import segment_patient, write_patient_segmentation
from CervicalAILib.segmentation.outputs import OUTPUT_FILES

# Exit status when the anatomy gate recognised no cervix or uterus (no tumour contour written);
# 0 = segmented (a tumour or "no tumour found"), 2 = an error the message names.
NO_ANATOMY_EXIT = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "Writes into DIR:\n"
        "  tumor.nii.gz               the tumour mask on the T2WI grid (0/1)\n"
        "  tumor_probability.nii.gz   the network's tumour probability (0-255 = 0-100%)\n"
        "  segmentation.json          volume (mL), maximum 3D diameter (mm), confidence, the T2WI slices to\n"
        "                             check first (lowest confidence), organs with volumes, anatomy gate,\n"
        "                             out-of-distribution score, model, device, seconds, warnings\n"
        "  organs.nii.gz, organs.json the anatomical structures (label map; name -> value), when the model has them\n"
        "DWI/ADC (and CE-T1WI) are co-registered onto the T2WI first. Without ADC or DWI the T2WI-only\n"
        "model is used, and segmentation.json says so. The shipped models were trained on synthetic\n"
        "data and are not for clinical use: review every contour.\n"
        f"Exit status: 0 segmented (tumour or no tumour found); {NO_ANATOMY_EXIT} no cervix or uterus recognised in\n"
        "this study (no tumour mask is written; `predict` then needs a reviewed contour); 2 error."
    )
    parser.add_argument(
        "path", type=Path, metavar="CASE_OR_STUDY",
        help="a case folder (T2W.nii.gz, ADC.nii.gz, DWI.nii.gz, CET1.nii.gz) or a DICOM study folder",
    )
    parser.add_argument("--out", required=True, type=output_path, metavar="DIR", help="output folder (created)")
    parser.add_argument(
        "--model", type=Path, metavar="BUNDLE",
        help="segmentation model bundle folder (default: the shipped multi-sequence model, with the "
        "T2WI-only model as fallback)",
    )
    parser.add_argument(
        "--nnunet-model", type=Path, metavar="FOLDER",
        help="a site's own trained nnU-Net v2 model folder (with dataset.json, plans.json and fold_N/"
        "checkpoint_final.pth), run with nnU-Net's own predictor instead of a bundle; its labels are "
        "mapped to ours by the names in dataset.json (needs torch and nnunetv2; see docs/segmentation.md)",
    )
    parser.add_argument(
        "--device", choices=("cpu", "gpu"), default="cpu",
        help="run the network on the CPU (default) or on a CUDA GPU when onnxruntime-gpu (torch for "
        "--nnunet-model) can use one (falls back to the CPU, and says so, when it cannot)",
    )
    parser.add_argument("--t2-only", action="store_true", help="use only the T2WI (skip DWI/ADC/CE-T1WI)")
    parser.add_argument("--json", action="store_true", help="print segmentation.json to standard output")
    parser.add_argument("--overwrite", action="store_true", help="replace DIR if it exists (never done otherwise)")


def _model_label(summary: dict) -> str:
    model = summary.get("model") or {}
    return str(model.get("label")) + (" (user-supplied)" if model.get("source") == "user-supplied" else "")


def run(args: argparse.Namespace) -> int:
    if args.nnunet_model is not None and args.model is not None:
        raise InputError("give either --model or --nnunet-model, not both")
    # the review worklist (`review prepare`) keeps each case's segmentation in CASE/segmentation/ by design
    inside_ok = [args.path] if getattr(args, "into_case", False) else []
    out = check_output_path(args.out, [args.path, args.model, args.nnunet_model], overwrite=args.overwrite,
                            owned=OUTPUT_FILES, inside_ok=inside_ok)
    segmentation = segment_patient(args.path, bundle=args.model, nnunet_model=args.nnunet_model, device=args.device,
                                   t2_only=args.t2_only, progress=line_progress)
    write_patient_segmentation(segmentation, out, overwrite=args.overwrite)
    summary = json.loads((out / SEGMENTATION_SUMMARY).read_text(encoding="utf-8"))
    status = 0 if segmentation.anatomy_recognised else NO_ANATOMY_EXIT
    if args.json:
        sys.stdout.write(to_json(summary))
        return status
    if not segmentation.anatomy_recognised:
        print(f"{summary['message']}: no tumour contour (model {_model_label(summary)})")
    elif summary["tumor_found"]:
        print(
            f"tumour: {summary['volume_ml']:.2f} mL, maximum diameter {summary['max_diameter_mm']:.1f} mm, "
            f"confidence {summary['confidence']:.2f} (model {_model_label(summary)}, {summary['device']['provider']})"
        )
        if summary["flagged_slices"]:
            # numbered from 1 as Slicer and the report show them (segmentation.json keeps 0-based indices)
            slices = ", ".join(f"{s['slice'] + 1} ({s['confidence']:.2f})" for s in summary["flagged_slices"])
            print(f"check these T2WI slices first (numbered from 1): {slices}")
    else:
        print(f"no tumour found (model {_model_label(summary)}, confidence {summary['confidence']:.2f})")
    found_organs = [f"{o['name']} {o['volume_ml']:.1f} mL" for o in summary.get("organs", []) if o["found"]]
    if found_organs:
        print("organs: " + ", ".join(found_organs))
    ood = summary.get("ood", {})
    if ood.get("available"):
        print(f"out-of-distribution score {ood['score']:.2f} (above 1: unlike the training images)")
    for warning in summary["warnings"]:
        print(f"warning: {warning}")
    print(f"written: {out}")
    return status
