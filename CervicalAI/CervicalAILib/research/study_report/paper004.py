"""Paper 004's published figures (Bao et al., the DLRC nomogram; Table 2), and the report's side-by-side
comparison of the LNM AUCs with them."""

from __future__ import annotations

from typing import Any

# Paper 004's published results (Table 2), for the side-by-side comparison in the report.
PAPER004_AUC = {
    "Radiomics": (0.735, 0.767, 0.718),
    "DL (ResNet152_2D)": (0.751, 0.725, 0.716),
    "DLRC": (0.807, 0.789, 0.807),
}
PAPER004_SRA = {"sensitivity": (0.336, 0.333, 0.378), "specificity": (0.970, 0.950, 0.958)}
PAPER004_SIZES = (481, 204, 410)


def paper004_comparison(lnm: dict[str, Any]) -> list[str]:
    cohorts = ("training", "internal_validation", "external_validation")
    lines = ["## Side by side with Bao et al. (LNM, AUC)", "",
             "| Model | Bao et al. training | here | Bao et al. internal | here | Bao et al. external | here |",
             "|---|---|---|---|---|---|---|"]
    dl_name = next((n for n in lnm["models"] if n.startswith("DL")), None)
    for name, published in PAPER004_AUC.items():
        ours = "DLRC" if name == "DLRC" else "Radiomics" if name == "Radiomics" else dl_name
        cells = []
        for i, cohort in enumerate(cohorts):
            entry = (lnm["cohorts"].get(cohort) or {}).get("scores", {}).get(ours) if ours else None
            cells += [f"{published[i]:.3f}", f"{entry['auc']:.3f}" if entry else "/"]
        lines.append(f"| {name if ours == name else f'{name} / {ours}'} | " + " | ".join(cells) + " |")
    oracle_cells = []
    for cohort in cohorts:
        entry = (lnm["oracle"].get(cohort) or {}).get("scores", {}).get("Oracle")
        oracle_cells += ["/", f"{entry['auc']:.3f}" if entry else "/"]
    lines.append("| Oracle (generator) | " + " | ".join(oracle_cells) + " |")
    lines.append("")
    return lines
