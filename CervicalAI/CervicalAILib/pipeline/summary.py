"""The short human summary `cervicalai predict` prints."""

from __future__ import annotations

from typing import Any


def _pct(value: float | None) -> str:
    return "unavailable" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None, digits: int = 3) -> str:
    return "unavailable" if value is None else f"{value:.{digits}f}"


def summary_text(readout: dict[str, Any]) -> str:
    """A few lines a radiologist reads in seconds: risk, scores, size, nodes, what needs the reader."""
    lnm = readout["lnm"]
    seg = readout["segmentation"]
    staging = readout["staging"]
    nodes = staging["lymph_nodes"]
    lines = [
        f"CervicalAI readout - {readout['case_id']}",
        f"  LNM risk (DLRC)      {_pct(lnm['probability'])}"
        + ("" if lnm["positive"] is None else f"  ({'above' if lnm['positive'] else 'below'} the model's cut-off {_pct(lnm['cutoff'])})"),
        f"  Rad_score / DL_score {_num(readout['rad_score'])} / {_num(readout['dl_score'])}",
    ]
    if lnm.get("model"):
        lines.append(f"  LNM model            {lnm['model']}")
    if lnm.get("model_note"):
        lines.append(f"  Model note:          {lnm['model_note']}")
    if readout.get("nomogram"):
        lines.append(f"  Nomogram             {readout['nomogram']['total_points']:.1f} total points")
    lines.append(f"  Tumour               {seg['volume_ml']:.1f} mL, max 3D diameter {seg['max_diameter_mm']:.1f} mm")
    lines.append(f"  Size                 {staging['measured']['text']}")
    if nodes["c_lnm"] is not None:
        rules = ", ".join(nodes["sra_rules"]) or "no rule met"
        sra = "undetermined" if nodes["sra"] is None else ("positive" if nodes["sra"] else "negative")
        lines.append(f"  Lymph nodes          c_LNM {'yes' if nodes['c_lnm'] else 'no'}; SRA {sra} ({rules})")
    predicted = staging.get("predicted")
    if predicted and predicted.get("text"):
        lines.append(f"  Stage group          {predicted['text']}")
    for task in staging["needs_reader"]:
        lines.append(f"  Needs the reader:    {task}")
    for key in ("lnm", "stage_group"):
        model = (readout.get("models") or {}).get(key)
        if isinstance(model, dict) and model.get("source") == "user-supplied":
            lines.append(f"  Model                {model.get('name')}@{model.get('version')} is user-supplied (not a "
                         "shipped model; its figures are its own)")
    for warning in readout["warnings"]:
        lines.append(f"  Warning: {warning}")
    lines.append(f"  {readout['statement']}")
    return "\n".join(lines)
