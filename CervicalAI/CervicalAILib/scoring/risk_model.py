"""The risk-model bundle as the per-patient readout reads it (`research/fit/bundle.py` writes it).

A folder written with `bundles/format.write_bundle` (task "risk-model"; every file hashed):

    bundle.json          manifest: endpoint, intended use, training-data statement, inputs
                         (sequences and features per score, clinical variables with units and
                         valid/training ranges, centre handling, radiomics settings, encoders),
                         outputs, artefacts, metrics, provenance (every choice + software versions)
    MODEL_CARD.md        plain-words description: what it predicts, training data, validation, limits
    model.json           per-family score models (features, standardisation mean/sd, coefficients,
                         intercept), which family gives rad_score / dl_score, the DLRC terms and
                         coefficients, Youden cut-offs chosen on training, training ranges
                         (min/max, 1st/99th percentiles) of features, scores and clinical values
    combat.json          ComBat parameters per family for the features the models use (`combat.py`)
    nomogram.json        the nomogram specification (`nomogram.py`)
    selection.json       the selection log: per-step survivors, p-values, LASSO path, stepwise
                         steps, clinical tests, dropped features, excluded cases
    radiomics/<ROLE>.yaml  pyradiomics settings per sequence used by Rad_score
    cohort/split.csv     case_id -> cohort (training / internal_validation / external_validation /
                         excluded + reason); cohort/scores.csv: every case's scores (optional)

Schema of model.json: "cervicalai.risk-model/1".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from CervicalAILib.bundles.format import Bundle, load_bundle
from CervicalAILib.contracts.case_folder import ROLES
from CervicalAILib.contracts.feature_names import role_of
from CervicalAILib.core.errors import BundleError
from CervicalAILib.scoring.combat import Harmonisation
from CervicalAILib.scoring.dlrc import DLRCModel
from CervicalAILib.scoring.family_score import FamilyScore

MODEL_FILE = "model.json"
COMBAT_FILE = "combat.json"
NOMOGRAM_FILE = "nomogram.json"
SELECTION_FILE = "selection.json"
SPLIT_FILE = "cohort/split.csv"
SCORES_FILE = "cohort/scores.csv"
MODEL_SCHEMA = "cervicalai.risk-model/1"
SYNTHETIC_STATEMENT = "Trained on synthetic data, not for clinical use."


@dataclass
class RiskModel:
    """A risk model ready to score patients: the manifest, its documents and the objects that score.

    `model` and `nomogram` are model.json and nomogram.json as read; the model's parts that
    compute are parsed into `families` (each family's score), `dlrc` and `harmonisation`
    (combat.json), which `scoring/patient.score_patient` composes.
    """

    manifest: dict[str, Any]
    model: dict[str, Any]
    nomogram: dict[str, Any]
    families: dict[str, FamilyScore]
    dlrc: DLRCModel
    harmonisation: Harmonisation
    bundle: Bundle | None = None

    @classmethod
    def from_documents(cls, manifest: dict[str, Any], model: dict[str, Any], combat: dict[str, Any],
                       nomogram: dict[str, Any], bundle: Bundle | None = None) -> RiskModel:
        """Parse model.json and combat.json (KeyError, TypeError or ValueError when malformed)."""
        return cls(manifest=manifest, model=model, nomogram=nomogram,
                   families={name: FamilyScore.from_dict(doc) for name, doc in model["families"].items()},
                   dlrc=DLRCModel.from_dict(model["dlrc"]), harmonisation=Harmonisation.from_dict(combat),
                   bundle=bundle)

    def to_documents(self) -> dict[str, dict[str, Any]]:
        """model.json, combat.json and nomogram.json rebuilt from the parts (equal to the files read)."""
        model = dict(self.model)  # the parts replace their entries in place: the key order stays
        model["families"] = {name: score.to_dict() for name, score in self.families.items()}
        model["dlrc"] = self.dlrc.to_dict()
        return {MODEL_FILE: model, COMBAT_FILE: self.harmonisation.to_dict(), NOMOGRAM_FILE: self.nomogram}

    @property
    def label(self) -> str:
        return f"{self.manifest.get('name')}@{self.manifest.get('version')}"

    @property
    def endpoint(self) -> str:
        return self.model["endpoint"]

    def score_features(self, score: str) -> list[str]:
        """Feature names a score needs (empty when the bundle has no such score)."""
        family = self.model["scores"].get(score)
        return list(self.families[family].features_) if family else []

    @property
    def required_features(self) -> list[str]:
        """Every feature needed for rad_score and dl_score, sorted."""
        return sorted({f for s in self.model["scores"] for f in self.score_features(s)})

    @property
    def required_sequences(self) -> list[str]:
        roles = {role_of(f) for f in self.required_features}
        return [r for r in ROLES if r in roles]

    @property
    def clinical_inputs(self) -> list[dict[str, Any]]:
        return [t for t in self.dlrc.terms_ if t["kind"] != "score"]

    def radiomics_settings(self, role: str) -> dict[str, Any]:
        """pyradiomics settings (parsed YAML) the bundle carries for `role`."""
        files = self.manifest.get("inputs", {}).get("radiomics_settings", {})
        if role not in files:
            raise BundleError(f"{self.label}: no radiomics settings for sequence {role}")
        if self.bundle is None:
            raise BundleError(f"{self.label}: in-memory model has no files")
        return self.bundle.read_yaml(files[role])

    @property
    def encoders(self) -> list[dict[str, Any]]:
        return list(self.manifest.get("inputs", {}).get("encoders", []))


def load_risk_model(path: str | Path) -> RiskModel:
    """Load and verify a risk-model bundle (hashes, schema) -> RiskModel."""
    bundle = load_bundle(path, task="risk-model")
    artefacts = bundle.manifest.get("artefacts", {})
    try:
        model = bundle.read_json(artefacts.get("model", MODEL_FILE))
        combat = bundle.read_json(artefacts.get("combat", COMBAT_FILE))
        nomogram = bundle.read_json(artefacts.get("nomogram", NOMOGRAM_FILE))
    except ValueError as exc:
        raise BundleError(f"{bundle.path}: a model file is not valid JSON ({exc})") from exc
    if not isinstance(model, dict) or model.get("schema") != MODEL_SCHEMA:
        raise BundleError(f"{bundle.path}: {MODEL_FILE} is not a {MODEL_SCHEMA} document")
    for key in ("endpoint", "scores", "families", "dlrc", "cutoffs", "training_ranges"):
        if key not in model:
            raise BundleError(f"{bundle.path}: {MODEL_FILE} lacks {key!r}")
    try:
        return RiskModel.from_documents(bundle.manifest, model, combat, nomogram, bundle=bundle)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BundleError(f"{bundle.path}: {MODEL_FILE} or {COMBAT_FILE} is malformed ({exc!r})") from exc
