"""CervicalAI settings kept in Slicer's application settings (qt.QSettings), shared by the modules.

Keys, defaults and checks live here (no Qt): the hub reads and writes them with QSettings,
Segment and Predict read them with `slicer.util.settingsValue`. What they mean for the engine:

- device: "cpu" or "gpu" (onnxruntime-gpu with a CUDA GPU; the engine falls back to the CPU);
- bundle folder: a folder of model bundles used instead of the shipped ones (the engine's
  CERVICALAI_MODELS); empty = the shipped bundles;
- nnU-Net model folder: a site's own trained nnU-Net v2 model folder; when set, Segment runs it
  (`cervicalai segment --nnunet-model FOLDER`) instead of the segmentation bundles;
- reviewer name: recorded with "Mark as reviewed".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEVICES = ("cpu", "gpu")


@dataclass(frozen=True)
class Setting:
    key: str  # QSettings key
    default: str
    label: str


SETTINGS: dict[str, Setting] = {
    "device": Setting("CervicalAI/Device", "cpu", "Device for the networks (cpu or gpu)"),
    "bundleFolder": Setting("CervicalAI/BundleFolder", "", "Model bundle folder (empty: the shipped models)"),
    "reviewerName": Setting("CervicalAI/ReviewerName", "", "Reviewer name recorded with reviews"),
    "nnunetModelFolder": Setting("CervicalAI/NNUNetModelFolder", "",
                                 "A site's own trained nnU-Net v2 model folder (empty: the segmentation bundles)"),
}


def read_settings(get: Callable[[str, str], Any]) -> dict[str, str]:
    """All settings as strings: get(key, default) is e.g. `slicer.util.settingsValue`."""
    values = {}
    for name, setting in SETTINGS.items():
        value = get(setting.key, setting.default)
        values[name] = setting.default if value is None else str(value).strip()
    if values["device"] not in DEVICES:
        values["device"] = SETTINGS["device"].default  # a hand-edited or old value: fall back, never fail
    return values


def settings_problems(values: dict[str, str]) -> list[str]:
    """What is wrong with the settings, in words (empty list when they are usable)."""
    problems = []
    if values.get("device") not in DEVICES:
        problems.append(f"device must be cpu or gpu, not {values.get('device')!r}")
    folder = values.get("bundleFolder", "")
    if folder:
        path = Path(folder)
        if not path.is_dir():
            problems.append(f"model bundle folder {folder} does not exist")
        elif not any((child / "bundle.json").is_file() for child in path.iterdir() if child.is_dir()):
            problems.append(f"model bundle folder {folder} holds no model bundle (sub-folders with bundle.json)")
    nnunet = values.get("nnunetModelFolder", "")
    if nnunet and not all((Path(nnunet) / name).is_file() for name in ("dataset.json", "plans.json")):
        problems.append(f"nnU-Net model folder {nnunet} is not a trained nnU-Net model folder (dataset.json, plans.json)")
    return problems


def engine_environment_extra(values: dict[str, str]) -> dict[str, str]:
    """Environment variables that point the engine's background process at the chosen bundles."""
    folder = values.get("bundleFolder", "")
    return {"CERVICALAI_MODELS": str(Path(folder).resolve())} if folder else {}
