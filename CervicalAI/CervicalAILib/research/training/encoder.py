"""Self-supervised training of the deep-feature encoders (MONAI ResNets) and their ONNX export.

No outcome labels are used. The encoder learns by contrast (SimCLR, Chen et al. 2020): two
randomly augmented views of the same tumour crop should map to nearby feature vectors, views of
different tumours (and sequences) to distant ones, through a small projection head that is
dropped after training. The features therefore describe what distinguishes one tumour's
appearance from another's (size, shape, texture, signal) and are invariant only to the mild
augmentations used (flips, right-angle and small rotations, +-10% scale, small shifts, small
intensity changes, noise), which are kept mild on purpose: tumour size and signal matter for LNM.

Crops are cut by the very runtime code (`CervicalAILib.features.deep`: crop + intensity preprocessing as
the bundle declares), so training and inference see the same inputs. Each sequence is cropped
on its own grid with its own tumour label (`labels/tumor_<ROLE>.nii.gz`, which the synthetic
generator writes), so no registration is needed; without it `labels/tumor.nii.gz` is used,
resampled onto the sequence's grid when it is on another grid (the T2W grid).

torch and monai are imported only inside functions: importing this module is cheap.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from CervicalAILib import __version__
from CervicalAILib.bundles.format import Bundle, write_bundle
from CervicalAILib.bundles.onnx import make_session
from CervicalAILib.contracts.feature_names import deep_name
from CervicalAILib.core.errors import CervicalAIError, InputError, OutputExistsError
from CervicalAILib.core.progress import ProgressCallback, no_progress, sub_progress
from CervicalAILib.features.deep.config import CropSpec, IntensitySpec, encoder_sections
from CervicalAILib.features.deep.crops import align_mask, crop_2d, crop_3d
from CervicalAILib.features.deep.preprocess import normalise_crop
from CervicalAILib.io.case import ROLES, load_case
from CervicalAILib.io.measurements import mask_array
from CervicalAILib.research.training.dataset import find_cases

log = logging.getLogger(__name__)

ONNX_TOLERANCE = 1e-4  # max |ONNX - torch| accepted at export


@dataclass
class EncoderTrainingConfig:
    """Everything that defines a training run (stored in the bundle's provenance)."""

    dim: str = "2d"  # "2d" or "3d"
    encoder_name: str = ""  # feature family name; default "resnet2d" / "resnet3d"
    roles: tuple[str, ...] = ROLES
    width: int = 16  # channels of the first ResNet stage (then x2, x4, x8): features = 8 * width
    layers: tuple[int, ...] = ()  # blocks per stage; default resnet18 (2d) / resnet10 (3d)
    crop_size: tuple[int, ...] = ()  # default (64, 64) / (24, 48, 48)
    spacing_mm: tuple[float, ...] = ()  # default (1.0, 1.0) / (1.5, 1.5, 3.0)
    margin_mm: float = 5.0
    masking: str = "tumor"
    slices_per_tumour: int = 3  # 2d: training crops per tumour and sequence (largest slices)
    steps: int = 0  # 0: default 2000 (2d) / 1200 (3d), about 30-60 min each on 2 CPU cores
    batch_size: int = 0  # 0: default 64 (2d) / 32 (3d) tumour crops per step
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    temperature: float = 0.2
    projection_dim: int = 64
    seed: int = 0
    threads: int = 2
    max_minutes: float | None = None  # stop early (and say so in the bundle) when the time is up
    log_every: int = 25

    def resolved(self) -> EncoderTrainingConfig:
        if self.dim not in ("2d", "3d"):
            raise InputError(f"--dim must be 2d or 3d, found {self.dim!r}")
        defaults_2d = {"layers": (2, 2, 2, 2), "crop_size": (64, 64), "spacing_mm": (1.0, 1.0), "steps": 2000, "batch_size": 64}
        defaults_3d = {"layers": (1, 1, 1, 1), "crop_size": (24, 48, 48), "spacing_mm": (1.5, 1.5, 3.0), "steps": 1200, "batch_size": 32}
        defaults = defaults_2d if self.dim == "2d" else defaults_3d
        out = replace(
            self,
            encoder_name=self.encoder_name or f"resnet{self.dim}",
            roles=tuple(self.roles),
            layers=tuple(self.layers) or defaults["layers"],
            crop_size=tuple(self.crop_size) or defaults["crop_size"],
            spacing_mm=tuple(self.spacing_mm) or defaults["spacing_mm"],
            steps=self.steps or defaults["steps"],
            batch_size=self.batch_size or defaults["batch_size"],
        )
        ndim = 2 if self.dim == "2d" else 3
        problems = []
        if len(out.crop_size) != ndim or len(out.spacing_mm) != ndim:
            problems.append(f"crop size and spacing need {ndim} values for a {self.dim} encoder")
        if min(out.crop_size) < 16:
            problems.append(f"crop size {out.crop_size} is too small for a ResNet (>= 16 voxels per axis)")
        if len(out.layers) != 4 or min(out.layers) < 1:
            problems.append(f"layers must be 4 positive block counts, found {out.layers}")
        unknown = [r for r in out.roles if r not in ROLES]
        if unknown or not out.roles:
            problems.append(f"roles must be among {', '.join(ROLES)}, found {out.roles}")
        for key in ("width", "steps", "batch_size", "slices_per_tumour", "threads", "projection_dim", "log_every"):
            if getattr(out, key) < 1:
                problems.append(f"{key} must be >= 1, found {getattr(out, key)}")
        if out.batch_size < 4:
            problems.append("batch size must be >= 4 (contrastive learning needs other tumours in the batch)")
        for key in ("learning_rate", "temperature", "margin_mm"):
            if getattr(out, key) < 0 or (key != "margin_mm" and getattr(out, key) == 0):
                problems.append(f"{key} must be positive, found {getattr(out, key)}")
        if problems:
            raise InputError("; ".join(problems))
        return out

    def crop_spec(self) -> CropSpec:
        return CropSpec(
            mode=self.dim,
            size=tuple(self.crop_size),
            channels=3 if self.dim == "2d" else 1,
            channel_mode="neighbours",
            margin_mm=float(self.margin_mm),
            spacing_mm=tuple(float(s) for s in self.spacing_mm),
            fit=True,
            masking=self.masking,
            antialias=True,
        )

    @staticmethod
    def intensity_spec() -> IntensitySpec:
        # No percentile clip: within a crop that is mostly surroundings, a small bright tumour (DWI)
        # is itself the top percentile, and clipping would flatten exactly what the encoder should see.
        return IntensitySpec(
            clip_percentiles=None,
            scale="zscore",
            stats_region="crop",
            channel_mean=None,
            channel_std=None,
            background=0.0,
        )


@dataclass
class CropSet:
    """Preprocessed training crops (N, C, *size) with where each came from."""

    crops: np.ndarray
    sources: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _tumour_label(case, role: str):
    """The tumour label for `role`: its own-grid label when the case has one, else `tumor`."""
    own = f"tumor_{role}"
    return case.label(own) if own in case.label_paths else case.label("tumor")


def collect_crops(
    case_dirs: Sequence[Path],
    config: EncoderTrainingConfig,
    progress: ProgressCallback | None = None,
) -> CropSet:
    """Cut and preprocess the training crops with the runtime's own crop code.

    A case without a tumour label, or whose label is empty for a sequence, is skipped with a
    logged reason (training on a cohort should not stop for one bad case); if nothing is left,
    InputError.
    """
    progress = progress or no_progress
    spec, intensity = config.crop_spec(), config.intensity_spec()
    crops: list[np.ndarray] = []
    sources: list[dict[str, Any]] = []
    skipped: list[str] = []
    for n, case_dir in enumerate(case_dirs):
        progress(n / len(case_dirs), f"cropping tumours: case {n + 1}/{len(case_dirs)}")
        try:
            case = load_case(case_dir)
        except CervicalAIError as exc:
            skipped.append(f"{case_dir}: {exc}")
            continue
        for role in config.roles:
            if role not in case.roles:
                continue
            try:
                image = case.image(role)
                mask = align_mask(image, _tumour_label(case, role), role)
                if spec.mode == "3d":
                    made = [(crop_3d(image, mask, spec), None)]
                else:
                    areas = mask_array(mask).sum(axis=(1, 2))
                    order = [int(k) for k in np.argsort(-areas, kind="stable") if areas[k] > 0]
                    made = [(crop_2d(image, mask, spec, slice_index=k), k) for k in order[: config.slices_per_tumour]]
            except CervicalAIError as exc:
                skipped.append(f"{case_dir} {role}: {exc}")
                continue
            for crop, k in made:
                crops.append(normalise_crop(crop, intensity, spec))
                sources.append({"case": case.case_id, "role": role, "slice": k})
    for reason in skipped:
        log.warning("training crops: skipped %s", reason)
    if not crops:
        raise InputError("no usable training crops: the cases need tumour labels (labels/tumor.nii.gz) and images")
    progress(1.0, f"{len(crops)} training crops from {len(case_dirs)} cases")
    return CropSet(crops=np.stack(crops).astype(np.float32), sources=sources, skipped=skipped)


# --- network ---------------------------------------------------------------------------------
def build_backbone(config: EncoderTrainingConfig):
    """MONAI ResNet without its classifier: input (N, C, *crop), output (N, 8 * width) pooled features."""
    from monai.networks.nets import ResNet

    spatial = 2 if config.dim == "2d" else 3
    width = config.width
    return ResNet(
        block="basic",
        layers=list(config.layers),
        block_inplanes=[width, 2 * width, 4 * width, 8 * width],
        spatial_dims=spatial,
        n_input_channels=3 if config.dim == "2d" else 1,
        # 3d: the crop's slices are twice as thick as its pixels, so the stem's kernel is 3 slices
        # deep (7 x 7 in plane). Stride 2 on every axis: a slice-axis stride of 1 costs 10x the CPU
        # time in torch's 3D convolution and pooling for little gain on 24-slice crops.
        conv1_t_size=7 if spatial == 2 else 3,
        conv1_t_stride=2,
        feed_forward=False,
    )


def _projection_head(dim: int, out: int):
    import torch.nn as nn

    return nn.Sequential(nn.Linear(dim, dim), nn.BatchNorm1d(dim), nn.ReLU(inplace=True), nn.Linear(dim, out))


def nt_xent_loss(z1, z2, temperature: float):
    """SimCLR's normalised temperature-scaled cross entropy for a batch of positive pairs."""
    import torch
    import torch.nn.functional as F

    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z1.shape[0]
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))  # a view is not its own negative
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, targets)


def augment(batch, foreground, generator, spatial: int):
    """Two independent random views of a batch (torch tensors (N, C, *size)).

    Intensity: Gaussian noise (sd 0-0.05, on the foreground only, so the masked background keeps
    its value) and nothing else on purpose: what the views differ in, the features cannot see, and
    the tumour's signal level (ADC, enhancement) and texture amplitude (heterogeneity) are
    biomarkers. Geometry: random flips, right-angle in-plane rotation, 2d: channel (slice order)
    reversal; then a small affine (rotation +-15 degrees in plane, scale 0.9-1.1, shift +-4% of
    the field) with border padding.
    """
    import torch
    import torch.nn.functional as F

    n = batch.shape[0]
    shape = (n,) + (1,) * (batch.ndim - 1)

    def rand(*size, low=0.0, high=1.0):
        return low + (high - low) * torch.rand(*size, generator=generator)

    noise = rand(*shape, high=0.05)
    x = torch.where(foreground, batch + noise * torch.randn(batch.shape, generator=generator), batch)

    last = x.ndim - 1  # columns; rows = last - 1; slices (3d) = last - 2
    for axis in range(2, x.ndim):
        flip = rand(n) < 0.5
        x = torch.where(flip.view(shape), x.flip(axis), x)
    # right-angle in-plane rotation: any quarter turn on square crops, half turns otherwise
    square = x.shape[-1] == x.shape[-2]
    quarter = torch.randint(0, 4, (n,), generator=generator) if square else 2 * torch.randint(0, 2, (n,), generator=generator)
    rotated = [torch.rot90(x[i], int(quarter[i]), dims=(last - 2, last - 1)) for i in range(n)]  # in-plane
    x = torch.stack(rotated)
    if spatial == 2:
        reverse = rand(n) < 0.5
        x = torch.where(reverse.view(shape), x.flip(1), x)

    angle = rand(n, low=-math.pi / 12, high=math.pi / 12)
    scale = rand(n, low=0.9, high=1.1)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    if spatial == 2:
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
        theta[:, :, 2] = rand(n, 2, low=-0.08, high=0.08)
    else:  # grid order (x=cols, y=rows, z=slices): rotate in plane, scale all
        theta = torch.zeros(n, 3, 4)
        theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
        theta[:, 2, 2] = 1.0 / scale
        theta[:, :, 3] = rand(n, 3, low=-0.08, high=0.08)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _foreground(crops: np.ndarray, background: float, masking: str) -> np.ndarray:
    if masking == "tumor":
        return crops != background
    return np.ones_like(crops, dtype=bool)


# --- export ----------------------------------------------------------------------------------
def export_onnx(backbone, input_shape: tuple[int, ...], path: Path, input_name: str = "image", output_name: str = "features") -> None:
    """Export the backbone (eval mode) to one self-contained ONNX file with a dynamic batch axis.

    Uses torch's TorchScript exporter at opset 17 (sub-second, and readable by older onnxruntime
    builds such as Slicer's); falls back to the torch.export-based exporter where the former is
    unavailable. `verify_onnx` checks the result either way.
    """
    import contextlib
    import io
    import warnings

    import torch

    backbone.eval()
    example = torch.zeros((2, *input_shape), dtype=torch.float32)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                backbone,
                (example,),
                str(path),
                dynamo=False,
                input_names=[input_name],
                output_names=[output_name],
                dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}},
                opset_version=17,
            )
            return
        except Exception as exc:  # exporter removed or failing in this torch build
            log.info("TorchScript ONNX export unavailable (%s); using torch.export", exc)
        quiet = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir", "torch.onnx")]
        levels = [logger.level for logger in quiet]
        for logger in quiet:
            logger.setLevel(logging.WARNING)
        try:
            program = torch.onnx.export(
                backbone,
                (example,),
                dynamo=True,
                input_names=[input_name],
                output_names=[output_name],
                dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=4096)}},
                external_data=False,
            )
            program.save(str(path), external_data=False)
        finally:
            for logger, level in zip(quiet, levels):
                logger.setLevel(level)


def verify_onnx(backbone, onnx_path: Path, inputs: np.ndarray, input_name: str = "image") -> float:
    """Max |ONNX - torch| over `inputs`; CervicalAIError beyond ONNX_TOLERANCE."""
    import torch

    backbone.eval()
    session = make_session(onnx_path, what="exported encoder network").session
    with torch.no_grad():
        expected = backbone(torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))).numpy()
    got = session.run(None, {input_name: np.ascontiguousarray(inputs, dtype=np.float32)})[0]
    diff = float(np.abs(got - expected).max())
    if not diff <= ONNX_TOLERANCE:
        raise CervicalAIError(f"ONNX export differs from the torch network by {diff:.2e} (> {ONNX_TOLERANCE:g})")
    return diff


def model_card(config: EncoderTrainingConfig, n_cases: int, n_crops: int, metrics: dict[str, Any], training_data: str) -> str:
    name = config.encoder_name
    dims = 8 * config.width
    shape = " x ".join(map(str, config.crop_size))
    return f"""# Tumour encoder `{name}` ({config.dim.upper()} MONAI ResNet, self-supervised)

**Research use only. Not for clinical use.** {training_data}

## What it does
Turns the primary tumour on one MRI sequence (T2W, ADC, DWI or CE-T1) into {dims} deep features,
named `ROLE_dl-{name}_F0000` ... `ROLE_dl-{name}_F{dims - 1:04d}`. Input: a {config.dim} crop of {shape} voxels
around the tumour mask ({'largest-area slice and its two neighbours as 3 channels' if config.dim == '2d' else 'the whole tumour'}),
{' x '.join(f'{s:g}' for s in config.spacing_mm)} mm spacing (coarser when the tumour plus a {config.margin_mm:g} mm margin does not fit),
{'tumour only (outside the mask set to 0)' if config.masking == 'tumor' else 'tumour with its surroundings'}, intensities z-scored
over the whole crop (tumour and surroundings, so the tumour's signal relative to its neighbourhood is kept). All of it is declared in bundle.json and applied by `CervicalAILib.features.deep`.

## How it was trained
- Architecture: MONAI `ResNet` (basic blocks {list(config.layers)}, widths {[config.width * m for m in (1, 2, 4, 8)]}),
  global average pooled output, no classifier.
- Objective: SimCLR contrastive learning (NT-Xent, temperature {config.temperature:g}, projection head to
  {config.projection_dim} dims discarded after training) on {n_crops} tumour crops from {n_cases} cases; mild
  augmentations (flips, right-angle and +-15 degree rotations, +-10% scale, small shifts, slight noise; no
  intensity or contrast changes, so signal level and texture amplitude stay in the features).
- No outcome labels (no LNM, no stage) were used. {config.steps} steps planned, batch {config.batch_size}, AdamW
  lr {config.learning_rate:g}, cosine schedule, seed {config.seed}.
- ONNX export checked against the torch network: max difference {metrics.get('onnx_max_abs_diff', float('nan')):.1e}.

## Limits
Synthetic training data cannot capture real scanners, artefacts or real tumour biology: retrain on your own
data (`cervicalai train-encoder CASES... --out BUNDLE --dim {config.dim}`) or drop in your own encoder bundle
before drawing conclusions. The features have no meaning on their own; they are inputs to a fitted model.
What they carry on held-out synthetic cases (linear probes) is measured in docs/deep_features.md.
"""


def train_encoder(
    cases: Sequence[str | Path],
    out_dir: str | Path,
    config: EncoderTrainingConfig | None = None,
    training_data: str | None = None,
    version: str = "1.0.0",
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    log_path: str | Path | None = None,
) -> Bundle:
    """Train an encoder on case folders (or cohort folders of them) and write an encoder bundle.

    `training_data` is the plain statement stored in the bundle (default: the cases were used
    without outcome labels; say what they are). `log_path`: optional JSON-lines training log
    outside the bundle. Returns the verified bundle.
    """
    import torch

    config = (config or EncoderTrainingConfig()).resolved()
    progress = progress or no_progress
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise OutputExistsError(f"{out_dir}: output folder exists and is not empty (use --overwrite to replace it)")
    case_dirs = find_cases(cases)
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    started = time.monotonic()

    crop_set = collect_crops(case_dirs, config, sub_progress(progress, 0.0, 0.15))
    crops = torch.from_numpy(crop_set.crops)
    foreground = torch.from_numpy(_foreground(crop_set.crops, 0.0, config.masking))
    spatial = 2 if config.dim == "2d" else 3
    batch_size = min(config.batch_size, len(crops))
    if batch_size < 4:
        raise InputError(f"only {len(crops)} training crops: contrastive training needs at least 4")

    backbone = build_backbone(config)
    feature_dim = 8 * config.width
    head = _projection_head(feature_dim, config.projection_dim)
    parameters = list(backbone.parameters()) + list(head.parameters())
    optimiser = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    warmup = max(1, config.steps // 20)

    def learning_rate(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, config.steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, learning_rate)
    generator = torch.Generator().manual_seed(config.seed)
    log_file = open(log_path, "a", encoding="utf-8") if log_path else None
    history: list[dict[str, float]] = []
    stopped_early = None
    running = []
    train_progress = sub_progress(progress, 0.15, 0.9)
    backbone.train()
    head.train()
    try:
        for step in range(config.steps):
            index = torch.from_numpy(rng.choice(len(crops), size=batch_size, replace=False))
            batch, fg = crops[index], foreground[index]
            view1 = augment(batch, fg, generator, spatial)
            view2 = augment(batch, fg, generator, spatial)
            loss = nt_xent_loss(head(backbone(view1)), head(backbone(view2)), config.temperature)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            scheduler.step()
            running.append(loss.item())
            if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
                entry = {
                    "step": step + 1,
                    "loss": float(np.mean(running)),
                    "lr": float(scheduler.get_last_lr()[0]),
                    "minutes": (time.monotonic() - started) / 60.0,
                }
                running = []
                history.append(entry)
                if log_file:
                    log_file.write(json.dumps(entry) + "\n")
                    log_file.flush()
                log.info("step %d/%d loss %.4f", step + 1, config.steps, entry["loss"])
                train_progress((step + 1) / config.steps, f"step {step + 1}/{config.steps} loss {entry['loss']:.3f}")
            if config.max_minutes is not None and (time.monotonic() - started) / 60.0 > config.max_minutes:
                stopped_early = f"stopped after {step + 1} of {config.steps} steps: time limit of {config.max_minutes:g} min reached"
                log.warning(stopped_early)
                break
    finally:
        if log_file:
            log_file.close()

    progress(0.9, "exporting to ONNX")
    metrics = {
        "final_loss": history[-1]["loss"] if history else None,
        "first_loss": history[0]["loss"] if history else None,
        "steps_done": history[-1]["step"] if history else 0,
        "minutes": (time.monotonic() - started) / 60.0,
        "training_crops": len(crop_set.crops),
        "training_cases": len(case_dirs),
        "skipped": len(crop_set.skipped),
    }
    if training_data is None:
        training_data = (
            f"{len(case_dirs)} cases given to `cervicalai train-encoder`, used without outcome labels "
            "(self-supervised); not for clinical use."
        )
    provenance = {
        "cases": [p.name for p in case_dirs],
        "skipped": crop_set.skipped,
        "history": history,
        "stopped_early": stopped_early,
    }
    check = crop_set.crops[rng.choice(len(crop_set.crops), size=min(16, len(crop_set.crops)), replace=False)]
    bundle = export_encoder_bundle(
        backbone, config, out_dir, check, training_data, version=version, provenance=provenance, metrics=metrics,
        overwrite=overwrite,
    )
    progress(1.0, f"encoder bundle written: {out_dir}")
    return bundle


def export_encoder_bundle(
    backbone,
    config: EncoderTrainingConfig,
    out_dir: str | Path,
    check_inputs: np.ndarray,
    training_data: str,
    version: str = "1.0.0",
    provenance: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Bundle:
    """Export a backbone to ONNX, check it against torch on `check_inputs`, write the encoder bundle."""
    config = config.resolved()
    backbone.eval()
    crop_spec, intensity = config.crop_spec(), config.intensity_spec()
    metrics = dict(metrics or {})
    with tempfile.TemporaryDirectory(prefix="cervicalai-encoder-") as tmp:
        onnx_path = Path(tmp) / "encoder.onnx"
        export_onnx(backbone, crop_spec.input_shape, onnx_path)
        metrics["onnx_max_abs_diff"] = verify_onnx(backbone, onnx_path, check_inputs)
        opset = _onnx_opset(onnx_path)
        manifest = {
            "name": f"tumor-encoder-{config.encoder_name}",
            "version": version,
            "task": "encoder",
            "intended_use": (
                "Research use only, not for clinical use. Deep features of the primary cervical tumour per MRI "
                "sequence, as inputs to a fitted model (DL_score); the features have no meaning on their own."
            ),
            "training_data": training_data,
            **encoder_sections(
                config.encoder_name,
                crop_spec,
                intensity,
                8 * config.width,
                roles=config.roles,
                network_extra={
                    "architecture": f"MONAI ResNet ({'resnet18' if list(config.layers) == [2, 2, 2, 2] else 'resnet10' if list(config.layers) == [1, 1, 1, 1] else 'basic blocks'} "
                    f"{list(config.layers)}, widths {[config.width * m for m in (1, 2, 4, 8)]}, {config.dim}), global average pooling",
                    "training": "SimCLR (NT-Xent) self-supervised, no outcome labels",
                    "opset": opset,
                },
            ),
            "provenance": {
                "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
                **(provenance or {}),
                "software": _versions(),
            },
            "metrics": metrics,
        }
        files = {
            "encoder.onnx": onnx_path,
            "MODEL_CARD.md": model_card(config, metrics.get("training_cases", 0), metrics.get("training_crops", 0), metrics, training_data),
        }
        return write_bundle(out_dir, manifest, files, overwrite=overwrite)


def _onnx_opset(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return int(next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")))


def _versions() -> dict[str, str]:
    import monai
    import onnx
    import torch

    return {"cervicalai": __version__, "torch": torch.__version__, "monai": monai.__version__, "onnx": onnx.__version__, "python": platform.python_version()}


def feature_names(config: EncoderTrainingConfig, role: str) -> list[str]:
    config = config.resolved()
    return [deep_name(role, config.encoder_name, i) for i in range(8 * config.width)]
