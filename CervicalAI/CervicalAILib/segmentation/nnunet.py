"""A site's own nnU-Net v2 model, run with nnU-Net's own predictor (torch; CPU or GPU).

A site exports its reviewed cases (`cervicalai export nnunet`), trains nnU-Net v2 on them, and
points CervicalAI at the trained model folder (`cervicalai segment --nnunet-model FOLDER`):

    FOLDER/dataset.json   channel_names and labels (names -> values), as the export wrote them
    FOLDER/plans.json
    FOLDER/fold_N/checkpoint_final.pth   (every fold present is used, as nnU-Net's own predictor does)

Channels are matched to our sequences and labels to our structures by NAME (`CHANNEL_NAMES`,
`contracts.label_table.canonical_name`), never by number; the model must have a label named tumour. nnU-Net
runs without its own mirroring, once on the image and once on its left-right mirror, and its
softmax (sigmoid for region-based models) gives the probabilities; from there the result is
finished exactly as our own networks' (`finish.finish_segmentation`): organ masks, anatomy
gate (when the model has a cervix/uterus label), post-processing, confidence, summary.

Safety: a checkpoint is a pickle. It is opened with `torch.load(weights_only=True)`, allowing
only numpy scalars and dtypes besides torch's own plain types, so a checkpoint that carries
anything else (code) is refused instead of executed. torch and nnunetv2 are imported inside
the functions (heavy, optional: only this backend needs them).
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from CervicalAILib.contracts.label_table import TUMOR, canonical_name
from CervicalAILib.core.errors import BundleError, InputError
from CervicalAILib.core.json_input import read_json
from CervicalAILib.core.progress import ProgressCallback, no_progress
from CervicalAILib.io.geometry import same_grid
from CervicalAILib.segmentation.anatomy import DEFAULT_ORGAN_MIN_ML, GateSettings, gate_available
from CervicalAILib.segmentation.finish import finish_segmentation
from CervicalAILib.segmentation.ood import not_available

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint_final.pth"

# dataset.json channel names -> our sequence roles (compared lower case, separators removed).
CHANNEL_NAMES: dict[str, str] = {
    "t2w": "T2W", "t2": "T2W", "t2wi": "T2W", "t2weighted": "T2W", "t2tra": "T2W", "t2ax": "T2W",
    "adc": "ADC",
    "dwi": "DWI", "dwihighb": "DWI", "highb": "DWI", "b800": "DWI", "b1000": "DWI", "b1400": "DWI",
    "cet1": "CET1", "cet1wi": "CET1", "t1c": "CET1", "t1ce": "CET1", "t1gd": "CET1", "dce": "CET1",
}

_MODELS: dict[tuple[str, str], NnUNetModel] = {}


@dataclass
class NnUNetModel:
    """A trained nnU-Net model folder, loaded into nnU-Net's predictor."""

    folder: Path
    predictor: Any
    roles: list[str]  # our role of each input channel, in channel order
    heads: dict[str, int]  # canonical structure name -> channel of the predicted probabilities
    dataset: dict[str, Any]
    folds: list[str]
    trainer: str
    configuration: str
    device: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """'nnunet:Dataset501_CervixTumour/nnUNetTrainer__nnUNetPlans__3d_fullres'."""
        return f"nnunet:{self.folder.parent.name}/{self.folder.name}"

    @property
    def version(self) -> str:
        return "folds-" + "-".join(self.folds)

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def structures(self) -> list[str]:
        return [name for name in self.heads if name != TUMOR]


def channel_roles(channel_names: Mapping[str, str], where: Path) -> list[str]:
    """Our roles for dataset.json's channel_names, in channel order; InputError when one is unknown."""
    roles: list[str] = []
    for key in sorted(channel_names, key=lambda k: int(k)):
        name = str(channel_names[key])
        role = CHANNEL_NAMES.get(re.sub(r"[^a-z0-9]", "", name.lower()))
        if role is None:
            raise InputError(
                f"channel {key} is named {name!r}, which is not one of our sequences (name the channels "
                "T2W, ADC, DWI, CET1 as `cervicalai export nnunet` does)", where / "dataset.json",
            )
        if role in roles:
            raise InputError(f"two channels are the {role} sequence", where / "dataset.json")
        roles.append(role)
    if not roles or roles[0] != "T2W":
        raise InputError(f"the first channel must be the T2WI (found {', '.join(roles) or 'none'})", where / "dataset.json")
    return roles


def label_heads(labels: Mapping[str, Any], where: Path) -> dict[str, int]:
    """{canonical structure name: probability channel} from dataset.json's labels.

    Label-based models (softmax): the channel of a label is its position among the sorted label
    values (nnU-Net requires them consecutive from 0, background first). Region-based models
    (sigmoid): the channel of a region is its position among the non-background entries.
    "background" and "ignore" have no structure. A model without a tumour label is refused.
    """
    regions = any(isinstance(v, list | tuple) and len(v) > 1 for v in labels.values())
    heads: dict[str, int] = {}
    if regions:
        entries = [name for name in labels if canonical_name(name) not in ("background", "ignore")]
        for channel, name in enumerate(entries):
            heads[canonical_name(name)] = channel
    else:
        values = sorted({int(v[0] if isinstance(v, list | tuple) else v) for k, v in labels.items()
                         if canonical_name(k) != "ignore"})
        for name, value in labels.items():
            canonical = canonical_name(name)
            if canonical in ("background", "ignore"):
                continue
            heads[canonical] = values.index(int(value[0] if isinstance(value, list | tuple) else value))
    if TUMOR not in heads:
        raise InputError(
            f"the model has no tumour label (labels: {', '.join(labels)}); CervicalAI needs a label named "
            "'tumor' (or 'tumour')", where / "dataset.json",
        )
    return heads


def _read_json(path: Path) -> dict[str, Any]:
    data = read_json(path, path.name)
    if not isinstance(data, dict):
        raise InputError("must hold a JSON object", path)
    return data


def _safe_globals() -> list[Any]:
    """The non-torch objects an nnU-Net checkpoint legitimately holds: numpy scalars and dtypes."""
    core = getattr(np, "_core", None) or np.core
    allowed: list[Any] = [core.multiarray.scalar, np.dtype]
    allowed += sorted({type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDG"}, key=str)
    return allowed


def load_checkpoint(path: Path) -> dict[str, Any]:
    """An nnU-Net checkpoint opened without executing code (see the module docstring)."""
    import pickle

    import torch

    try:
        with torch.serialization.safe_globals(_safe_globals()):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise BundleError(
            f"{path}: the checkpoint holds objects other than weights and plain data; CervicalAI does not "
            f"unpickle it (it could run code). {str(exc).splitlines()[-1][:200]}"
        ) from exc
    except (OSError, RuntimeError, EOFError) as exc:
        raise BundleError(f"{path}: not a readable nnU-Net checkpoint ({exc})") from exc
    for key in ("network_weights", "trainer_name", "init_args"):
        if key not in checkpoint:
            raise BundleError(f"{path}: not an nnU-Net checkpoint (no {key!r})")
    return checkpoint


def _torch_device(device: str) -> tuple[Any, dict[str, str]]:
    import torch

    if device not in ("cpu", "gpu"):
        raise InputError(f"unknown device {device!r} (use cpu or gpu)")
    if device == "gpu":
        if torch.cuda.is_available():
            return torch.device("cuda"), {"requested": device, "provider": "torch cuda", "note": "gpu"}
        note = "gpu requested but torch sees no CUDA GPU; fell back to cpu"
        log.warning(note)
        return torch.device("cpu"), {"requested": device, "provider": "torch cpu", "note": note}
    return torch.device("cpu"), {"requested": device, "provider": "torch cpu", "note": "cpu"}


def load_nnunet_model(folder: str | Path, device: str = "cpu") -> NnUNetModel:
    """Load (once per process) a trained nnU-Net v2 model folder into nnU-Net's predictor."""
    folder = Path(folder)
    key = (str(folder.resolve()), device)
    if key in _MODELS:
        return _MODELS[key]
    if not folder.is_dir():
        raise InputError("nnU-Net model folder not found", folder)
    for name in ("dataset.json", "plans.json"):
        if not (folder / name).is_file():
            raise InputError(
                f"not a trained nnU-Net model folder (no {name}); give the folder nnU-Net trained into, "
                "e.g. nnUNet_results/Dataset501_CervixTumour/nnUNetTrainer__nnUNetPlans__3d_fullres", folder,
            )
    dataset = _read_json(folder / "dataset.json")
    plans = _read_json(folder / "plans.json")
    for needed in ("channel_names", "labels"):
        if not isinstance(dataset.get(needed), dict):
            raise InputError(f"lacks {needed!r}", folder / "dataset.json")
    roles = channel_roles(dataset["channel_names"], folder)
    heads = label_heads(dataset["labels"], folder)
    folds = sorted(
        (p.name[len("fold_"):] for p in folder.glob("fold_*") if (p / CHECKPOINT).is_file()),
        key=lambda f: (f == "all", int(f) if f.isdigit() else 0),
    )
    if not folds:
        raise InputError(f"no fold_*/{CHECKPOINT} (has the training finished?)", folder)

    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    checkpoints = [load_checkpoint(folder / f"fold_{fold}" / CHECKPOINT) for fold in folds]
    first = checkpoints[0]
    trainer_name = str(first["trainer_name"])
    configuration = str(first["init_args"].get("configuration", ""))
    plans_manager = PlansManager(plans)
    if configuration not in plans_manager.available_configurations:
        raise InputError(f"the checkpoint's configuration {configuration!r} is not in plans.json", folder)
    configuration_manager = plans_manager.get_configuration(configuration)
    try:
        trainer_class = recursive_find_trainer_class_by_name(trainer_name)
    except RuntimeError as exc:
        raise InputError(f"the model was trained with {trainer_name!r}, which this nnunetv2 does not have", folder) from exc
    torch_device, device_record = _torch_device(device)
    with contextlib.redirect_stdout(sys.stderr):  # nnU-Net prints; our stdout may carry JSON
        network = trainer_class.build_network_architecture(
            plans_manager, configuration_manager,
            determine_num_input_channels(plans_manager, configuration_manager, dataset),
            plans_manager.get_label_manager(dataset).num_segmentation_heads,
            enable_deep_supervision=False,
        )
        network.load_state_dict(first["network_weights"])
        predictor = nnUNetPredictor(
            tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
            perform_everything_on_device=torch_device.type == "cuda", device=torch_device,
            verbose=False, verbose_preprocessing=False, allow_tqdm=False,
        )
        predictor.manual_initialization(
            network, plans_manager, configuration_manager, [c["network_weights"] for c in checkpoints], dataset,
            trainer_name, first.get("inference_allowed_mirroring_axes"),
        )
    if len(roles) != determine_num_input_channels(plans_manager, configuration_manager, dataset):
        raise InputError("dataset.json's channel_names do not match the network's inputs", folder)
    model = NnUNetModel(folder, predictor, roles, heads, dataset, folds, trainer_name, configuration, device_record)
    log.info("nnU-Net model %s: channels %s, labels %s, folds %s, %s", folder, roles, list(heads), folds,
             device_record["provider"])
    _MODELS[key] = model
    return model


def left_right_axis(image: sitk.Image) -> int:
    """The array axis (of a (z, y, x) array) that runs closest to the patient's left-right (LPS x)."""
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    column = int(np.argmax(np.abs(direction[0, :])))  # index axis i, j, k most aligned with x
    return 2 - column


def _predict(model: NnUNetModel, volume: np.ndarray, spacing_zyx: list[float]) -> np.ndarray:
    """nnU-Net's probabilities (heads, z, y, x) on the input grid."""
    with contextlib.redirect_stdout(sys.stderr):
        _, probabilities = model.predictor.predict_single_npy_array(
            volume, {"spacing": spacing_zyx}, None, None, True
        )
    return np.asarray(probabilities, dtype=np.float32)


def segment_with_nnunet(
    images: Mapping[str, sitk.Image],
    folder: str | Path,
    device: str = "cpu",
    progress: ProgressCallback | None = None,
):
    """Segment with a site's nnU-Net model; the same result and summary as `segment_case`."""

    progress = progress or no_progress
    seconds: dict[str, float] = {}
    warnings: list[str] = []
    start = time.perf_counter()
    model = load_nnunet_model(folder, device)
    missing = [role for role in model.roles if role not in images]
    if missing:
        raise InputError(f"the nnU-Net model needs {', '.join(model.roles)}; missing: {', '.join(missing)}")
    t2 = images["T2W"]
    seconds["load_model"] = time.perf_counter() - start

    tick = time.perf_counter()
    progress(0.02, "preparing the sequences on the T2WI grid")
    channels = []
    for role in model.roles:
        image = images[role]
        if not same_grid(image, t2):  # the export put every channel on the T2WI grid; so does inference
            image = sitk.Resample(image, t2, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        channels.append(sitk.GetArrayFromImage(image).astype(np.float32))
    volume = np.stack(channels)
    spacing_zyx = [float(s) for s in t2.GetSpacing()[::-1]]
    seconds["preprocess"] = time.perf_counter() - tick

    tick = time.perf_counter()
    progress(0.05, "nnU-Net: original image")
    original = _predict(model, volume, spacing_zyx)
    progress(0.5, "nnU-Net: left-right mirrored image")
    axis = left_right_axis(t2)
    mirrored = np.flip(_predict(model, np.ascontiguousarray(np.flip(volume, axis=axis + 1)), spacing_zyx), axis=axis + 1)
    seconds["network"] = time.perf_counter() - tick

    tumour = model.heads[TUMOR]
    passes = [original[tumour], np.ascontiguousarray(mirrored[tumour])]
    structures = {name: (original[c] + mirrored[c]) / 2 for name, c in model.heads.items() if name != TUMOR}
    gate = GateSettings()
    record = {
        "model": {
            "name": model.name,
            "version": model.version,
            "label": model.label,
            "path": str(model.folder),
            "training_data": f"a site's own nnU-Net v2 training ({model.trainer}, {model.configuration}, "
            f"{model.dataset.get('numTraining', '?')} training cases)",
            "backend": "nnunetv2",
            "source": "user-supplied",  # a site's own model: never in the catalogue of shipped bundles
            "labels": dict(model.dataset["labels"]),
        },
        "device": model.device,
        "sequences_used": list(model.roles),
        "sequences_available": list(images),
        "fallback": None,
        "sequence_coverage": {},
    }
    return finish_segmentation(
        t2, passes, structures, record,
        postprocessing={"threshold": 0.5},
        organ_threshold=0.5,
        organ_min_ml=DEFAULT_ORGAN_MIN_ML,
        flag_below=0.75,
        gate=gate if gate_available(model.structures, gate) else None,
        gate_missing="the nnU-Net model has no cervix or uterus label to check the tumour against",
        ood=not_available("no out-of-distribution description for a site's own nnU-Net model"),
        warnings=warnings, seconds=seconds, start=start, progress=progress,
    )
