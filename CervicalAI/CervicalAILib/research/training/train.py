"""Training the tumour segmentation network (MONAI + torch) and exporting it as a bundle.

Recipe (docs/segmentation.md): co-registered sequences on a 1.5 x 1.5 x 4 mm working grid,
z-score normalisation inside the body per sequence; 80 x 80 x 16 patches, two of three centred
on tumour; left-right flips, small in-plane rotations and scaling, intensity scale/shift,
Gaussian noise; Dice + binary cross-entropy; AdamW with polynomial learning-rate decay;
validation Dice on whole held-out volumes after every epoch (sliding window, exactly as at run
time) with early stopping; every epoch re-seeded from (seed, epoch), so a resumed run continues
exactly as an uninterrupted one would. Checkpoints are plain torch files in the work folder
(never in a bundle); the bundle gets the ONNX export of the best epoch.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from CervicalAILib.contracts.label_table import TUMOR, canonical_name
from CervicalAILib.core.atomic import atomic_path, write_json
from CervicalAILib.core.errors import InputError, OutputExistsError
from CervicalAILib.core.progress import ProgressCallback, no_progress, sub_progress
from CervicalAILib.io.measurements import mask_dice
from CervicalAILib.research.training.dataset import CachedCase, build_cache, find_cases, training_range
from CervicalAILib.research.training.export import (
    initialise_from_bundle,
    starting_bundle,
    write_segmentation_bundle,
)
from CervicalAILib.research.training.network import DEFAULT_ARCHITECTURE, build_network, size_multiple_zyx
from CervicalAILib.research.training.ood import attach_ood, vectors_from_volumes
from CervicalAILib.research.training.synthesis import synthesize
from CervicalAILib.segmentation.anatomy import largest_part
from CervicalAILib.segmentation.inference import SegmentationModel
from CervicalAILib.segmentation.preprocess import pad_to_shape
from CervicalAILib.segmentation.sliding_window import MIRRORED_PASSES_ZYX, fit_patch, sliding_window_predict

log = logging.getLogger(__name__)

ZSCORE = {"method": "zscore", "foreground_fraction": 0.1, "reference_percentile": 99.0, "clip": 5.0}


def default_preprocessing(roles: Sequence[str], spacing_mm: Sequence[float] = (1.5, 1.5, 4.0),
                          orientation: str = "LPS-nearest") -> dict[str, Any]:
    """The preprocessing declaration written into the bundle and applied by the runtime."""
    return {
        "working_spacing_mm": [float(s) for s in spacing_mm],
        "orientation": orientation,
        "interpolation": "linear",
        "normalization": {role: dict(ZSCORE) for role in roles},
        "pad": "channel_minimum",
        "registration": "rigid onto the T2WI (CervicalAILib.registration.register_to_t2) before preprocessing",
    }


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in the checkpoint and in the bundle)."""

    cases: list[str]
    out: str
    roles: list[str] = field(default_factory=lambda: ["T2W", "ADC", "DWI"])
    # output channels, tumour first; the others are read by name from labels/organs.nii.gz
    structures: list[str] = field(default_factory=lambda: ["tumor"])
    # share of training samples whose image is synthesised from the label map (domain randomisation)
    synth_fraction: float = 0.0
    # spatial augmentation besides the in-plane rotation (+-15 degrees): tilt of the slice plane (degrees;
    # 0 as the shipped networks were trained) and in-plane scaling (+-share)
    tilt_degrees: float = 0.0
    scale_fraction: float = 0.1
    name: str = "cervix-tumor-seg"
    version: str = "1.0.0"
    work_dir: str | None = None
    epochs: int = 60
    iterations_per_epoch: int = 60
    batch_size: int = 2
    patch_size_xyz: list[int] = field(default_factory=lambda: [80, 80, 16])
    # Run-time patch = training patch: instance normalisation computes its statistics over the
    # patch, so a network trained on 80x80x16 patches misbehaves on whole-volume patches.
    inference_patch_size_xyz: list[int] = field(default_factory=lambda: [80, 80, 16])
    working_spacing_mm: list[float] = field(default_factory=lambda: [1.5, 1.5, 4.0])
    # working-grid axes (segmentation.preprocess.ORIENTATIONS): the T2WI's slice plane, or axis-aligned
    orientation: str = "LPS-nearest"
    architecture: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_ARCHITECTURE))
    learning_rate: float = 2e-3
    weight_decay: float = 1e-5
    positive_fraction: float = 2 / 3
    val_fraction: float = 0.1
    min_val_cases: int = 2
    patience: int = 10
    seed: int = 0
    device: str = "cpu"
    threads: int = 2
    max_minutes: float | None = None
    register: bool = True
    jobs: int = 1
    resume: bool = False
    # a segmentation bundle whose weights start the run (fine-tuning); same inputs, outputs and architecture
    init_from: str | None = None
    export_only: bool = False
    # export the last epoch instead of the best-scoring one (with the learning rate decayed to zero the
    # final weights are settled; a 17-case validation score can rank an epoch first on one case's flip)
    export_final: bool = False
    overwrite: bool = False
    # labelled cases never trained on (folders or cohorts) that choose the tumour probability threshold
    # and the out-of-distribution threshold; default: the validation cases (a few cases: one case's
    # flip can move the threshold, so give a cohort of a hundred or so when there is one)
    calibration: list[str] | None = None
    # out-of-distribution score: fitted on the training cases, threshold from the calibration cases
    ood: bool = True
    ood_false_alarm_rate: float = 0.05

    def work_path(self) -> Path:
        return Path(self.work_dir) if self.work_dir else Path(str(self.out) + ".work")


def choose_device(requested: str) -> str:
    """torch device name: "cuda" when a GPU is asked for and present, else "cpu" (logged)."""
    import torch

    if requested not in ("cpu", "gpu"):
        raise InputError(f"unknown device {requested!r} (use cpu or gpu)")
    if requested == "gpu":
        if torch.cuda.is_available():
            log.info("training on GPU: %s", torch.cuda.get_device_name(0))
            return "cuda"
        log.warning("a GPU was requested but torch sees none; training on the CPU")
    log.info("training on CPU (%d threads)", torch.get_num_threads())
    return "cpu"


def split_cases(cases: Sequence[Path], val_fraction: float, min_val: int, seed: int) -> tuple[list[Path], list[Path]]:
    """Deterministic train/validation split by seed."""
    if len(cases) < 2:
        raise InputError(f"training needs at least 2 cases (one to validate on), found {len(cases)}")
    order = np.random.default_rng(seed).permutation(len(cases))
    n_val = min(max(int(round(len(cases) * val_fraction)), min_val), len(cases) - 1)
    val = sorted(cases[i] for i in order[:n_val])
    train = sorted(cases[i] for i in order[n_val:])
    return train, val


def augmentation(
    patch_zyx: Sequence[int],
    elastic: bool = False,
    tilt_degrees: float = 0.0,
    scale_fraction: float = 0.1,
    spacing_zyx: Sequence[float] = (4.0, 1.5, 1.5),
):
    """MONAI dictionary transforms applied to each sampled (larger) crop -> patch.

    `elastic` (with domain randomisation): a smooth random deformation first, as SynthSeg
    deforms its label maps, so that shapes vary beyond what the generator drew.
    The affine step (p 0.5) turns the patch in-plane by up to 15 degrees and scales it in-plane by up to
    `scale_fraction`; `tilt_degrees` also tilts the slice plane by up to that many degrees about each
    in-plane axis (an oblique acquisition). MONAI rotates in voxel indices, so the tilt is converted with
    the working grid's spacing (4 mm slices, 1.5 mm pixels: 20 degrees is 7.8 degrees in voxel indices)."""
    from monai.transforms import (
        CenterSpatialCropd,
        Compose,
        Rand3DElasticd,
        RandAffined,
        RandFlipd,
        RandGaussianNoised,
        RandScaleIntensityd,
        RandShiftIntensityd,
    )

    keys = ["image", "label"]
    slice_mm, pixel_mm = float(spacing_zyx[0]), float(min(spacing_zyx[1:]))
    tilt = math.atan(math.tan(math.radians(tilt_degrees)) * pixel_mm / slice_mm)
    deform = [
        Rand3DElasticd(keys, sigma_range=(4, 7), magnitude_range=(20, 60), prob=0.3, mode=("bilinear", "nearest"),
                       padding_mode="border")
    ] if elastic else []
    return Compose(
        deform + [
            RandAffined(
                keys,
                prob=0.5,
                rotate_range=(math.radians(15), tilt, tilt),  # about the slice axis (in-plane), then the tilt
                scale_range=(0.0, scale_fraction, scale_fraction),
                mode=("bilinear", "nearest"),
                padding_mode="border",
                spatial_size=tuple(patch_zyx),
            ),
            CenterSpatialCropd(keys, roi_size=tuple(patch_zyx)),
            RandFlipd(keys, prob=0.5, spatial_axis=2),  # left-right
            RandScaleIntensityd("image", factors=0.15, prob=0.5),
            RandShiftIntensityd("image", offsets=0.15, prob=0.5),
            RandGaussianNoised("image", prob=0.3, std=0.1),
        ]
    )


class PatchSampler:
    """Crops around tumour (with probability `positive_fraction`) or anywhere in the volume.

    A sample holds "image" (C, z, y, x), "label" (K, z, y, x) float targets and, when the case has
    one, "label_map" (z, y, x) for domain randomisation."""

    def __init__(self, cases: Sequence[CachedCase], crop_zyx: Sequence[int], positive_fraction: float):
        self.crop = [int(c) for c in crop_zyx]
        self.positive_fraction = positive_fraction
        self.items = []
        for case in cases:
            image, _ = pad_to_shape(case.image, self.crop)
            targets, _ = pad_to_shape(case.targets.astype(np.float32), self.crop)
            targets = targets.astype(np.uint8)  # padding value of a target is its minimum, 0
            label_map = None
            if case.label_map is not None:
                label_map = pad_to_shape(case.label_map[None].astype(np.float32), self.crop)[0][0].astype(np.uint8)
            self.items.append((image, targets, np.argwhere(targets[0] > 0), label_map))

    def sample(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        image, targets, foreground, label_map = self.items[int(rng.integers(len(self.items)))]
        shape = image.shape[1:]
        if len(foreground) and rng.random() < self.positive_fraction:
            centre = foreground[int(rng.integers(len(foreground)))]
        else:
            centre = [int(rng.integers(n)) for n in shape]
        start = [int(np.clip(c - k // 2, 0, n - k)) for c, k, n in zip(centre, self.crop, shape, strict=True)]
        region = tuple(slice(s, s + k) for s, k in zip(start, self.crop, strict=True))
        sample = {"image": image[(slice(None), *region)].copy(), "label": targets[(slice(None), *region)].astype(np.float32)}
        if label_map is not None:
            sample["label_map"] = label_map[region]
        return sample


def predict_volume(
    net, volume: np.ndarray, patch_zyx: Sequence[int], multiple_zyx: Sequence[int], device: str
) -> np.ndarray:
    """Probabilities (K, z, y, x) of a whole working-grid volume, as the runtime computes them."""
    import torch

    def run(patch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.sigmoid(net(torch.from_numpy(patch).to(device))).cpu().numpy()

    patch = fit_patch(patch_zyx, volume.shape[1:], multiple_zyx)
    return sliding_window_predict(volume, run, patch, overlap=0.25)


THRESHOLDS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8)


def mirrored_mean_probabilities(
    net, volume: np.ndarray, patch_zyx: Sequence[int], multiple_zyx: Sequence[int], device: str
) -> np.ndarray:
    """Every structure's probability (K, z, y, x) as the runtime thresholds it: the mean of the pass on
    the volume and the passes on its mirrors (`MIRRORED_PASSES_ZYX`, which the exported bundle declares),
    mapped back."""
    passes = [predict_volume(net, volume, patch_zyx, multiple_zyx, device)]
    for axes in MIRRORED_PASSES_ZYX:
        flip = tuple(axis + 1 for axis in axes)  # the volume is (channels, z, y, x)
        mirrored = predict_volume(net, np.ascontiguousarray(np.flip(volume, flip)), patch_zyx, multiple_zyx, device)
        passes.append(np.flip(mirrored, flip))
    return np.mean(passes, axis=0)


def choose_thresholds(
    net, cases: Sequence[CachedCase], structures: Sequence[str], patch_zyx: Sequence[int],
    multiple_zyx: Sequence[int], device: str,
) -> tuple[float, dict[str, float], dict[str, float], dict[str, dict[str, float]]]:
    """The tumour threshold (of THRESHOLDS) with the best mean Dice on `cases`, and each organ's
    threshold with the best median Dice; with the Dice by threshold behind each choice.

    Dice + cross-entropy training can leave a network under-confident (probabilities just below
    0.5), and not equally for every structure (the 2.5.0 network's uterus is best cut at 0.3, its
    vagina at 0.5); the run time reads the chosen thresholds from the bundle. It thresholds the
    mean of the original and the mirrored passes, so that is what is scored here: the mirrored pass
    softens the probabilities, and on the 2.3.0 network the best tumour threshold for one pass
    (0.65) was not the best for the mean (0.55). Each organ is scored alone, as its largest
    connected part (what the run time keeps); the median, not the mean, because a few cases where
    an organ is mostly missed pull the mean towards thresholds that thicken every other case's organ.
    """
    tumour: dict[float, list[float]] = {t: [] for t in THRESHOLDS}
    organs: dict[str, dict[float, list[float]]] = {name: {t: [] for t in THRESHOLDS} for name in structures[1:]}
    for case in cases:
        probabilities = mirrored_mean_probabilities(net, case.image, patch_zyx, multiple_zyx, device)
        for t in THRESHOLDS:
            tumour[t].append(mask_dice(probabilities[0] >= t, case.label > 0))
        for channel, name in enumerate(structures[1:], start=1):
            truth = case.targets[channel] > 0
            for t in THRESHOLDS:
                organs[name][t].append(mask_dice(largest_part(probabilities[channel] >= t), truth))
    tumour_scores = {f"{t:.2f}": round(float(np.mean(v)), 4) for t, v in tumour.items()}
    best = max(THRESHOLDS, key=lambda t: (tumour_scores[f"{t:.2f}"], t))  # ties: the higher threshold
    organ_scores = {name: {f"{t:.2f}": round(float(np.median(v)), 4) for t, v in by.items()}
                    for name, by in organs.items()}
    organ_best = {name: float(max(THRESHOLDS, key=lambda t, s=scores: (s[f"{t:.2f}"], t)))
                  for name, scores in organ_scores.items()}
    return float(best), tumour_scores, organ_best, organ_scores


def validation_record(
    net, val_data: Sequence[CachedCase], structures: Sequence[str], patch_zyx, multiple_zyx, device: str
) -> dict[str, Any]:
    """Dice of every structure on the whole validation volumes (threshold 0.5), and the score that
    picks the best epoch: the tumour's mean Dice, averaged with the organs' mean Dice when there are organs."""
    dice = {name: [] for name in structures}
    for case in val_data:
        probabilities = predict_volume(net, case.image, patch_zyx, multiple_zyx, device)
        for channel, name in enumerate(structures):
            dice[name].append(mask_dice(probabilities[channel] >= 0.5, case.targets[channel] > 0))
    tumour = dice[structures[0]]
    organs = [float(np.mean(dice[name])) for name in structures[1:]]
    score = float(np.mean(tumour)) if not organs else 0.5 * float(np.mean(tumour)) + 0.5 * float(np.mean(organs))
    return {
        "val_dice_mean": float(np.mean(tumour)),
        "val_dice_median": float(np.median(tumour)),
        "val_structure_dice_mean": {name: round(float(np.mean(values)), 4) for name, values in dice.items()},
        "val_score": score,
    }


def _exported_entry(record: dict[str, Any], epoch: int) -> dict[str, Any]:
    """What the run keeps of the epoch it will export (-1: the starting model), from its validation record."""
    return {"dice": record["val_dice_mean"], "epoch": epoch, "median": record["val_dice_median"],
            "score": record["val_score"], "structures": record["val_structure_dice_mean"]}


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def train_segmentation(config: TrainConfig, progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Run (or resume) training, export the best epoch as a bundle at `config.out`; returns the report."""
    import torch

    progress = progress or no_progress
    started = time.perf_counter()
    out = Path(config.out)
    if out.exists() and any(out.iterdir()) and not config.overwrite:
        raise OutputExistsError(f"{out}: bundle folder exists and is not empty (use --overwrite to replace it)")
    if config.roles[0] != "T2W":
        raise InputError(f"the first role must be T2W (the reference grid), got {config.roles}")
    structures = [canonical_name(name) for name in config.structures]
    if not structures or structures[0] != TUMOR or len(set(structures)) != len(structures):
        raise InputError(f"structures must be distinct names with the tumour first, got {config.structures}")
    if not 0.0 <= config.synth_fraction <= 1.0:
        raise InputError(f"synth_fraction must be between 0 and 1, got {config.synth_fraction}")
    multiple = size_multiple_zyx(config.architecture)
    for name in ("patch_size_xyz", "inference_patch_size_xyz"):
        zyx = getattr(config, name)[::-1]
        if any(int(s) % m for s, m in zip(zyx, multiple, strict=True)):
            raise InputError(f"{name} {getattr(config, name)} must be multiples of {multiple[::-1]} (x, y, z)")
    torch.set_num_threads(max(int(config.threads), 1))
    device = choose_device(config.device)
    work = config.work_path()
    work.mkdir(parents=True, exist_ok=True)

    # what can fail fast is checked before the cases are prepared, which can take many minutes
    last_path, best_path = work / "last.pt", work / "best.pt"
    if config.export_only and not last_path.is_file():
        raise InputError(f"--export-only: no checkpoint (last.pt) in {work}")
    start_from = None
    if config.init_from and not config.export_only:
        start_from = starting_bundle(config.init_from, config.roles, structures, config.architecture,
                                     config.working_spacing_mm)
    calibration_dirs = find_cases(config.calibration) if config.calibration else []
    cases = find_cases(config.cases)
    overlap = sorted({Path(d).resolve() for d in calibration_dirs} & {Path(d).resolve() for d in cases})
    if overlap:
        raise InputError(f"calibration case {overlap[0]} is also a training case: calibration cases must be held out")
    train_dirs, val_dirs = split_cases(cases, config.val_fraction, config.min_val_cases, config.seed)
    log.info("%d training cases, %d validation cases", len(train_dirs), len(val_dirs))
    preprocessing = default_preprocessing(config.roles, config.working_spacing_mm, config.orientation)
    data = build_cache(
        train_dirs + val_dirs, config.roles, preprocessing, work / "cache", config.register, config.jobs,
        sub_progress(progress, 0.0, 0.15), structures, with_label_map=config.synth_fraction > 0,
    )
    train_data, val_data = data[: len(train_dirs)], data[len(train_dirs) :]

    patch_zyx = [int(v) for v in config.patch_size_xyz[::-1]]
    crop_zyx = [p if i == 0 else int(math.ceil(p * 1.25)) for i, p in enumerate(patch_zyx)]
    sampler = PatchSampler(train_data, crop_zyx, config.positive_fraction)
    transforms = augmentation(patch_zyx, elastic=config.synth_fraction > 0, tilt_degrees=config.tilt_degrees,
                              scale_fraction=config.scale_fraction, spacing_zyx=config.working_spacing_mm[::-1])
    normalization = [preprocessing["normalization"][role] for role in config.roles]
    torch.manual_seed(config.seed)  # the initial weights depend on the seed only
    net = build_network(config.architecture, len(config.roles), len(structures)).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    from monai.losses import DiceCELoss

    loss_function = DiceCELoss(sigmoid=True, batch=True)
    history: list[dict[str, Any]] = []
    best = {"dice": -1.0, "epoch": -1, "score": -1.0}
    first_epoch = 0
    if not (config.resume or config.export_only):  # a fresh run must never export an old run's weights
        for stale in (last_path, best_path, work / "history.json", work / "stop_reason.json"):
            stale.unlink(missing_ok=True)
    stop_reason = "reached the epoch limit"
    state: dict[str, Any] = {}
    if (config.resume or config.export_only) and last_path.is_file():
        state = torch.load(last_path, map_location=device, weights_only=True)
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history, best, first_epoch = state["history"], state["best"], int(state["epoch"]) + 1
        if (work / "stop_reason.json").is_file():
            stop_reason = json.loads((work / "stop_reason.json").read_text(encoding="utf-8"))["stop_reason"]
        log.info("resumed from %s after epoch %d (best validation Dice %.4f)", last_path, first_epoch - 1, best["dice"])
    elif config.resume:
        log.warning("--resume: no checkpoint in %s, starting from scratch", work)
    inference_zyx = [int(v) for v in config.inference_patch_size_xyz[::-1]]
    initialised_from = state.get("initialised_from") if first_epoch > 0 else None
    if start_from is not None and first_epoch == 0:
        initialised_from = initialise_from_bundle(net, start_from, len(config.roles))
        log.info("starting from the weights of %s (read back to %.1e of its output)", initialised_from["label"],
                 initialised_from["torch_vs_onnx_max_abs_difference"])
        # the starting model is the score to beat: if no epoch improves on it, it is what gets exported
        start = validation_record(net, val_data, structures, inference_zyx, multiple, device)
        best = _exported_entry(start, epoch=-1)
        initialised_from["validation_score"] = start["val_score"]
        _save_checkpoint(best_path, {"model": net.state_dict(), "epoch": -1})
        log.info("starting model: validation tumour Dice %.4f, score %.4f", start["val_dice_mean"], start["val_score"])

    total_iterations = config.epochs * config.iterations_per_epoch
    epoch = first_epoch - 1
    for epoch in range(first_epoch, config.epochs if not config.export_only else first_epoch):
        epoch_start = time.perf_counter()
        torch.manual_seed(config.seed * 100_003 + epoch)
        rng = np.random.default_rng([config.seed, epoch])
        transforms.set_random_state(seed=(config.seed * 100_003 + epoch) % (2**31))
        net.train()
        losses = []
        for iteration in range(config.iterations_per_epoch):
            step = epoch * config.iterations_per_epoch + iteration
            for group in optimizer.param_groups:
                group["lr"] = config.learning_rate * (1 - step / total_iterations) ** 0.9
            batch = [transforms(_randomised(sampler.sample(rng), config.synth_fraction, normalization, rng))
                     for _ in range(config.batch_size)]
            images = torch.stack([torch.as_tensor(np.asarray(b["image"])) for b in batch]).float().to(device)
            labels = torch.stack([torch.as_tensor(np.asarray(b["label"])) for b in batch]).float().to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_function(net(images), labels)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.item()))
            fraction = 0.15 + 0.8 * (step + 1 - first_epoch * config.iterations_per_epoch) / max(
                total_iterations - first_epoch * config.iterations_per_epoch, 1
            )
            if iteration % 10 == 0:
                progress(fraction, f"epoch {epoch + 1}/{config.epochs} iteration {iteration + 1} loss {loss.item():.4f}")
        net.eval()
        record = {
            "epoch": epoch,
            "loss": float(np.mean(losses)),
            **validation_record(net, val_data, structures, inference_zyx, multiple, device),
            "seconds": round(time.perf_counter() - epoch_start, 1),
        }
        history.append(record)
        improved = record["val_score"] > best.get("score", best["dice"]) + 1e-3
        if improved:
            best = _exported_entry(record, epoch)
            _save_checkpoint(best_path, {"model": net.state_dict(), "epoch": epoch})
        _save_checkpoint(
            last_path,
            {"model": net.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch, "history": history, "best": best,
             "config": asdict(config), "initialised_from": initialised_from},
        )
        write_json(work / "history.json", history)
        log.info(
            "epoch %d: loss %.4f, validation tumour Dice %.4f (median %.4f), score %.4f%s, %.0f s",
            epoch + 1, record["loss"], record["val_dice_mean"], record["val_dice_median"], record["val_score"],
            " *best*" if improved else "", record["seconds"],
        )
        if epoch - best["epoch"] >= config.patience:
            stop_reason = f"early stop: no validation improvement for {config.patience} epochs"
            break
        elapsed_minutes = (time.perf_counter() - started) / 60
        if config.max_minutes is not None and elapsed_minutes + record["seconds"] / 60 > config.max_minutes:
            stop_reason = f"time budget of {config.max_minutes} minutes reached"
            break
    log.info("training stopped after epoch %d: %s", epoch + 1, stop_reason)
    if not best_path.is_file() or (config.export_final and not history):
        raise InputError(f"no trained epoch to export in {work} (was --epochs 0?)")
    write_json(work / "stop_reason.json", {"stop_reason": stop_reason})  # for a later --export-only
    if config.export_final:
        final = history[-1]
        best = _exported_entry(final, final["epoch"])
        log.info("exporting the final epoch %d (validation score %.4f)", final["epoch"] + 1, final["val_score"])
    net.load_state_dict(torch.load(last_path if config.export_final else best_path, map_location=device,
                                   weights_only=True)["model"])
    net.eval()
    calibration, threshold_cases = val_data, f"the {len(val_data)} validation cases"
    if calibration_dirs:
        calibration = build_cache(calibration_dirs, config.roles, preprocessing, work / "cache", config.register,
                                  config.jobs, sub_progress(progress, 0.9, 0.93))
        cohorts = ", ".join(sorted({Path(d).parent.name for d in calibration_dirs}))
        threshold_cases = f"{len(calibration)} held-out calibration cases ({cohorts})"
    progress(0.94, f"choosing the probability thresholds on {threshold_cases}")
    threshold, dice_by_threshold, organ_threshold, organ_dice_by_threshold = choose_thresholds(
        net, calibration, structures, inference_zyx, multiple, device)
    log.info("tumour threshold %.2f: mean Dice %.4f on %s", threshold, dice_by_threshold[f"{threshold:.2f}"],
             threshold_cases)
    for name, value in organ_threshold.items():
        log.info("%s threshold %.2f: median Dice %.4f", name, value, organ_dice_by_threshold[name][f"{value:.2f}"])
    net = net.to("cpu")
    progress(0.96, "exporting to ONNX and verifying against torch")
    report = {
        "stop_reason": stop_reason,
        "epochs_run": len(history),
        "best_epoch": best["epoch"] + 1,
        "exported_epoch": "final" if config.export_final else "best validation score",
        "validation": {
            "cases": [c.case_id for c in val_data],
            "dice_mean_working_grid": round(best["dice"], 4),
            "dice_median_working_grid": round(best.get("median", best["dice"]), 4),
            "threshold": threshold,
            "threshold_chosen_on": threshold_cases,
            "dice_mean_by_threshold": dice_by_threshold,
            "organ_threshold": organ_threshold,
            "organ_dice_median_by_threshold": organ_dice_by_threshold,
            "structure_dice_mean_working_grid": best.get("structures", {structures[0]: round(best["dice"], 4)}),
        },
        "training_cases": len(train_data),
        "device": device,
        "training_minutes": round(sum(h["seconds"] for h in history) / 60, 1),
        "initialised_from": initialised_from,
        "history": history,
    }
    bundle, verification = write_segmentation_bundle(
        net, config, preprocessing, training_range(train_data, config.roles), report, cases
    )
    if config.ood:
        progress(0.98, "fitting the out-of-distribution score")
        bundle = fit_bundle_ood(bundle, config, train_data, calibration, threshold_cases,
                                sub_progress(progress, 0.98, 0.995))
        report["ood"] = bundle.manifest["ood"]
    report["onnx_max_abs_difference"] = verification
    report["bundle"] = str(bundle.path)
    progress(1.0, f"bundle written: {bundle.path}")
    return report


def _randomised(
    sample: dict[str, np.ndarray], synth_fraction: float, normalization: Sequence[dict[str, Any]],
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """The sample with (at `synth_fraction`) its image replaced by one synthesised from its label map."""
    label_map = sample.pop("label_map", None)
    if label_map is not None and synth_fraction > 0 and rng.random() < synth_fraction:
        sample["image"] = synthesize(label_map, normalization, rng)
    return sample


def fit_bundle_ood(bundle, config: TrainConfig, train_data, calibration, calibration_described: str,
                   progress: ProgressCallback):
    """The bundle again with its OOD score: feature vectors of the (cached) training cases, the
    threshold from the calibration cases (the held-out ones, or the validation cases)."""
    model = SegmentationModel(bundle)
    fit_vectors = vectors_from_volumes(model, [c.image for c in train_data], sub_progress(progress, 0.0, 0.8))
    calibration_vectors = vectors_from_volumes(model, [c.image for c in calibration], sub_progress(progress, 0.8, 1.0))
    described = {"fit_data": f"the {len(train_data)} training cases", "calibration_data": calibration_described}
    return attach_ood(bundle, config.out, fit_vectors, calibration_vectors, config.ood_false_alarm_rate, described)
