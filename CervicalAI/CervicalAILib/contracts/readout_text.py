"""The one wording of a readout: the sentences and labels people read, for every rendering.

The CLI summary (`cervicalai predict`, the demo, the review web app), the per-patient report
(report/content.py) and the Slicer Predict module's result box and table (CervicalAIPredictLib/
readout.py) all take their words from here, so a reader sees the same sentence for the same
readout wherever it is shown:

    lnm_line(readout)      -> "LNM risk (DLRC): 15.2% (below the model's cut-off of 38.0%)"
    summary_lines(readout) -> the short list a radiologist reads in seconds
"""

from __future__ import annotations

import re
from typing import Any

from CervicalAILib.contracts.readout import ModelCard, Readout

NOT_AVAILABLE = "not available"

# one label per item of the readout
LABELS = {
    "lnm": "LNM risk (DLRC)",
    "lnm_model": "LNM model",
    "cutoff": "Operating point",
    "rad_score": "Rad_score",
    "dl_score": "DL_score",
    "total_points": "Nomogram total points",
    "volume_ml": "Tumour volume",
    "max_diameter_mm": "Maximum 3D diameter",
    "largest_slice_index": "Largest slice (T2WI index)",
    "confidence": "Segmentation confidence",
    "automatic_model": "Segmentation model",
    "ood_score": "Out-of-distribution score (above 1: unlike the segmentation model's training images)",
    "figo_size_class": "FIGO size class",
    "nodes": "Lymph nodes (reader)",
    "stage_group": "Stage group",
    "needs_reader": "Needs the reader",
    "warning": "Warning",
}
UNITS = {"volume_ml": "mL", "max_diameter_mm": "mm"}

# what each model of the readout predicts or does, by the readout's key (docs/readout.md "models")
MODEL_ROLES = {
    "lnm": "predicts pelvic lymph-node metastasis",
    "stage_group": "predicts the chemoradiotherapy group (IB3, IIA2-IVB)",
    "encoders": "deep tumour features for DL_score",
    "segmentation": "automatic tumour contour",
}
ROLE_LABELS = {"lnm": "LNM", "stage_group": "Stage group", "encoders": "Encoder", "segmentation": "Segmentation"}
TASK_ROLES = {"risk-model": "risk model", "encoder": "deep tumour features", "segmentation": "automatic tumour contour"}
SYNTHETIC_CLAUSE = "trained on synthetic data{cases}, not for clinical use"
USER_SUPPLIED_CLAUSE = "not a shipped model: its description and figures are its own"


def percent(value: float | None) -> str:
    return NOT_AVAILABLE if value is None else f"{100 * float(value):.1f}%"


def number(value: Any, digits: int = 3, unit: str = "") -> str:
    if value is None:
        return NOT_AVAILABLE
    try:
        return f"{float(value):.{digits}f}" + (f" {unit}" if unit else "")
    except (TypeError, ValueError):
        return str(value)


def yes_no(value: bool | int | None, yes: str = "positive", no: str = "negative", missing: str = NOT_AVAILABLE) -> str:
    return missing if value is None else yes if value else no


# --- the LNM risk ---------------------------------------------------------------------------------

def lnm_value(readout: Readout) -> str:
    """"15.2% (below the model's cut-off of 38.0%)", or "not available (see the warnings)"."""
    probability, cutoff = readout.probability, readout.lnm.cutoff
    if probability is None:
        return f"{NOT_AVAILABLE} (see the warnings)"
    text = percent(probability)
    if cutoff is not None:
        above = readout.lnm.positive if readout.lnm.positive is not None else probability >= cutoff
        text += f" ({'at or above' if above else 'below'} the model's cut-off of {percent(cutoff)})"
    return text


def lnm_line(readout: Readout) -> str:
    """The risk sentence, the same in every rendering."""
    return f"{LABELS['lnm']}: {lnm_value(readout)}"


def lnm_model_value(readout: Readout) -> str | None:
    """name@version of the LNM model, with why it is not the default full model; None when not named."""
    lnm = readout.lnm
    if not lnm.model:
        return None
    return lnm.model + (f" ({lnm.model_note})" if lnm.model_note else "")


def cutoff_value(readout: Readout) -> str | None:
    """"38.0% (training Youden index)": the operating point and where it comes from; None without one."""
    if readout.lnm.cutoff is None:
        return None
    return f"{percent(readout.lnm.cutoff)} ({readout.lnm.cutoff_source or 'model operating point'})"


def validated_lines(readout: Readout) -> list[tuple[str, str]]:
    """(label, text) of each cohort the LNM model was validated on, as its bundle states them."""
    user_supplied = readout.models.lnm is not None and readout.models.lnm.source == "user-supplied"
    lines = []
    for row in readout.lnm.validated or []:
        if row.auc is None:
            continue
        text = f"AUC {row.auc:.2f}"
        if row.n is not None:
            text += f" (n {row.n}" + (f", {row.events} with LNM)" if row.events is not None else ")")
        for value, label in ((row.sensitivity, "sensitivity"), (row.specificity, "specificity")):
            if value is not None:
                text += f"; {label} {percent(value)} at the operating point"
        if user_supplied:
            text += " (as stated by the user-supplied model, not verified)"
        lines.append((f"Validated: {str(row.cohort or '').replace('_', ' ')}", text))
    return lines


# --- staging ----------------------------------------------------------------------------------------

def nodes_value(readout: Readout) -> str | None:
    """"c_LNM positive; SRA negative (no SRA rule met)" from the reader's node measurements; None without them."""
    nodes = readout.staging.lymph_nodes
    if nodes is None:
        return None
    if nodes.c_lnm is None:
        return "c_LNM not measured" + (f" ({nodes.note})" if nodes.note else "")
    text = f"c_LNM {yes_no(nodes.c_lnm)}; SRA {yes_no(nodes.sra, missing='undetermined')}"
    if nodes.sra_rules is not None:
        text += f" ({', '.join(nodes.sra_rules) or 'no SRA rule met'})"
    return text


def nodes_line(readout: Readout) -> str | None:
    value = nodes_value(readout)
    return None if value is None else f"{LABELS['nodes']}: {value}"


def size_line(readout: Readout) -> str | None:
    """The measured size class, worded by the staging step (it knows whether the reader confirmed it)."""
    measured = readout.staging.measured
    return measured.text if measured is not None and measured.text else None


def stage_line(readout: Readout) -> str | None:
    predicted = readout.staging.predicted
    return predicted.text if predicted is not None and predicted.text else None


def needs_reader_lines(readout: Readout) -> list[str]:
    return [f"{LABELS['needs_reader']}: {task}" for task in readout.staging.needs_reader or []]


def ood_warning(message: str | None, score: float) -> str:
    """The readout's warning when the automatic segmentation found the study unlike its training images."""
    return (f"automatic segmentation: {message or 'the study looks unlike its training images'} "
            f"(out-of-distribution score {score:.2f})")


def warning_lines(readout: Readout) -> list[str]:
    return [f"{LABELS['warning']}: {warning}" for warning in readout.warnings]


# --- models -------------------------------------------------------------------------------------------

def training_clause(card: ModelCard) -> str:
    """One short clause on the training data; the full paragraph stays in the model card (MODEL_CARD.md)."""
    text = card.training_data or ""
    if not text:
        return ""
    # the number of training cases, written by risk bundles as "N training cases" (models/risk_bundle.py)
    match = re.search(r"(\d[\d,]*) training cases", text) or re.search(r"(\d[\d,]*) (?:patients|cases)\b", text)
    cases = f" ({match.group(1)} cases)" if match else ""
    if card.json_extra.get("synthetic_training_data") or "synthetic" in text.lower():
        return SYNTHETIC_CLAUSE.format(cases=cases)
    first = re.split(r"(?<=[.;])\s", text, maxsplit=1)[0].rstrip(".;")
    return "trained on " + (first if len(first) <= 80 else first[:77].rstrip() + "...") + cases * (cases not in first)


def model_lines(readout: Readout) -> list[tuple[str, str]]:
    """(model, one-line card) of every model used: name@version, what it does, one clause on its training data.

    Encoders used by both risk models are listed once."""
    lines: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for role, card in readout.models.cards():
        name = card.name_version
        if (role, name) in seen:
            continue
        seen.add((role, name))
        does = MODEL_ROLES.get(role) or TASK_ROLES.get(str(card.task), str(card.task or "model"))
        if card.family and role == "encoders":
            does += f" ({card.family})"
        clause = training_clause(card)
        if card.source == "user-supplied":
            name += " (user-supplied)"
            clause = (clause + "; " if clause else "") + USER_SUPPLIED_CLAUSE
        lines.append((f"{ROLE_LABELS.get(role, role)}: {name}", f"{does}; {clause}" if clause else does))
    return lines


def user_supplied_lines(readout: Readout) -> list[str]:
    """A line for each risk model that is not a shipped one: its figures are its own."""
    return [f"Model: {card.name_version} is user-supplied ({USER_SUPPLIED_CLAUSE})"
            for card in (readout.models.lnm, readout.models.stage_group)
            if card is not None and card.source == "user-supplied"]


# --- the short list -------------------------------------------------------------------------------------

def summary_lines(readout: Readout, scores: bool = False) -> list[str]:
    """What a radiologist reads in seconds: the risk, the model, size, nodes, stage group, what needs the
    reader, warnings and the research-use statement; with `scores`, the scores and the tumour's size too."""
    lines = [lnm_line(readout)]
    model = lnm_model_value(readout)
    if model:
        lines.append(f"{LABELS['lnm_model']}: {model}")
    if scores:
        lines.append(f"{LABELS['rad_score']} / {LABELS['dl_score']}: {number(readout.rad_score)} / {number(readout.dl_score)}")
        if readout.nomogram is not None and readout.nomogram.total_points is not None:
            lines.append(f"{LABELS['total_points']}: {number(readout.nomogram.total_points, 1)}")
        seg = readout.segmentation
        lines.append(f"{LABELS['volume_ml']}: {number(seg.volume_ml, 1, 'mL')}; "
                     f"{LABELS['max_diameter_mm']}: {number(seg.max_diameter_mm, 1, 'mm')}")
    lines += [line for line in (size_line(readout), nodes_line(readout), stage_line(readout)) if line]
    lines += needs_reader_lines(readout) + user_supplied_lines(readout) + warning_lines(readout)
    lines.append(readout.statement)
    return lines


def summary_text(readout: Readout) -> str:
    """The summary `cervicalai predict` prints: a title line and the summary lines with their scores."""
    return "\n".join([f"CervicalAI readout - {readout.case_id}"] + [f"  {line}" for line in summary_lines(readout, scores=True)])
