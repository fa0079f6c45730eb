"""Where the default model bundles live.

Search order: the CERVICALAI_MODELS environment variable (a site's own bundle folder), the
source checkout's `Resources/Models/`, and `CervicalAIModels/` beside the scripted modules in an
installed Slicer extension (see the top-level CMakeLists.txt).
"""

from __future__ import annotations

import os
from pathlib import Path

from CervicalAILib.core.errors import BundleError

# Default bundle folder names under the models directory, by what they are for.
DEFAULT_BUNDLES = {
    "segmentation": "cervix-tumor-seg-mpmri",  # T2W + ADC + DWI (+ CET1) segmentation network
    "segmentation-t2": "cervix-tumor-seg-t2",  # T2W-only fallback when sequences are missing
    "encoder-2d": "tumor-encoder-resnet2d",  # deep-feature encoders (self-supervised, no outcome labels)
    "encoder-3d": "tumor-encoder-resnet3d",
    "lnm": "dlrc-lnm",  # DLRC risk model for lymph-node metastasis
    "stage_group": "dlrc-stage-group",  # surgery vs chemoradiotherapy group
}
# Bundles used when the models folder holds them, beside the defaults: the LNM model without contrast
# (T2WI + DWI) for a study without CE-T1WI (`cervicalai study-report`); without it, such a study's LNM
# risk is unavailable. The catalogue records these purposes too (default_for).
OPTIONAL_BUNDLES = {
    "lnm-no-contrast": "dlrc-lnm-no-contrast",
}


def models_dir_candidates() -> list[Path]:
    here = Path(__file__).resolve()
    candidates = []
    if os.environ.get("CERVICALAI_MODELS"):
        candidates.append(Path(os.environ["CERVICALAI_MODELS"]))
    candidates.append(here.parents[3] / "Resources" / "Models")  # source checkout
    candidates.append(here.parents[2] / "CervicalAIModels")  # installed Slicer extension
    return candidates


def models_dir() -> Path:
    """The first existing models directory; BundleError listing where it looked if none."""
    candidates = models_dir_candidates()
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise BundleError("no model folder found; looked in: " + ", ".join(str(c) for c in candidates))


def default_bundle_path(purpose: str) -> Path:
    """Path of the default bundle for `purpose` (a key of DEFAULT_BUNDLES or OPTIONAL_BUNDLES); BundleError if absent."""
    folders = {**DEFAULT_BUNDLES, **OPTIONAL_BUNDLES}
    if purpose not in folders:
        raise BundleError(f"unknown default bundle {purpose!r} (known: {', '.join(folders)})")
    path = models_dir() / folders[purpose]
    if not (path / "bundle.json").is_file():
        raise BundleError(f"default {purpose} bundle not found at {path}")
    return path
