"""The model bundles the workflow uses, with their model cards, for the hub's "Models" section.

Each default purpose (segmentation, T2WI-only fallback, encoders, risk models) maps to a bundle
folder in the models directory: the user's bundle folder setting, else the shipped models. A
bundle is shown only after `load_bundle` verified its schema and every file hash; a bundle
that fails is listed with the reason, so the user sees why it will not be used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from CervicalAILib.bundles.defaults import DEFAULT_BUNDLES, models_dir
from CervicalAILib.bundles.format import MODEL_CARD, load_bundle
from CervicalAILib.core.errors import BundleError

PURPOSE_LABELS = {
    "segmentation": "Tumour segmentation (multi-sequence)",
    "segmentation-t2": "Tumour segmentation (T2WI only, fallback)",
    "encoder-2d": "Deep-feature encoder (2D)",
    "encoder-3d": "Deep-feature encoder (3D)",
    "lnm": "Lymph-node metastasis risk model (DLRC)",
    "stage_group": "Stage-group model (surgery vs chemoradiotherapy)",
}


@dataclass
class BundleCard:
    purpose: str
    path: Path
    label: str = ""  # name@version
    task: str = ""
    intended_use: str = ""
    training_data: str = ""
    model_card: str = ""  # MODEL_CARD.md text
    problem: str = ""  # why it cannot be used ("" when verified)

    @property
    def usable(self) -> bool:
        return not self.problem

    def title(self) -> str:
        name = PURPOSE_LABELS.get(self.purpose, self.purpose)
        return f"{name}: {self.label}" if self.usable else f"{name}: not available ({self.problem})"


def chosen_models_dir(bundle_folder: str = "") -> Path | None:
    """The folder the engine will take bundles from: the setting, else the shipped models (None if none)."""
    if bundle_folder:
        return Path(bundle_folder)
    try:
        return models_dir()
    except BundleError:
        return None


def bundle_cards(folder: str | Path | None, purposes: tuple[str, ...] | None = None) -> list[BundleCard]:
    """One card per default purpose (or per one of `purposes`), verified (hashes and schema) or with
    the reason it is not usable."""
    cards = []
    for purpose, name in DEFAULT_BUNDLES.items():
        if purposes is not None and purpose not in purposes:
            continue
        if folder is None:
            cards.append(BundleCard(purpose, Path(name), problem="no model folder found"))
            continue
        path = Path(folder) / name
        if not (path / "bundle.json").is_file():
            cards.append(BundleCard(purpose, path, problem=f"not installed ({path} has no bundle.json)"))
            continue
        try:
            bundle = load_bundle(path)
        except BundleError as exc:
            cards.append(BundleCard(purpose, path, problem=str(exc)))
            continue
        card_name = bundle.manifest.get("model_card", MODEL_CARD)
        try:
            model_card = bundle.read_text(card_name)
        except (BundleError, OSError) as exc:
            model_card = f"(model card unreadable: {exc})"
        cards.append(
            BundleCard(
                purpose, path, label=bundle.label, task=bundle.task, intended_use=bundle.manifest["intended_use"],
                training_data=bundle.manifest["training_data"], model_card=model_card,
            )
        )
    return cards


# The bundles each background step needs (keys of DEFAULT_BUNDLES).
SEGMENT_PURPOSES = ("segmentation", "segmentation-t2")
PREDICT_PURPOSES = ("encoder-2d", "lnm", "stage_group")


def model_problems(folder: str | Path | None, purposes: tuple[str, ...]) -> list[str]:
    """Why the bundles for `purposes` cannot be used (verified as the engine will load them); [] when all can."""
    unknown = [purpose for purpose in purposes if purpose not in DEFAULT_BUNDLES]
    if unknown:
        raise ValueError(f"unknown bundle purpose(s) {unknown} (known: {', '.join(DEFAULT_BUNDLES)})")
    return [card.title() for card in bundle_cards(folder, tuple(purposes)) if not card.usable]


def cards_text(cards: list[BundleCard]) -> str:
    """Plain text of the cards for the hub's model-card box."""
    blocks = []
    for card in cards:
        lines = [card.title()]
        if card.usable:
            lines += [f"Intended use: {card.intended_use}", f"Trained on: {card.training_data}", f"Folder: {card.path}"]
            if card.model_card.strip():
                lines += ["", card.model_card.strip()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
