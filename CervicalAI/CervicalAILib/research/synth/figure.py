"""One-page picture of a synthetic case, to judge realism at a glance.

The four sequences at the T2W slice with the largest tumour area. DWI, ADC and CE-T1WI are
resampled onto that T2W slice in scanner space, i.e. as a viewer shows them, patient motion
included, and each carries the contour of its own tumour label resampled the same way. The
bottom row zooms on the tumour. The title gives the main clinical values.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from CervicalAILib.core import atomic
from CervicalAILib.core.errors import InputError, OutputExistsError
from CervicalAILib.io.case import load_case
from CervicalAILib.io.geometry import resample_to_reference

PANELS = (("T2W", "tumor", "T2WI"), ("DWI", "tumor_DWI", "DWI (high b)"), ("ADC", "tumor_ADC", "ADC"),
          ("CET1", "tumor_CET1", "CE-T1WI"))


def _window(values: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, float]:
    data = values[mask] if mask is not None and mask.any() else values
    return float(np.percentile(data, 1)), float(np.percentile(data, 99.5)) + 1e-6


def case_figure(case_dir: str | Path, out_png: str | Path, overwrite: bool = False, zoom_mm: float = 90.0) -> Path:
    """Draw `case_dir` (a NIfTI case folder written by the generator) into `out_png`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_png = Path(out_png)
    if out_png.suffix.lower() != ".png":
        raise InputError("the figure must be a .png file", out_png)
    if out_png.exists() and not overwrite:
        raise OutputExistsError(f"{out_png}: file exists (use --overwrite to replace it)")
    case = load_case(case_dir)
    missing = [role for role, _, _ in PANELS if role not in case.roles]
    if missing or "tumor" not in case.label_paths:
        raise InputError(f"not a complete synthetic case (missing {', '.join(missing) or 'labels/tumor'})", case_dir)
    t2 = case.image("T2W")
    tumour = sitk.GetArrayFromImage(case.label("tumor")) > 0
    k = int(np.argmax(tumour.sum(axis=(1, 2)))) if tumour.any() else t2.GetSize()[2] // 2
    reference = t2[:, :, k : k + 1]  # one T2W slice, keeps its physical position
    rows, cols = np.nonzero(tumour[k]) if tumour.any() else (np.array([t2.GetSize()[1] // 2]), np.array([t2.GetSize()[0] // 2]))
    center = (float(rows.mean()), float(cols.mean()))
    half = zoom_mm / 2 / np.asarray(t2.GetSpacing()[:2])  # pixels (x, y)

    fig, axes = plt.subplots(2, 4, figsize=(16, 8.6), facecolor="black")
    for col, (role, label_name, title) in enumerate(PANELS):
        image = case.image(role)
        slice_image = resample_to_reference(image, reference, interpolator=sitk.sitkLinear, default_value=0.0,
                                            pixel_type=sitk.sitkFloat32)
        values = sitk.GetArrayFromImage(slice_image)[0]
        label = case.label(label_name) if label_name in case.label_paths else case.label("tumor")
        contour = sitk.GetArrayFromImage(resample_to_reference(label, reference, interpolator=sitk.sitkLinear,
                                                               pixel_type=sitk.sitkFloat32))[0]
        lo, hi = _window(values, values > 0)
        if role == "ADC":
            lo, hi = 0.0, 3000.0
        for row in range(2):
            ax = axes[row, col]
            ax.imshow(values, cmap="gray", vmin=lo, vmax=hi, interpolation="bilinear")
            if contour.max() >= 0.5:
                ax.contour(contour, levels=[0.5], colors="#ff3030", linewidths=1.0 if row == 0 else 1.6)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 1:
                ax.set_xlim(center[1] - half[0], center[1] + half[0])
                ax.set_ylim(center[0] + half[1], center[0] - half[1])
            else:
                unit = " (1e-6 mm²/s, 0-3000)" if role == "ADC" else ""
                ax.set_title(f"{title}{unit}", color="white", fontsize=12)
    clinical = case.clinical or {}
    truth_path = Path(case_dir) / "generator_truth.json"
    truth = json.loads(truth_path.read_text()) if truth_path.is_file() else {}
    scanner = truth.get("scanner", {})
    title = (
        f"{clinical.get('case_id', case.case_id)} (synthetic)  centre {clinical.get('center', '?')}"
        f" {scanner.get('model', '')} b={int(scanner.get('b_value', 0))}  |  FIGO {clinical.get('figo_stage', '?')}"
        f" {clinical.get('histology', '')}, tumour {clinical.get('tumor_max_diameter_mm', '?')} mm /"
        f" {clinical.get('tumor_volume_ml', '?')} ml  |  largest node {clinical.get('ln_short_axis_mm', '?')} mm"
        f" (c_LNM {clinical.get('c_lnm', '?')}, SRA {clinical.get('sra', '?')})  |  pathology LNM"
        f" {clinical.get('lnm', '?')}, oracle P(LNM) {truth.get('latent', {}).get('oracle_lnm_probability', '?')}"
    )
    fig.suptitle(title, color="white", fontsize=11)
    fig.text(0.5, 0.01, f"T2W slice {k + 1}/{t2.GetSize()[2]}; other sequences resampled onto it in scanner space "
             "(inter-series patient motion visible); red: each sequence's own tumour label; bottom: "
             f"{zoom_mm:.0f} mm zoom", color="#bbbbbb", ha="center", fontsize=9)
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    with atomic.atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=80, facecolor="black")
    plt.close(fig)
    return out_png
