"""`cervicalai train-encoder`: self-supervised training of a deep-feature encoder -> encoder bundle."""

from __future__ import annotations

import argparse
import logging

from CervicalAILib.bundles.catalog import refuse_shipped_folder
from CervicalAILib.cli.options import float_in, int_at_least, positive_float
from CervicalAILib.core.output_guard import check_output_path
from CervicalAILib.core.progress import line_progress
from CervicalAILib.io.case import ROLES
from CervicalAILib.research.training.encoder import EncoderTrainingConfig, train_encoder

log = logging.getLogger(__name__)


def _roles(text: str) -> tuple[str, ...]:
    roles = tuple(r.strip() for r in text.split(",") if r.strip())
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise argparse.ArgumentTypeError(f"roles must be among {','.join(ROLES)}, found {text!r}")
    return roles


def _numbers(kind):
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(v) for v in text.replace("x", ",").split(",") if v.strip())
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, found {text!r}") from exc

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Train the tumour encoder that turns each MRI sequence's tumour into deep features (DL_score inputs), "
        "without outcome labels: SimCLR contrastive learning on tumour crops cut exactly as at inference. "
        "Writes an encoder bundle (ONNX network + bundle.json + model card) usable with --encoder / "
        "CERVICALAI_MODELS. A site can retrain on its own cases; CPU training of the defaults takes 30-60 min."
    )
    parser.add_argument("cases", nargs="+", metavar="CASES", help="case folders, or cohort folders holding case folders "
                        "(each needs the sequences and labels/tumor.nii.gz; labels/tumor_<ROLE>.nii.gz is used when present)")
    parser.add_argument("--out", required=True, metavar="BUNDLE", help="output bundle folder")
    parser.add_argument("--dim", choices=("2d", "3d"), default="2d",
                        help="2d: largest tumour slice and its neighbours as 3 channels; 3d: the whole tumour (default 2d)")
    parser.add_argument("--roles", type=_roles, default=ROLES, metavar="LIST",
                        help=f"sequences to train on, comma-separated (default {','.join(ROLES)})")
    parser.add_argument("--name", default="", help="feature family name, e.g. resnet2d (default resnet<dim>); "
                        "features are called ROLE_dl-<name>_F0000...")
    parser.add_argument("--version", default="1.0.0", help="bundle version (default 1.0.0)")
    parser.add_argument("--steps", type=int_at_least(0), default=0, help="optimisation steps (default 2000 for 2d, 1200 for 3d)")
    parser.add_argument("--batch-size", type=int_at_least(0, 4096), default=0, help="tumour crops per step (default 64 for 2d, 32 for 3d)")
    parser.add_argument("--width", type=int_at_least(1, 1024), default=16,
                        help="ResNet width: channels of the first stage; features = 8 x width (default 16 -> 128 features)")
    parser.add_argument("--crop-size", type=_numbers(int), default=(), metavar="N,N[,N]",
                        help="network input size in voxels, rows,cols (2d) or slices,rows,cols (3d); default 64,64 / 24,48,48")
    parser.add_argument("--spacing", type=_numbers(float), default=(), metavar="MM,MM[,MM]",
                        help="crop spacing x,y[,z] in mm, enlarged when the tumour does not fit; default 1,1 / 1.5,1.5,3")
    parser.add_argument("--margin", type=float_in(0.0, 200.0), default=5.0, help="margin around the tumour in mm (default 5)")
    parser.add_argument("--masking", choices=("tumor", "none"), default="tumor",
                        help="tumor: the encoder sees the tumour only; none: the crop with its surroundings (default tumor)")
    parser.add_argument("--lr", type=positive_float, default=1e-3, help="AdamW learning rate (default 1e-3)")
    parser.add_argument("--temperature", type=positive_float, default=0.2, help="NT-Xent temperature (default 0.2)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--threads", type=int_at_least(1, 256), default=2, help="CPU threads for torch (default 2)")
    parser.add_argument("--max-minutes", type=positive_float, default=None, help="stop training after this many minutes")
    parser.add_argument("--training-data", default=None,
                        help="plain statement of what data trained the encoder, stored in the bundle and model card")
    parser.add_argument("--log", default=None, metavar="FILE", help="append the training curve (JSON lines) to FILE")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bundle folder")


def run(args: argparse.Namespace) -> int:
    check_output_path(args.out, args.cases, overwrite=args.overwrite)
    refuse_shipped_folder(args.out)  # before hours of training, not at the end
    if args.log:
        check_output_path(args.log, list(args.cases) + [args.out], overwrite=True, kind="file", option="--log")
    config = EncoderTrainingConfig(
        dim=args.dim,
        encoder_name=args.name,
        roles=args.roles,
        width=args.width,
        crop_size=args.crop_size,
        spacing_mm=args.spacing,
        margin_mm=args.margin,
        masking=args.masking,
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        temperature=args.temperature,
        seed=args.seed,
        threads=args.threads,
        max_minutes=args.max_minutes,
    )
    bundle = train_encoder(
        args.cases,
        args.out,
        config,
        training_data=args.training_data,
        version=args.version,
        overwrite=args.overwrite,
        progress=line_progress,
        log_path=args.log,
    )
    metrics = bundle.manifest["metrics"]
    print(
        f"{bundle.label}: {bundle.manifest['outputs']['dim']} features per sequence "
        f"({bundle.manifest['outputs']['feature_names']}); {metrics['training_crops']} crops from "
        f"{metrics['training_cases']} cases, {metrics['steps_done']} steps, loss {metrics['first_loss']:.3f} -> "
        f"{metrics['final_loss']:.3f}, ONNX check {metrics['onnx_max_abs_diff']:.1e}; written to {bundle.path}"
    )
    return 0
