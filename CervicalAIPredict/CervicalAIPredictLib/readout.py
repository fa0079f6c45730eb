"""The readout in the scene: the background `predict` command, the table of results, the report.

`cervicalai predict CASE --mask MASK --clinical clinical.json --out DIR` writes `DIR/readout.json`
(docs/readout.md) and `DIR/nomogram.png`. Here the readout becomes plain text for the module's
result box, rows of a vtkMRMLTableNode (every score, nomogram point, feature and warning), and,
with "Save report", a copy of the readout folder beside the saved scene.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

from CervicalAILib.contracts import readout_text
from CervicalAILib.contracts.clinical import FIELDS
from CervicalAILib.contracts.readout import NOMOGRAM_IMAGE, Readout
from CervicalAILib.contracts.readout_text import NOT_AVAILABLE
from CervicalAILib.core.atomic import atomic_directory
from CervicalAILib.core.background import Step, engine_command
from CervicalAILib.core.errors import InputError
from CervicalAILib.report.content import load_readout

TABLE_COLUMNS = ("Section", "Item", "Value", "Unit")
READOUT_FOLDER_ATTRIBUTE = "CervicalAI.ReadoutFolder"
REPORT_FILE = "report.html"  # `cervicalai report` output, written into the saved readout folder (+ report.pdf)


# --- the background command ----------------------------------------------------------------------

def predict_step(
    python: str | os.PathLike,
    case_folder: str | os.PathLike,
    mask_path: str | os.PathLike,
    clinical_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    bundle: str | os.PathLike | None = None,
    transforms: str | os.PathLike | None = None,
    device: str = "cpu",
) -> Step:
    """The `cervicalai predict` step of Compute.

    transforms: the `study register` output of the segmentation run (transforms/<ROLE>.tfm), so
    the features use the same registration; without it the engine registers the sequences again.
    """
    for what, path in (("case folder", case_folder), ("tumour mask", mask_path), ("clinical values", clinical_path)):
        if not Path(path).exists():
            raise InputError(f"{what} not found", path)
    if device not in ("cpu", "gpu"):
        raise InputError(f"device must be cpu or gpu, got {device!r}")
    arguments = ["predict", case_folder, "--mask", mask_path, "--clinical", clinical_path, "--out", out_dir, "--device", device]
    if transforms:
        arguments += ["--transforms", transforms]
    if bundle:
        arguments += ["--bundle", bundle]
    return Step(engine_command(python, *arguments), "computing the readout")


def report_command_available() -> bool:
    """True when the engine has the `report` command (CervicalAILib.cli.report)."""
    try:
        return importlib.util.find_spec("CervicalAILib.cli.report") is not None
    except ModuleNotFoundError:
        return False


def report_step(python: str | os.PathLike, readout_dir: str | os.PathLike, pdf: bool = True) -> Step:
    """`cervicalai report DIR --out DIR/report.html [--pdf]`: the per-patient report (HTML, and a
    one-page PDF beside it) from a readout folder."""
    arguments = ["report", readout_dir, "--out", Path(readout_dir) / REPORT_FILE]
    if pdf:
        arguments.append("--pdf")
    return Step(engine_command(python, *arguments), "writing the report")


# --- reading ---------------------------------------------------------------------------------------

def read_readout(folder: str | os.PathLike) -> Readout:
    """readout.json of a predict output folder, checked against its contract (the engine's reader)."""
    return load_readout(folder)[1]


def nomogram_path(folder: str | os.PathLike, readout: Readout | None = None) -> Path | None:
    """The nomogram image of a readout folder, if it was drawn."""
    name = (readout.nomogram.image if readout is not None and readout.nomogram is not None else None) or NOMOGRAM_IMAGE
    path = Path(folder) / name
    return path if path.is_file() else None


def format_value(value: Any) -> str:
    """Table text of a readout value: numbers to 4 significant digits, yes/no, lists joined."""
    if value is None:
        return NOT_AVAILABLE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return NOT_AVAILABLE if not math.isfinite(value) else f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value) or "none"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def summary_lines(readout: Readout) -> list[str]:
    """What the result box shows: the engine's summary (contracts/readout_text), as the CLI and the report word it."""
    return readout_text.summary_lines(readout)


def readout_rows(readout: Readout) -> list[tuple[str, str, str, str]]:
    """(section, item, value, unit) rows: every result, input and feature of the readout."""
    rows: list[tuple[str, str, str, str]] = []
    labels = readout_text.LABELS

    def add(section: str, item: str, value: Any, unit: str = "") -> None:
        rows.append((section, item, format_value(value), unit))

    lnm = readout.lnm
    add("LNM risk", labels["lnm"], readout.probability)
    present = set(lnm.json_keys or ())
    for key, label in (("cutoff", "Cut-off"), ("positive", "At or above cut-off"), ("cutoff_source", "Cut-off source"),
                       ("model", labels["lnm_model"]), ("model_note", "Model note")):
        if key in present and not (key == "model_note" and lnm.model_note is None):
            add("LNM risk", label, getattr(lnm, key))
    add("Scores", labels["rad_score"], readout.rad_score)
    add("Scores", labels["dl_score"], readout.dl_score)
    nomogram = readout.nomogram
    if nomogram is not None:
        for predictor, points in (nomogram.points or {}).items():
            add("Nomogram", f"{predictor} points", points)
        if nomogram.total_points is not None:
            add("Nomogram", "Total points", nomogram.total_points)
    for name, value in readout.clinical.items():
        field = FIELDS.get(name)
        add("Clinical", field.label if field else name, value, field.unit if field else "")
    for key, value in readout.segmentation.to_dict().items():
        if isinstance(value, dict):
            value = value.get("label") or f"{value.get('name', '?')}@{value.get('version', '?')}"
        elif isinstance(value, list) and any(isinstance(item, dict) for item in value):
            continue  # the flagged slices: listed in the Segment module, not a readout value
        add("Segmentation", labels.get(key, key), value, readout_text.UNITS.get(key, ""))
    review = readout.review
    if review is not None:
        add("Review", "Reviewed", review.reviewed)
        for key in ("reviewer", "reviewed_at", "origin"):
            if getattr(review, key) is not None:
                add("Review", key.replace("_", " ").capitalize(), getattr(review, key))
        for key, value in (review.edit_metrics or {}).items():
            add("Review", key, value, "mL" if key.endswith("_ml") else "mm" if key.endswith("_mm") else "")
    staging = readout.staging
    if staging.measured is not None:
        add("Staging", labels["figo_size_class"], staging.measured.figo_size_class)
        add("Staging", "Size class valid (confined to cervix)", staging.measured.size_class_valid)
    nodes = staging.lymph_nodes
    if nodes is not None:
        add("Staging", "c_LNM (short axis >= 10 mm)", nodes.c_lnm)
        add("Staging", "SRA positive", nodes.sra)
        add("Staging", "SRA rules met", nodes.sra_rules or [])
    predicted = staging.predicted
    if predicted is not None:
        add("Staging", "Chemoradiotherapy group probability", predicted.stage_group_chemoradiotherapy_probability)
        add("Staging", "Predicted stage group", predicted.stage_group)
    for task in staging.needs_reader or []:
        add("Staging", labels["needs_reader"], task)
    features = readout.features or {}
    for kind, section in (("radiomics", "Radiomics feature"), ("deep", "Deep feature")):
        for name, value in (features.get(kind) or {}).items():
            add(section, name, value)
    for model, card in readout_text.model_lines(readout):
        add("Model", model, card)
    for warning in readout.warnings:
        add(labels["warning"], "warning", warning)
    return rows


def fill_table(table_node, readout: Readout) -> int:
    """Replace the table's content with the readout rows (read-only); returns the number of rows."""
    import vtk

    rows = readout_rows(readout)
    table = vtk.vtkTable()
    columns = []
    for name in TABLE_COLUMNS:
        column = vtk.vtkStringArray()
        column.SetName(name)
        column.SetNumberOfValues(len(rows))
        columns.append(column)
    for index, row in enumerate(rows):
        for column, text in zip(columns, row):
            column.SetValue(index, text)
    for column in columns:
        table.AddColumn(column)
    table_node.SetAndObserveTable(table)
    table_node.SetLocked(True)  # a readout is a record: not edited in the Tables module
    table_node.SetAttribute("CervicalAI.Status", "readout")
    table_node.SetAttribute("CervicalAI.CaseId", readout.case_id)
    probability = readout.probability
    table_node.SetAttribute("CervicalAI.LNMProbability", "" if probability is None else f"{probability:.6g}")
    return len(rows)


# --- saving --------------------------------------------------------------------------------------

def report_folder_for(scene_url: str | None, fallback_dir: str | os.PathLike, case_id: str) -> Path:
    """Where "Save report" writes: a new folder beside the saved scene (its folder), else in
    `fallback_dir`; named `<case>-CervicalAI-readout` (suffixed when taken, never reused)."""
    base = Path(scene_url).parent if scene_url else Path(fallback_dir)
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in (case_id or "case")) + "-CervicalAI-readout"
    candidate, number = base / stem, 2
    while candidate.exists():
        candidate, number = base / f"{stem}_{number}", number + 1
    return candidate


def save_report(readout_dir: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Copy a readout folder (readout.json, nomogram images, inputs written beside them) to `target`,
    atomically; an existing non-empty `target` is refused."""
    readout_dir, target = Path(readout_dir), Path(target)
    read_readout(readout_dir)  # a folder without a valid readout is not saved as a report
    with atomic_directory(target, overwrite=False) as tmp:
        for item in sorted(readout_dir.iterdir()):
            if item.is_dir():
                shutil.copytree(item, tmp / item.name)
            else:
                shutil.copy2(item, tmp / item.name)
    return target
