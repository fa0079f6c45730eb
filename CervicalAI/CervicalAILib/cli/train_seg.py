"""`cervicalai train-seg`: train the tumour segmentation network and export it as a model bundle."""

from __future__ import annotations

import argparse
from pathlib import Path

from CervicalAILib.cli.options import float_in, int_at_least, output_path, positive_float


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "Each case folder needs the sequences named by --roles and labels/tumor.nii.gz on the T2WI grid\n"
        "(what `cervicalai synth` writes). Cases are co-registered and resampled once into a cache in the\n"
        "work folder; checkpoints go there too (--resume continues from the last epoch). The bundle holds\n"
        "the ONNX export of the best validation epoch, checked against torch to 1e-4.\n"
        "Example: cervicalai train-seg cohort/ --out my-seg-model --epochs 40 --max-minutes 90"
    )
    parser.add_argument("cases", nargs="+", type=Path, metavar="CASES", help="case folders or cohort folders")
    parser.add_argument("--out", required=True, type=output_path, metavar="BUNDLE", help="model bundle folder to write")
    parser.add_argument(
        "--roles", default="T2W,ADC,DWI",
        help="input sequences in channel order, T2W first (default T2W,ADC,DWI; T2W for a T2WI-only model)",
    )
    parser.add_argument("--name", default=None, help="model name in bundle.json (default: the bundle folder name)")
    parser.add_argument("--version", dest="model_version", default="1.0.0", help="model version (default 1.0.0)")
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
        "--export-only", action="store_true",
        help="do not train: export the best checkpoint of the work folder as the bundle again",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace BUNDLE if it exists")


def _numbers(text: str, kind, what: str) -> list:
    from CervicalAILib.core.errors import InputError

    try:
        values = [kind(v) for v in text.split(",")]
    except ValueError as exc:
        raise InputError(f"{what} must be three comma-separated numbers, got {text!r}") from exc
    if len(values) != 3 or any(v <= 0 for v in values):
        raise InputError(f"{what} must be three positive comma-separated numbers, got {text!r}")
    return values


def run(args: argparse.Namespace) -> int:
    import json

    from CervicalAILib.core.errors import InputError
    from CervicalAILib.core.output_guard import check_output_path
    from CervicalAILib.core.progress import line_progress
    from CervicalAILib.io.case import ROLES
    from CervicalAILib.research.training import TrainConfig, train_segmentation

    if not args.export_only:
        check_output_path(args.out, args.cases, overwrite=args.overwrite or args.resume)
    if args.work_dir:
        check_output_path(args.work_dir, args.cases, overwrite=True, option="--work-dir")
    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles or len(set(roles)) != len(roles):
        raise InputError(f"--roles {args.roles!r}: use distinct roles from {', '.join(ROLES)}, T2W first")
    if args.epochs < 1 or args.iterations < 1 or args.batch_size < 1:
        raise InputError("--epochs, --iterations and --batch-size must be at least 1")
    config = TrainConfig(
        cases=[str(c) for c in args.cases],
        out=str(args.out),
        roles=roles,
        name=args.name or Path(args.out).name,
        version=args.model_version,
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
        export_only=args.export_only,
        overwrite=args.overwrite,
    )
    report = train_segmentation(config, progress=line_progress)
    summary = {k: v for k, v in report.items() if k != "history"}
    print(json.dumps(summary, indent=2))
    return 0
