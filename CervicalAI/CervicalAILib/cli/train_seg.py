"""`cervicalai train-seg`: train the segmentation network (tumour + anatomy) and export it as a model bundle."""

from __future__ import annotations

import argparse
from pathlib import Path

from CervicalAILib.bundles.catalog import refuse_shipped_folder
from CervicalAILib.cli.options import float_in, int_at_least, output_path, positive_float
from CervicalAILib.core.errors import InputError
from CervicalAILib.core.output_guard import check_output_path
from CervicalAILib.core.progress import line_progress
from CervicalAILib.io.case import ROLES
from CervicalAILib.research.training import TrainConfig, find_cases, train_segmentation
from CervicalAILib.research.training.network import DEFAULT_ARCHITECTURE
from CervicalAILib.research.training.ood import add_ood_to_bundle
from CervicalAILib.segmentation.preprocess import ORIENTATIONS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "Each case folder needs the sequences named by --roles and labels/tumor.nii.gz on the T2WI grid\n"
        "(what `cervicalai synth` writes); the anatomical --structures come from labels/organs.nii.gz, read\n"
        "by name through its label table (labels/organs.json, or the generator's legend). Cases are\n"
        "co-registered and resampled once into a cache in the work folder; checkpoints go there too\n"
        "(--resume continues from the last epoch). The bundle holds the ONNX export of the best validation\n"
        "epoch, checked against torch to 1e-4, and its out-of-distribution score (ood.json).\n"
        "Examples:\n"
        "  cervicalai train-seg cohort/ --out my-seg-model --epochs 40 --max-minutes 90\n"
        "  cervicalai train-seg cohort/ --out tumour-only --structures tumor --synth-fraction 0\n"
        "  cervicalai train-seg my-annotations/ --init-from Resources/Models/cervix-tumor-seg-mpmri \\\n"
        "      --channels 16,32,64,128 --lr 0.0005 --out my-fine-tuned-model\n"
        "  cervicalai train-seg fit-cohort/ --add-ood old-bundle --calibration held-out/ --out new-bundle"
    )
    parser.add_argument("cases", nargs="+", type=Path, metavar="CASES", help="case folders or cohort folders")
    parser.add_argument("--out", required=True, type=output_path, metavar="BUNDLE", help="model bundle folder to write")
    parser.add_argument(
        "--roles", default="T2W,ADC,DWI",
        help="input sequences in channel order, T2W first (default T2W,ADC,DWI; T2W for a T2WI-only model)",
    )
    parser.add_argument(
        "--structures", default="tumor,cervix,uterus,vagina,bladder,rectum",
        help="output channels, tumour first (default tumor,cervix,uterus,vagina,bladder,rectum; "
        "'tumor' alone for cases without organ labels); a network with cervix/uterus gets the anatomy gate",
    )
    parser.add_argument(
        "--synth-fraction", type=float, default=0.5,
        help="share of training samples whose image is synthesised from the organ label map with random "
        "contrast and artefacts (domain randomisation; default 0.5, 0 to switch off)",
    )
    parser.add_argument(
        "--tilt-degrees", type=float, default=0.0,
        help="also tilt the slice plane of training patches by up to this many degrees (oblique axial "
        "acquisitions; default 0, as the shipped networks were trained)",
    )
    parser.add_argument(
        "--orientation", choices=ORIENTATIONS, default="LPS-nearest",
        help="working-grid axes: LPS-nearest keeps the T2WI's slice plane (an oblique series stays oblique; "
        "default, as both shipped networks were trained), LPS resamples every series onto an axis-aligned "
        "(true axial) grid so the network sees the anatomy upright whatever the acquisition's tilt",
    )
    parser.add_argument(
        "--scale-fraction", type=float, default=0.1,
        help="scale training patches in-plane by up to this share (smaller and larger pelvises; default 0.1)",
    )
    parser.add_argument(
        "--calibration", "--ood-calibration", dest="calibration", nargs="+", type=Path, metavar="CASES",
        help="labelled cases never trained on (folders or cohorts) that choose the tumour probability threshold "
        "(best mean Dice) and the out-of-distribution threshold (at most --ood-false-alarm-rate of them flagged); "
        "default: the validation cases. Give a cohort of a hundred or so: on a few cases one case's flip moves "
        "the threshold",
    )
    parser.add_argument("--ood-false-alarm-rate", type=float, default=0.05,
                        help="share of calibration cases allowed above the OOD threshold (default 0.05)")
    parser.add_argument("--no-ood", action="store_true", help="do not fit the out-of-distribution score")
    parser.add_argument(
        "--add-ood", type=Path, metavar="BUNDLE",
        help="do not train: write BUNDLE with an out-of-distribution score to --out, fitted on CASES and "
        "calibrated on --calibration (the segmentation itself is unchanged)",
    )
    parser.add_argument("--name", default=None, help="model name in bundle.json (default: the bundle folder name)")
    parser.add_argument("--version", dest="model_version", default=None,
                        help="model version (default 1.0.0; with --add-ood: the source bundle's)")
    parser.add_argument("--epochs", type=int_at_least(1), default=60, help="maximum number of epochs (default 60)")
    parser.add_argument("--iterations", type=int_at_least(1), default=60, help="training iterations per epoch (default 60)")
    parser.add_argument("--batch-size", type=int_at_least(1, 4096), default=2, help="patches per iteration (default 2)")
    parser.add_argument("--patience", type=int_at_least(1), default=10, help="early stop after this many epochs without gain")
    parser.add_argument("--val-fraction", type=float_in(0.0, 1.0, high_open=True), default=0.1, help="share of cases held out for validation")
    parser.add_argument("--patch", default="80,80,16", help="training patch size x,y,z in voxels (default 80,80,16)")
    parser.add_argument(
        "--inference-patch", default="80,80,16",
        help="run-time patch size x,y,z in voxels (default 80,80,16; keep it equal to --patch: instance "
        "normalisation makes the network depend on the patch size it was trained on)"
    )
    parser.add_argument("--spacing", default="1.5,1.5,4.0", help="working spacing x,y,z in mm (default 1.5,1.5,4.0)")
    parser.add_argument(
        "--channels", default="8,16,32,64",
        help="U-Net feature channels per level (default 8,16,32,64; wider networks learn organs better but "
        "train and infer more slowly: run time grows about with the square of the width)",
    )
    parser.add_argument("--lr", type=positive_float, default=2e-3, help="initial learning rate (default 0.002)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (split, sampling, augmentation)")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="train on the CPU or a CUDA GPU")
    parser.add_argument("--threads", type=int_at_least(1, 256), default=2, help="CPU threads for torch (default 2)")
    parser.add_argument("--max-minutes", type=positive_float, default=None, help="stop after this much wall time")
    parser.add_argument("--work-dir", type=Path, default=None, help="cache + checkpoints (default BUNDLE.work)")
    parser.add_argument("--jobs", type=int_at_least(1, 256), default=1, help="processes for preparing the cases (default 1)")
    parser.add_argument(
        "--no-register", action="store_true",
        help="skip co-registration when building the cache (only for data already aligned in physical space)",
    )
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in the work folder")
    parser.add_argument(
        "--init-from", type=Path, metavar="BUNDLE",
        help="start from the weights of this segmentation bundle (e.g. a shipped one) instead of random ones, to "
        "fine-tune it on CASES; it must have the same --roles, --structures, --channels and --spacing",
    )
    parser.add_argument(
        "--export-only", action="store_true",
        help="do not train: export the best checkpoint of the work folder as the bundle again",
    )
    parser.add_argument(
        "--export-final", action="store_true",
        help="export the last epoch instead of the one with the best validation score (with --export-only: the "
        "last epoch in the work folder); the model card says which",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace BUNDLE if it exists")


def _numbers(text: str, kind, what: str) -> list:
    try:
        values = [kind(v) for v in text.split(",")]
    except ValueError as exc:
        raise InputError(f"{what} must be three comma-separated numbers, got {text!r}") from exc
    if len(values) != 3 or any(v <= 0 for v in values):
        raise InputError(f"{what} must be three positive comma-separated numbers, got {text!r}")
    return values


def run(args: argparse.Namespace) -> int:
    import json

    refuse_shipped_folder(args.out)  # before hours of training, not at the end
    if args.add_ood is not None:
        check_output_path(args.out, [*args.cases, args.add_ood, *(args.calibration or [])],
                          overwrite=args.overwrite)
        return _add_ood(args)
    if not args.export_only:
        check_output_path(args.out, [*args.cases, *([args.init_from] if args.init_from else [])],
                          overwrite=args.overwrite or args.resume)
    if args.work_dir:
        check_output_path(args.work_dir, args.cases, overwrite=True, option="--work-dir")
    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles or len(set(roles)) != len(roles):
        raise InputError(f"--roles {args.roles!r}: use distinct roles from {', '.join(ROLES)}, T2W first")
    if args.epochs < 1 or args.iterations < 1 or args.batch_size < 1:
        raise InputError("--epochs, --iterations and --batch-size must be at least 1")
    structures = [s.strip() for s in args.structures.split(",") if s.strip()]
    try:
        channels = [int(c) for c in args.channels.split(",")]
    except ValueError as exc:
        raise InputError(f"--channels must be comma-separated whole numbers, got {args.channels!r}") from exc
    if len(channels) != len(DEFAULT_ARCHITECTURE["strides_zyx"]) + 1 or min(channels) < 1:
        raise InputError(f"--channels needs {len(DEFAULT_ARCHITECTURE['strides_zyx']) + 1} positive numbers, "
                         f"got {args.channels!r}")
    if not 0.0 <= args.synth_fraction <= 1.0:
        raise InputError(f"--synth-fraction must be between 0 and 1, got {args.synth_fraction}")
    if not 0.0 <= args.tilt_degrees <= 45.0:
        raise InputError(f"--tilt-degrees must be between 0 and 45, got {args.tilt_degrees}")
    if not 0.0 <= args.scale_fraction < 0.5:
        raise InputError(f"--scale-fraction must be at least 0 and under 0.5, got {args.scale_fraction}")
    config = TrainConfig(
        cases=[str(c) for c in args.cases],
        out=str(args.out),
        roles=roles,
        structures=structures,
        architecture={**DEFAULT_ARCHITECTURE, "channels": channels},
        synth_fraction=args.synth_fraction,
        tilt_degrees=args.tilt_degrees,
        scale_fraction=args.scale_fraction,
        orientation=args.orientation,
        ood=not args.no_ood,
        calibration=[str(c) for c in args.calibration] if args.calibration else None,
        ood_false_alarm_rate=args.ood_false_alarm_rate,
        name=args.name or Path(args.out).name,
        version=args.model_version or "1.0.0",
        work_dir=str(args.work_dir) if args.work_dir else None,
        epochs=args.epochs,
        iterations_per_epoch=args.iterations,
        batch_size=args.batch_size,
        patch_size_xyz=_numbers(args.patch, int, "--patch"),
        inference_patch_size_xyz=_numbers(args.inference_patch, int, "--inference-patch"),
        working_spacing_mm=_numbers(args.spacing, float, "--spacing"),
        learning_rate=args.lr,
        val_fraction=args.val_fraction,
        patience=args.patience,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        max_minutes=args.max_minutes,
        register=not args.no_register,
        jobs=args.jobs,
        resume=args.resume,
        init_from=str(args.init_from) if args.init_from else None,
        export_only=args.export_only,
        export_final=args.export_final,
        overwrite=args.overwrite,
    )
    report = train_segmentation(config, progress=line_progress)
    summary = {k: v for k, v in report.items() if k != "history"}
    print(json.dumps(summary, indent=2))
    return 0


def _add_ood(args: argparse.Namespace) -> int:
    if not args.calibration:
        raise InputError("--add-ood needs --calibration (held-out cases that set the threshold)")
    bundle = add_ood_to_bundle(
        args.add_ood, args.out, find_cases(args.cases), find_cases(args.calibration),
        version=args.model_version,
        register=not args.no_register, false_alarm_rate=args.ood_false_alarm_rate, overwrite=args.overwrite,
        progress=line_progress,
    )
    ood = bundle.manifest["ood"]
    print(f"bundle {bundle.label} written to {bundle.path}: OOD threshold (Mahalanobis) {ood['threshold_distance']}, "
          f"{ood['calibration']['calibration_false_alarms']} of {ood['calibration']['calibration_cases']} calibration "
          "cases above it")
    return 0
