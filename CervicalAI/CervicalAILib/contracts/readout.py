"""readout.json, typed: what `cervicalai predict` writes and the CLI, the report and the Predict module read.

    readout = Readout.from_dict(document, path)   # InputError naming the file, the key and the value
    readout.lnm.probability, readout.staging.lymph_nodes.c_lnm, ...
    readout.to_dict() == document                 # the same JSON, key for key and in its order

The JSON Schema is contracts/schemas/readout.schema.json (copy in docs/schemas/); the keys are
described in docs/readout.md. `from_dict` applies the schema (types and value ranges), reads the
typed records and refuses a readout that contradicts itself, so nothing impossible is ever shown to
a reader. Parts that are whole results of other stages and read by no rendering (features, the
stage-group model's `score_patient` result, per-score details, the harmonisation record) stay
plain JSON here. The sentences people read are made in contracts/readout_text.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from CervicalAILib.contracts.records import Record
from CervicalAILib.contracts.schemas import require_valid
from CervicalAILib.contracts.segmentation import SliceConfidence
from CervicalAILib.core.errors import InputError
from CervicalAILib.core.json_input import read_json

READOUT_SCHEMA = "cervicalai.readout/1"
READOUT_SCHEMA_PREFIX = "cervicalai.readout/"
READOUT_FILE = "readout.json"
NOMOGRAM_IMAGE = "nomogram.png"  # beside readout.json (nomogram.svg too), named by `nomogram.image`


@dataclass(frozen=True, kw_only=True)
class Tool(Record):
    name: str | None = None
    version: str | None = None


@dataclass(frozen=True, kw_only=True)
class ImageInput(Record):
    """inputs.images.<ROLE>: the file or DICOM series the sequence was read from."""

    path: str | None = None
    source: str | None = None  # "file" or "dicom"
    sha256: str | None = None
    sha256_of: str | None = None
    series_uid: str | None = None
    series_number: int | None = None
    n_files: int | None = None
    b_value: float | None = None


@dataclass(frozen=True, kw_only=True)
class MaskInput(Record):
    path: str | None = None
    sha256: str | None = None
    grid: str | None = None
    per_sequence: dict[str, str] | None = None  # role -> how the mask reached that sequence's grid


@dataclass(frozen=True, kw_only=True)
class ReadoutInputs(Record):
    images: dict[str, ImageInput] | None = None
    mask: MaskInput | None = None
    center: str | None = None


@dataclass(frozen=True, kw_only=True)
class ReviewFacts(Record):
    """The tumour mask's review record (contracts/review.py ReviewRecord.to_dict())."""

    reviewed: bool | None = None
    origin: str | None = None
    reviewer: str | None = None
    reviewed_at: str | None = None
    mask_sha256: str | None = None
    automatic_model: str | None = None
    edit_metrics: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class SegmentationFacts(Record):
    """Measured on the mask; confidence and below from the automatic segmentation's segmentation.json."""

    volume_ml: float
    max_diameter_mm: float
    largest_slice_index: int | None = None
    confidence: float | None = None
    flagged_slices: list[SliceConfidence] | None = None  # as in segmentation.json
    automatic_model: str | None = None
    ood_score: float | None = None


@dataclass(frozen=True, kw_only=True)
class NomogramReading(Record):
    points: dict[str, float] | None = None
    total_points: float | None = None
    probability: float | None = None
    values: dict[str, float | None] | None = None
    image: str | None = None


@dataclass(frozen=True, kw_only=True)
class ValidatedRow(Record):
    """lnm.validated[]: the model's figures on one cohort, as its bundle states them."""

    cohort: str | None = None
    n: int | None = None
    events: int | None = None
    auc: float | None = None
    sensitivity: float | None = None
    specificity: float | None = None
    ppv: float | None = None
    npv: float | None = None
    accuracy: float | None = None


@dataclass(frozen=True, kw_only=True)
class LNMResult(Record):
    probability: float | None = None
    cutoff: float | None = None
    positive: bool | None = None
    cutoff_source: str | None = None
    model: str | None = None  # name@version of the model that gave the probability
    model_note: str | None = None  # why it is not the default full model (e.g. no CE-T1WI)
    validated: list[ValidatedRow] | None = None
    scores: dict[str, Any] | None = None
    harmonisation: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class MeasuredSize(Record):
    max_diameter_mm: float | None = None
    figo_size_class: str | None = None
    size_class_valid: bool | None = None
    text: str | None = None


@dataclass(frozen=True, kw_only=True)
class LymphNodes(Record):
    c_lnm: bool | int | None = None
    sra: bool | None = None
    sra_rules: list[str] | None = None
    short_long_ratio: float | None = None
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class PredictedStage(Record):
    stage_group_chemoradiotherapy_probability: float | None = None
    stage_group: str | None = None
    cutoff: float | None = None
    model: str | None = None
    text: str | None = None


@dataclass(frozen=True, kw_only=True)
class Staging(Record):
    measured: MeasuredSize | None = None
    lymph_nodes: LymphNodes | None = None
    needs_reader: list[str] | None = None
    predicted: PredictedStage | None = None


@dataclass(frozen=True, kw_only=True)
class ModelCard(Record):
    """models.<purpose>: a bundle's summary (bundles/format.py Bundle.summary), or {"label"} without one."""

    name: str | None = None
    version: str | None = None
    task: str | None = None
    training_data: str | None = None
    intended_use: str | None = None
    source: str | None = None  # "shipped" or "user-supplied"
    bundle_json_sha256: str | None = None
    label: str | None = None
    family: str | None = None  # encoders: the deep-feature family

    @property
    def name_version(self) -> str:
        return f"{self.name if self.name is not None else self.label}@{self.version if self.version is not None else '?'}"


@dataclass(frozen=True, kw_only=True)
class ModelsUsed(Record):
    lnm: ModelCard | None = None
    stage_group: ModelCard | None = None
    encoders: list[ModelCard] | None = None

    def cards(self) -> list[tuple[str, ModelCard]]:
        """(purpose, card) of every model used, in the readout's order."""
        out: list[tuple[str, ModelCard]] = []
        for purpose in self.json_keys or ("lnm", "stage_group", "encoders"):
            value = self.json_extra[purpose] if purpose in self.json_extra else getattr(self, purpose)
            for card in value if isinstance(value, list) else [value]:
                if isinstance(card, dict):  # a purpose this version does not type
                    card = ModelCard.from_json(card, f"models.{purpose}")
                if card is not None:
                    out.append((purpose, card))
        return out


@dataclass(frozen=True, kw_only=True)
class Readout(Record):
    """readout.json (schema cervicalai.readout/1; docs/readout.md)."""

    schema: str
    case_id: str
    created: str | None = None
    tool: Tool | None = None
    inputs: ReadoutInputs
    review: ReviewFacts | None = None
    segmentation: SegmentationFacts
    features: dict[str, Any] | None = None
    rad_score: float | None = None
    dl_score: float | None = None
    clinical: dict[str, Any]
    nomogram: NomogramReading | None = None
    lnm_probability: float | None
    lnm: LNMResult
    stage_group: dict[str, Any] | None = None  # the stage-group model's whole score_patient result
    staging: Staging
    models: ModelsUsed
    warnings: list[str]
    seconds: dict[str, float] | None = None
    statement: str

    @classmethod
    def from_dict(cls, data: Any, path: str | Path | None = None) -> Self:
        """The typed readout; InputError naming the file (`path`), the key and the value when it is not a
        readout, breaks its schema (types and ranges), or contradicts itself."""
        schema = data.get("schema") if isinstance(data, dict) else None
        if not str(schema or "").startswith(READOUT_SCHEMA_PREFIX):
            raise InputError(f"not a CervicalAI readout (schema {schema!r}, expected {READOUT_SCHEMA_PREFIX}N)", path)
        require_valid(data, "readout", path, "the readout")
        try:
            readout = cls.from_json(data)
        except InputError as exc:
            raise InputError(f"the readout: {exc.message}", path) from exc
        readout.check_consistent(path)
        return readout

    def check_consistent(self, path: str | Path | None = None) -> None:
        """InputError when two of the readout's figures contradict each other (an edited or corrupt file)."""
        lnm, top = self.lnm, self.lnm_probability
        if top is not None and lnm.probability is not None and abs(top - lnm.probability) > 1e-6:
            raise InputError(f"the readout contradicts itself: lnm_probability {top:g} but lnm.probability "
                             f"{lnm.probability:g} (edited or corrupt)", path)
        nomogram = self.nomogram
        if nomogram is not None and nomogram.points and nomogram.total_points is not None \
                and abs(sum(nomogram.points.values()) - nomogram.total_points) > 1e-3:
            raise InputError(f"the readout contradicts itself: nomogram points add up to {sum(nomogram.points.values()):.2f}, "
                             f"total_points is {nomogram.total_points:.2f} (edited or corrupt)", path)
        used = self.models.lnm
        if lnm.model and used is not None and used.name and lnm.model != f"{used.name}@{used.version}":
            raise InputError(f"the readout contradicts itself: lnm.model is {lnm.model} but models.lnm is "
                             f"{used.name}@{used.version} (edited or corrupt)", path)
        if lnm.probability is not None and lnm.cutoff is not None and lnm.positive is not None \
                and lnm.positive != (lnm.probability >= lnm.cutoff):
            above = lnm.probability >= lnm.cutoff
            raise InputError(f"the readout contradicts itself: LNM probability {lnm.probability:g} is "
                             f"{'above' if above else 'below'} the cut-off {lnm.cutoff:g} but marked "
                             f"{'positive' if lnm.positive else 'negative'} (edited or corrupt)", path)

    @property
    def probability(self) -> float | None:
        """The LNM probability (lnm.probability; the schema requires it, `lnm_probability` is its copy)."""
        return self.lnm.probability


def read_readout(readout_dir: str | Path) -> tuple[Path, Readout]:
    """(folder, readout) of a readout folder or readout.json; InputError naming the file when it is missing,
    not a readout, or breaks the contract."""
    readout_dir = Path(readout_dir)
    path = readout_dir / READOUT_FILE if readout_dir.is_dir() else readout_dir
    if not path.is_file():
        raise InputError(f"no {READOUT_FILE} here (write one with `cervicalai predict ... --out DIR`)", readout_dir)
    return path.parent, Readout.from_dict(read_json(path, "readout"), path)


def validated_rows(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """lnm.validated: a risk bundle's figures per cohort (bundle.json `metrics`): n, events, AUC of the DLRC
    probability, and the figures at its operating point when the bundle has them (one flat row per cohort)."""
    metrics = manifest.get("metrics") or {}
    rows = []
    for cohort, aucs in (metrics.get("auc") or {}).items():
        row: dict[str, Any] = {
            "cohort": cohort,
            "n": (metrics.get("n") or {}).get(cohort),
            "events": (metrics.get("events") or {}).get(cohort),
            "auc": aucs.get("dlrc_probability") if isinstance(aucs, dict) else aucs,
        }
        at_cutoff = (metrics.get("at_cutoff") or {}).get(cohort) or {}
        for key in ("sensitivity", "specificity", "ppv", "npv", "accuracy"):
            if key in at_cutoff:
                row[key] = at_cutoff[key]
        rows.append(row)
    return rows
