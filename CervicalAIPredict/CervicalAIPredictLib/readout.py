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

from CervicalAILib.contracts.clinical import FIELDS
from CervicalAILib.core.atomic import atomic_directory
from CervicalAILib.core.background import Step, engine_command
from CervicalAILib.core.errors import InputError

READOUT_FILE = "readout.json"
NOMOGRAM_FILE = "nomogram.png"
SCHEMA_PREFIX = "cervicalai.readout/"
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

def read_readout(folder: str | os.PathLike) -> dict[str, Any]:
    """readout.json of a predict output folder, checked for its schema (the engine's reader)."""
    from CervicalAILib.report.content import load_readout

    return load_readout(folder)[1]


def nomogram_path(folder: str | os.PathLike, readout: dict[str, Any] | None = None) -> Path | None:
    """The nomogram image of a readout folder, if it was drawn."""
    name = ((readout or {}).get("nomogram") or {}).get("image") or NOMOGRAM_FILE
    path = Path(folder) / name
    return path if path.is_file() else None


def lnm_probability(readout: dict[str, Any]) -> float | None:
    value = readout.get("lnm_probability")
    if value is None:
        value = (readout.get("lnm") or {}).get("probability")
    return float(value) if value is not None else None


def format_value(value: Any) -> str:
    """Table text of a readout value: numbers to 4 significant digits, yes/no, lists joined."""
    if value is None:
        return "not available"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "not available" if not math.isfinite(value) else f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value) or "none"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def summary_lines(readout: dict[str, Any]) -> list[str]:
    """What the result box shows: LNM probability against its cut-off, staging, reader tasks, warnings."""
    lines = []
    probability = lnm_probability(readout)
    lnm = readout.get("lnm") or {}
    if probability is None:
        lines.append("LNM probability: not available (see warnings)")
    else:
        text = f"Lymph-node metastasis probability: {100 * probability:.0f}%"
        if lnm.get("cutoff") is not None:
            side = "at or above" if lnm.get("positive") else "below"
            text += f" ({side} the model's cut-off of {100 * float(lnm['cutoff']):.0f}%)"
        lines.append(text)
    if lnm.get("model_note"):  # the LNM model without contrast was used: say so under the probability
        lines.append(f"Model: {lnm['model_note']}")
    staging = readout.get("staging") or {}
    measured = staging.get("measured") or {}
    if measured.get("text"):
        lines.append(measured["text"])
    nodes = staging.get("lymph_nodes") or {}
    if nodes.get("c_lnm") is not None:
        rules = ", ".join(nodes.get("sra_rules") or []) or "no SRA rule met"
        lines.append(f"Lymph nodes: c_LNM {'positive' if nodes['c_lnm'] else 'negative'}; SRA {format_value(nodes.get('sra'))} ({rules})")
    elif nodes.get("note"):
        lines.append(f"Lymph nodes: {nodes['note']}")
    predicted = staging.get("predicted") or {}
    if predicted.get("text"):
        lines.append(predicted["text"])
    for task in staging.get("needs_reader") or []:
        lines.append(f"Reader: {task}")
    for warning in readout.get("warnings") or []:
        lines.append(f"Warning: {warning}")
    if readout.get("statement"):
        lines.append(str(readout["statement"]))
    return lines


def readout_rows(readout: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(section, item, value, unit) rows: every result, input and feature of the readout."""
    rows: list[tuple[str, str, str, str]] = []

    def add(section: str, item: str, value: Any, unit: str = "") -> None:
        rows.append((section, item, format_value(value), unit))

    lnm = readout.get("lnm") or {}
    add("LNM risk", "LNM probability", lnm_probability(readout))
    for key, label in (("cutoff", "Cut-off"), ("positive", "At or above cut-off"), ("cutoff_source", "Cut-off source"),
                       ("model", "Model"), ("model_note", "Model note")):
        if key in lnm and not (key == "model_note" and lnm[key] is None):
            add("LNM risk", label, lnm[key])
    add("Scores", "Rad_score", readout.get("rad_score"))
    add("Scores", "DL_score", readout.get("dl_score"))
    nomogram = readout.get("nomogram") or {}
    for predictor, points in (nomogram.get("points") or {}).items():
        add("Nomogram", f"{predictor} points", points)
    if "total_points" in nomogram:
        add("Nomogram", "Total points", nomogram["total_points"])
    for name, value in (readout.get("clinical") or {}).items():
        field = FIELDS.get(name)
        add("Clinical", field.label if field else name, value, field.unit if field else "")
    segmentation = readout.get("segmentation") or {}
    units = {"volume_ml": "mL", "max_diameter_mm": "mm"}
    labels = {"volume_ml": "Tumour volume", "max_diameter_mm": "Maximum 3D diameter",
              "largest_slice_index": "Largest slice (T2WI index)", "confidence": "Automatic segmentation confidence",
              "automatic_model": "Segmentation model",
              "ood_score": "Out-of-distribution score (above 1: unlike the training images)"}  # fmt: skip
    for key, value in segmentation.items():
        if isinstance(value, dict):
            value = value.get("label") or f"{value.get('name', '?')}@{value.get('version', '?')}"
        elif isinstance(value, list) and any(isinstance(item, dict) for item in value):
            continue  # the flagged slices: listed in the Segment module, not a readout value
        add("Segmentation", labels.get(key, key), value, units.get(key, ""))
    review = readout.get("review") or {}
    if review:
        add("Review", "Reviewed", review.get("reviewed"))
        for key in ("reviewer", "reviewed_at", "origin"):
            if review.get(key) is not None:
                add("Review", key.replace("_", " ").capitalize(), review[key])
        for key, value in (review.get("edit_metrics") or {}).items():
            add("Review", key, value, "mL" if key.endswith("_ml") else "mm" if key.endswith("_mm") else "")
    staging = readout.get("staging") or {}
    measured = staging.get("measured") or {}
    if measured:
        add("Staging", "FIGO size class", measured.get("figo_size_class"))
        add("Staging", "Size class valid (confined to cervix)", measured.get("size_class_valid"))
    nodes = staging.get("lymph_nodes") or {}
    if nodes:
        add("Staging", "c_LNM (short axis >= 10 mm)", nodes.get("c_lnm"))
        add("Staging", "SRA positive", nodes.get("sra"))
        add("Staging", "SRA rules met", nodes.get("sra_rules") or [])
    predicted = staging.get("predicted") or {}
    if predicted:
        add("Staging", "Chemoradiotherapy group probability", predicted.get("stage_group_chemoradiotherapy_probability"))
        add("Staging", "Predicted stage group", predicted.get("stage_group"))
    for task in staging.get("needs_reader") or []:
        add("Staging", "Needs the reader", task)
    features = readout.get("features") or {}
    for kind, section in (("radiomics", "Radiomics feature"), ("deep", "Deep feature")):
        for name, value in (features.get(kind) or {}).items():
            add(section, name, value)
    models = readout.get("models") or {}
    for purpose, model in models.items():
        for entry in model if isinstance(model, list) else [model]:
            if isinstance(entry, dict):
                label = f"{entry.get('name', '?')}@{entry.get('version', '?')}"
                add("Model", purpose, label)
    for warning in readout.get("warnings") or []:
        add("Warning", "warning", warning)
    return rows


def fill_table(table_node, readout: dict[str, Any]) -> int:
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
    table_node.SetAttribute("CervicalAI.CaseId", str(readout.get("case_id", "")))
    probability = lnm_probability(readout)
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
