"""Staging readout: what is measured on the images, what a model predicts, what needs the reader.

- Measured: the maximum 3D tumour diameter from the (reviewed) mask -> FIGO 2018 size class
  (greatest dimension < 2 cm IB1, >= 2 and < 4 cm IB2, >= 4 cm IB3, as FIGO 2018 words it), valid
  only when the reader confirms that the tumour is confined to the cervix (parametrial or vaginal
  extension changes the stage).
- Reader's lymph-node measurement -> c_LNM (short axis >= 10 mm) and seed 004's standardised
  radiological assessment (SRA): short axis >= 10 mm, or central necrosis, or short axis >= 8 mm
  with a short/long axis ratio > 0.8.
- Predicted: the stage-group probability (surgery IA-IB2/IIA1 vs chemoradiotherapy IB3/IIA2-IVB)
  from the stage-group model, when one is given.
"""

from __future__ import annotations

from typing import Any

from CervicalAILib.core.errors import InputError

C_LNM_SHORT_AXIS_MM = 10.0
SRA_RATIO_SHORT_AXIS_MM = 8.0
SRA_RATIO = 0.8
SURGERY_STAGES = ("IA1", "IA2", "IB1", "IB2", "IIA1")


def figo_size_class(max_diameter_mm: float) -> str:
    """FIGO 2018 size class of a tumour confined to the cervix, from its greatest dimension."""
    if max_diameter_mm is None or not max_diameter_mm > 0:
        raise InputError(f"maximum tumour diameter must be positive, got {max_diameter_mm!r}")
    if max_diameter_mm < 20.0:
        return "IB1"
    if max_diameter_mm < 40.0:
        return "IB2"
    return "IB3"


def stage_group_of(figo_stage: str) -> str:
    """'surgery' for IA-IB2 and IIA1, 'chemoradiotherapy' for IB3 and IIA2-IVB (seed 000)."""
    return "surgery" if figo_stage in SURGERY_STAGES else "chemoradiotherapy"


def lymph_node_assessment(short_axis_mm: float | None, long_axis_mm: float | None, necrosis: bool | None) -> dict[str, Any]:
    """c_LNM and SRA from the reader's measurement of the largest pelvic node.

    Returns which SRA rules fired; values that were not given make the result None (not negative),
    so a missing measurement is never read as a normal node.
    """
    if short_axis_mm is None:
        return {"c_lnm": None, "sra": None, "sra_rules": [], "short_long_ratio": None,
                "note": "no lymph-node measurement given: c_LNM and SRA need the reader"}  # fmt: skip
    ratio = short_axis_mm / long_axis_mm if long_axis_mm else None
    rules = []
    if short_axis_mm >= C_LNM_SHORT_AXIS_MM:
        rules.append("short axis >= 10 mm")
    if necrosis:
        rules.append("central necrosis")
    if short_axis_mm >= SRA_RATIO_SHORT_AXIS_MM and ratio is not None and ratio > SRA_RATIO:
        rules.append("short axis >= 8 mm and short/long ratio > 0.8")
    undetermined = not rules and (necrosis is None or (short_axis_mm >= SRA_RATIO_SHORT_AXIS_MM and ratio is None))
    return {
        "c_lnm": short_axis_mm >= C_LNM_SHORT_AXIS_MM,
        "sra": None if undetermined else bool(rules),
        "sra_rules": rules,
        "short_long_ratio": ratio,
        "note": "SRA undetermined: necrosis or long axis not given" if undetermined else "",
    }


def staging_readout(
    max_diameter_mm: float,
    clinical: dict[str, Any],
    stage_group_probability: float | None = None,
    stage_group_model: str | None = None,
    stage_group_cutoff: float = 0.5,
) -> dict[str, Any]:
    """The staging part of a readout, with plain wording of its three kinds of statement.

    `stage_group_cutoff` is the model's operating point (its training Youden cut-off).
    """
    confined = clinical.get("confined_to_cervix")
    size_class = figo_size_class(max_diameter_mm)
    if confined is True:
        size_text = f"FIGO 2018 size class {size_class} (tumour confined to the cervix, as confirmed by the reader)"
    elif confined is False:
        size_text = "Tumour not confined to the cervix (reader): the size class does not determine the stage"
    else:
        size_text = f"Size class {size_class} applies only if the reader confirms the tumour is confined to the cervix"
    nodes = lymph_node_assessment(
        clinical.get("ln_short_axis_mm"), clinical.get("ln_long_axis_mm"), clinical.get("ln_necrosis")
    )
    readout: dict[str, Any] = {
        "measured": {
            "max_diameter_mm": round(float(max_diameter_mm), 1),
            "figo_size_class": size_class if confined is not False else None,
            "size_class_valid": confined is True,
            "text": size_text,
        },
        "lymph_nodes": nodes,
        "needs_reader": [],
    }
    if confined is None:
        readout["needs_reader"].append("confirm whether the tumour is confined to the cervix (parametrium, vagina)")
    if nodes["c_lnm"] is None:
        readout["needs_reader"].append("measure the largest pelvic lymph node (short and long axis) and note necrosis")
    if stage_group_probability is not None:
        readout["predicted"] = {
            "stage_group_chemoradiotherapy_probability": float(stage_group_probability),
            "stage_group": "chemoradiotherapy" if stage_group_probability >= stage_group_cutoff else "surgery",
            "cutoff": float(stage_group_cutoff),
            "model": stage_group_model,
            "text": (
                f"Predicted probability of the chemoradiotherapy group (IB3/IIA2-IVB): "
                f"{100 * stage_group_probability:.0f}% (research model; the stage is set by the clinical team)"
            ),
        }
    return readout
