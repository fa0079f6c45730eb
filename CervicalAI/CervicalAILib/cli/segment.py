"""`cervicalai segment`: automatic contour of the primary tumour on a case folder or DICOM study."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

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
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (created)")
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


def load_images(path: Path, t2_only: bool = False, progress=None):
    """Images of the study on the T2WI grid, the registration records, and the transforms (T2WI -> role).

    Sequences already on the T2WI grid (a case folder written by `cervicalai study register`) are
    used as they are, with the transforms stored beside them; only the others are registered.
    """
    import SimpleITK as sitk

    from ..errors import InputError
    from ..io.case import ROLES
    from ..io.geometry import resample_to_reference, same_grid
    from ..io.study import load_study
    from ..registration.masks import complete_transforms, read_transforms

    study = load_study(path)
    roles = [role for role in ROLES if role in study.roles_present()]
    if "T2W" not in roles:
        raise InputError(
            f"no T2-weighted image found (found: {', '.join(roles) or 'no usable series'}); "
            "the tumour is segmented on the T2WI",
            path,
        )
    if t2_only:
        roles = ["T2W"]
    images = {role: study.image(role) for role in roles}
    t2 = images["T2W"]
    known = read_transforms(path) if Path(path).is_dir() else {}
    transforms, registered = complete_transforms(images, roles, known, progress)
    records = {}
    on_grid = {"T2W": t2}
    for role in roles[1:]:
        if same_grid(images[role], t2):
            on_grid[role] = images[role]
            records[role] = {"method": "already on the T2WI grid"}
            continue
        on_grid[role] = resample_to_reference(images[role], t2, transforms[role], sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        how = "rigid registration onto the T2WI (Mattes MI)" if role in registered else "stored transform"
        records[role] = {"method": how, "parameters": _json_safe(list(transforms[role].GetParameters()))}
    return on_grid, records, {r: t for r, t in transforms.items() if r in roles}


def _json_safe(value):
    """Registration records as JSON: numpy values to plain numbers, NaN (not measured) to None."""
    import math

    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if hasattr(value, "tolist"):
        return _json_safe(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def run(args: argparse.Namespace) -> int:
    import time

    from ..errors import OutputExistsError
    from ..io.atomic import to_json
    from ..progress import line_progress, sub_progress
    from ..segmentation import write_segmentation
    from ..segmentation.inference import segment_case

    out = Path(args.out)
    if args.nnunet_model is not None and args.model is not None:
        from ..errors import InputError

        raise InputError("give either --model or --nnunet-model, not both")
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise OutputExistsError(f"{out}: output folder exists and is not empty (use --overwrite to replace it)")
    start = time.perf_counter()
    images, registration, transforms = load_images(args.path, args.t2_only, sub_progress(line_progress, 0.0, 0.3))
    registration_seconds = time.perf_counter() - start
    result = segment_case(
        images, bundle=args.model, device=args.device, progress=sub_progress(line_progress, 0.3, 1.0),
        nnunet_model=args.nnunet_model,
    )
    result.summary["seconds"]["registration"] = round(registration_seconds, 3)
    extra = {
        "input": str(args.path),
        "registration": registration,
    }
    write_segmentation(result, out, overwrite=args.overwrite, extra=extra, transforms=transforms)
    summary = json.loads((out / "segmentation.json").read_text(encoding="utf-8"))
    status = 0 if result.anatomy_recognised else NO_ANATOMY_EXIT
    if args.json:
        sys.stdout.write(to_json(summary))
        return status
    if not result.anatomy_recognised:
        print(f"{summary['message']}: no tumour contour (model {summary['model']['label']})")
    elif summary["tumor_found"]:
        print(
            f"tumour: {summary['volume_ml']:.2f} mL, maximum diameter {summary['max_diameter_mm']:.1f} mm, "
            f"confidence {summary['confidence']:.2f} (model {summary['model']['label']}, {summary['device']['provider']})"
        )
        if summary["flagged_slices"]:
            # numbered from 1 as Slicer and the report show them (segmentation.json keeps 0-based indices)
            slices = ", ".join(f"{s['slice'] + 1} ({s['confidence']:.2f})" for s in summary["flagged_slices"])
            print(f"check these T2WI slices first (numbered from 1): {slices}")
    else:
        print(f"no tumour found (model {summary['model']['label']}, confidence {summary['confidence']:.2f})")
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
