"""What the per-patient report shows, gathered from a readout folder (`readout.json` + `nomogram.png`).

The readout contract is docs/readout.md. Every value may be null (the reason is then in the
readout's warnings); the report says "not available" instead of failing. Images come from the
case files the readout references (paths relative to the readout folder or absolute): the key
image is the T2WI at the slice with the largest tumour area, with the tumour contour, and the
ADC and CE-T1WI at the same position (resampled onto the T2WI grid in scanner coordinates when
they are on their own grids).
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from CervicalAILib import RESEARCH_USE_STATEMENT
from CervicalAILib.contracts.case_folder import ROLE_TITLES
from CervicalAILib.core.errors import InputError

READOUT_FILE = "readout.json"
READOUT_SCHEMA_PREFIX = "cervicalai.readout/"
CONTOUR_COLOR = "#ff2a2a"
# An absolute file path inside a text (POSIX or Windows), as a pseudonymised report hides it.
PATH_PATTERN = re.compile(r"(?<![\w.\-])(?:[A-Za-z]:)?[\\/][^\s(),;']+")


@dataclass
class ReportContent:
    """Everything the HTML and PDF renderers need, as plain text and PNG bytes."""

    case: str
    created: str
    sequences: list[str]
    facts: list[tuple[str, str]]  # (label, value) lines of the summary table
    lnm: list[tuple[str, str]]
    staging: list[str]
    needs_reader: list[str]
    warnings: list[str]
    models: list[tuple[str, str]]  # (model, one-line card)
    statement: str
    key_image_png: bytes | None
    nomogram_png: bytes | None
    notes: list[str] = field(default_factory=list)  # problems met while building the report
    case_label: str = "Case"  # "Pseudonym" when `case` is a keyed pseudonym (build_content(deidentifier=...))


def load_readout(readout_dir: str | Path) -> tuple[Path, dict[str, Any]]:
    """(folder, readout dict); InputError naming the file when it is missing or not a readout."""
    readout_dir = Path(readout_dir)
    path = readout_dir / READOUT_FILE if readout_dir.is_dir() else readout_dir
    if not path.is_file():
        raise InputError(f"no {READOUT_FILE} here (write one with `cervicalai predict ... --out DIR`)", readout_dir)
    from CervicalAILib.core.json_input import read_json

    readout = read_json(path, "readout")
    if not isinstance(readout, dict) or not str(readout.get("schema", "")).startswith(READOUT_SCHEMA_PREFIX):
        raise InputError(f"not a CervicalAI readout (schema {readout.get('schema') if isinstance(readout, dict) else None!r}, "
                         f"expected {READOUT_SCHEMA_PREFIX}N)", path)
    check_readout(readout, path)
    return path.parent, readout


def check_readout(readout: dict[str, Any], path: Path) -> None:
    """InputError naming the file when the readout breaks its schema (docs/schemas/readout.schema.json:
    value ranges included) or contradicts itself: nothing impossible is ever rendered for a reader."""
    from CervicalAILib.contracts.schemas import require_valid

    require_valid(readout, "readout", path, "the readout")
    lnm = readout.get("lnm") or {}
    top, inner = readout.get("lnm_probability"), lnm.get("probability")
    if top is not None and inner is not None and abs(float(top) - float(inner)) > 1e-6:
        raise InputError(f"the readout contradicts itself: lnm_probability {top:g} but lnm.probability {inner:g} "
                         "(edited or corrupt)", path)
    nomogram = readout.get("nomogram") or {}
    points = nomogram.get("points") or {}
    if points and nomogram.get("total_points") is not None and abs(sum(points.values()) - nomogram["total_points"]) > 1e-3:
        raise InputError(f"the readout contradicts itself: nomogram points add up to {sum(points.values()):.2f}, "
                         f"total_points is {nomogram['total_points']:.2f} (edited or corrupt)", path)
    _check_shipped_figures(readout, path)
    used = (readout.get("models") or {}).get("lnm") or {}
    if lnm.get("model") and used.get("name") and lnm["model"] != f"{used['name']}@{used.get('version')}":
        raise InputError(f"the readout contradicts itself: lnm.model is {lnm['model']} but models.lnm is "
                         f"{used['name']}@{used.get('version')} (edited or corrupt)", path)
    cutoff, positive = lnm.get("cutoff"), lnm.get("positive")
    if inner is not None and cutoff is not None and positive is not None and bool(positive) != (inner >= cutoff):
        raise InputError(f"the readout contradicts itself: LNM probability {inner:g} is "
                         f"{'above' if inner >= cutoff else 'below'} the cut-off {cutoff:g} but marked "
                         f"{'positive' if positive else 'negative'} (edited or corrupt)", path)


def _check_shipped_figures(readout: dict[str, Any], path: Path) -> None:
    """A readout naming a shipped LNM model must quote that model's validated figures: they are read again
    from the shipped bundle (pinned by the model catalogue), so an edited AUC is caught."""
    from types import SimpleNamespace

    from CervicalAILib.bundles.catalog import load_catalog, shipped_models_dirs
    from CervicalAILib.pipeline.readout import validated_performance

    model = (readout.get("models") or {}).get("lnm") or {}
    digest = model.get("bundle_json_sha256")
    if model.get("source") != "shipped" or not digest:
        return
    entry = next((e for e in load_catalog() if e.bundle_json_sha256 == digest), None)
    if entry is None:
        raise InputError(f"the readout names a shipped LNM model (bundle.json {str(digest)[:12]}...) that the model "
                         "catalogue does not list (edited, or from another version of CervicalAI)", path)
    manifest_path = next((d / entry.folder / "bundle.json" for d in shipped_models_dirs()
                          if (d / entry.folder / "bundle.json").is_file()), None)
    if manifest_path is None:
        return
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    expected = validated_performance(SimpleNamespace(manifest=manifest))
    quoted = (readout.get("lnm") or {}).get("validated") or []
    if expected != quoted:
        raise InputError(f"the readout's validated figures for {entry.label} differ from the shipped model's (edited "
                         "or corrupt readout): refusing to show them", path)


def _number(value: Any, digits: int = 1, unit: str = "") -> str:
    if value is None:
        return "not available"
    try:
        return f"{float(value):.{digits}f}{unit}"
    except (TypeError, ValueError):
        return str(value)


def _percent(value: Any) -> str:
    return "not available" if value is None else f"{100 * float(value):.1f}%"


def _resolve(folder: Path, path: Any) -> Path | None:
    if not path:
        return None
    candidate = Path(str(path))
    if not candidate.is_absolute() and (folder / candidate).exists():
        return folder / candidate
    return candidate if candidate.exists() else None


def _read_sequence(path: Path, entry: dict[str, Any], role: str) -> sitk.Image:
    """An image file, or the DICOM series (by its SeriesInstanceUID) in a folder."""
    from CervicalAILib.io.images import read_image

    if path.is_file():
        return read_image(path)
    from CervicalAILib.study.load import load_study

    study = load_study(path)
    uid = entry.get("series_uid")
    for series in study.series:
        if (uid and series.uid == uid) or (not uid and series.role == role):
            return series.image()
    raise InputError(f"no {role} series{f' {uid}' if uid else ''} in the folder", path)


def _window(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(finite, [1, 99])
    return float(low), float(high if high > low else low + 1)


def key_image_png(images: dict[str, sitk.Image], mask: sitk.Image, slice_index: int | None = None) -> bytes:
    """PNG of the T2WI at the largest tumour slice with the contour, ADC and CE-T1WI beside it."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from CervicalAILib.io import measurements as measure
    from CervicalAILib.io.geometry import resample_to_reference, same_grid

    t2 = images["T2W"]
    if not same_grid(mask, t2):
        mask = resample_to_reference(mask, t2, None, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    k = slice_index if slice_index is not None and 0 <= slice_index < t2.GetSize()[2] else measure.largest_slice_index(mask)
    contour = sitk.GetArrayViewFromImage(mask)[k] != 0
    roles = [role for role in ("T2W", "ADC", "CET1") if role in images]
    fig, axes = plt.subplots(1, len(roles), figsize=(3.2 * len(roles), 3.4), squeeze=False)
    spacing = t2.GetSpacing()
    for ax, role in zip(axes[0], roles):
        image = images[role]
        if not same_grid(image, t2):
            image = resample_to_reference(image, t2, None, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        plane = sitk.GetArrayViewFromImage(image)[k].astype(float)
        low, high = _window(plane)
        ax.imshow(plane, cmap="gray", vmin=low, vmax=high, interpolation="nearest",
                  aspect=spacing[1] / spacing[0])
        if contour.any():
            ax.contour(contour.astype(float), levels=[0.5], colors=[CONTOUR_COLOR], linewidths=1.4)
        ax.set_title(f"{ROLE_TITLES[role]}  (slice {k + 1}/{t2.GetSize()[2]})", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


# what each model of the readout predicts or does, by the readout's key (docs/readout.md "models")
MODEL_ROLES = {
    "lnm": "predicts pelvic lymph-node metastasis",
    "stage_group": "predicts the chemoradiotherapy group (IB3, IIA2-IVB)",
    "encoders": "deep tumour features for DL_score",
    "segmentation": "automatic tumour contour",
}
ROLE_LABELS = {"lnm": "LNM", "stage_group": "Stage group", "encoders": "Encoder", "segmentation": "Segmentation"}
TASK_ROLES = {"risk-model": "risk model", "encoder": "deep tumour features", "segmentation": "automatic tumour contour"}


def _training_clause(card: dict[str, Any]) -> str:
    """One short clause on the training data; the full paragraph stays in the model card (MODEL_CARD.md)."""
    text = str(card.get("training_data") or "")
    if not text:
        return ""
    # the number of training cases, written by risk bundles as "N training cases" (models/risk_bundle.py)
    match = re.search(r"(\d[\d,]*) training cases", text) or re.search(r"(\d[\d,]*) (?:patients|cases)\b", text)
    cases = f" ({match.group(1)} cases)" if match else ""
    if card.get("synthetic_training_data") or "synthetic" in text.lower():
        return f"trained on synthetic data{cases}, not for clinical use"
    first = re.split(r"(?<=[.;])\s", text, maxsplit=1)[0].rstrip(".;")
    return "trained on " + (first if len(first) <= 80 else first[:77].rstrip() + "...") + cases * (cases not in first)


def _model_lines(models: Any) -> list[tuple[str, str]]:
    """Model cards in brief, one line each: name@version, what it predicts, one clause on its training data.

    The full intended use and training-data paragraph (about 1000 characters per risk model) do not
    fit a one-page report; the validated AUCs are in the LNM section. Encoders used by both risk
    models are listed once."""
    entries: list[tuple[str, Any]] = []
    if isinstance(models, dict):
        for key, value in models.items():
            if isinstance(value, list):
                entries += [(key, item) for item in value]
            elif value:
                entries.append((key, value))
    lines: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for role, card in entries:
        if not isinstance(card, dict):
            lines.append((role, str(card)))
            continue
        name = f"{card.get('name', card.get('label', role))}@{card.get('version', '?')}"
        if (role, name) in seen:
            continue
        seen.add((role, name))
        does = MODEL_ROLES.get(role) or TASK_ROLES.get(str(card.get("task")), str(card.get("task") or "model"))
        if card.get("family") and role == "encoders":
            does += f" ({card['family']})"
        clause = _training_clause(card)
        if card.get("source") == "user-supplied":
            name += " (user-supplied)"
            clause = (clause + "; " if clause else "") + "not a shipped model: its description and figures are its own"
        lines.append((f"{ROLE_LABELS.get(role, role)}: {name}", f"{does}; {clause}" if clause else does))
    return lines


def patient_identity(folder: Path, readout: dict[str, Any]) -> str:
    """The identity a report's pseudonym is keyed on, as `cervicalai export` keys it for the case
    folder the readout's mask is in (clinical.json's patient_id, else its case_id, else the folder
    name), so a patient has the same pseudonym on the report and on exported masks; else the
    readout's case_id."""
    from CervicalAILib.export.manifest import patient_id_of_case

    mask_path = _resolve(folder, ((readout.get("inputs") or {}).get("mask") or {}).get("path"))
    if mask_path is not None:
        case_dir = mask_path.parent.parent if mask_path.parent.name == "labels" else mask_path.parent
        if (case_dir / "clinical.json").is_file():
            return patient_id_of_case(case_dir)
    return str(readout.get("case_id") or folder.name)


def blank_title(png: bytes) -> bytes:
    """The PNG with its title band (the first line of ink at the top) painted white.

    `cervicalai predict` titles the nomogram with the case id; a pseudonymised report must not show
    it, and the nomogram's spec is not in the readout to draw it again."""
    import matplotlib.image as mpimg

    image = mpimg.imread(io.BytesIO(png), format="png").copy()
    ink = (image[..., :3].mean(axis=-1) < 0.6).any(axis=1)
    rows = np.flatnonzero(ink)
    if rows.size:
        end = rows[0] + int(np.argmax(~ink[rows[0]:]))  # first blank row after the title line
        if end < 0.15 * image.shape[0]:  # a title line, not the drawing itself
            image[: end + 1] = 1.0
    buffer = io.BytesIO()
    mpimg.imsave(buffer, image, format="png")
    return buffer.getvalue()


def build_content(readout_dir: str | Path, deidentifier: Any = None, patient_id: str | None = None) -> ReportContent:
    """Gather the report's content from a readout folder (see the module docstring).

    With a `deidentifier` (export.deidentify.Deidentifier) the report shows the patient's keyed
    pseudonym instead of the readout's case id (a folder name, which may be a record number): the
    pseudonym is keyed on `patient_id`, else `patient_identity`; the case id and the identity are
    replaced wherever the readout's text repeats them, and the nomogram's title is blanked."""
    from CervicalAILib.io.images import read_image

    folder, readout = load_readout(readout_dir)
    notes: list[str] = []
    inputs = readout.get("inputs") or {}
    image_entries = inputs.get("images") or {}
    sequences = [role for role in ROLE_TITLES if role in image_entries]
    segmentation = readout.get("segmentation") or {}
    staging = readout.get("staging") or {}
    measured = staging.get("measured") or {}
    review = readout.get("review") or {}

    # key image
    key_png = None
    images: dict[str, sitk.Image] = {}
    for role in ("T2W", "ADC", "CET1"):
        entry = image_entries.get(role) or {}
        path = _resolve(folder, entry.get("path"))
        if path is None:
            if entry:
                notes.append(f"{ROLE_TITLES[role]} image not found ({entry.get('path')}): not shown")
            continue
        try:
            images[role] = _read_sequence(path, entry, role)
        except InputError as exc:
            notes.append(f"{ROLE_TITLES[role]} image not readable ({exc})")
    mask_path = _resolve(folder, (inputs.get("mask") or {}).get("path"))
    if "T2W" in images and mask_path is not None:
        try:
            key_png = key_image_png(images, read_image(mask_path), segmentation.get("largest_slice_index"))
        except InputError as exc:
            notes.append(f"key image not drawn ({exc})")
    else:
        notes.append("key image not drawn: the readout's T2WI or tumour mask file was not found")

    # nomogram
    nomogram = readout.get("nomogram") or {}
    nomogram_path = _resolve(folder, nomogram.get("image") or "nomogram.png")
    nomogram_png = nomogram_path.read_bytes() if nomogram_path is not None and nomogram_path.suffix == ".png" else None
    if nomogram_png is None:
        notes.append("nomogram image (nomogram.png) not found in the readout folder")

    reviewed = "reviewed" if review.get("reviewed") else "NOT reviewed"
    reviewer, reviewed_at, created = review.get("reviewer"), review.get("reviewed_at"), str(readout.get("created") or "")
    if deidentifier is not None:
        # as the de-identified exports do: the reviewer's keyed pseudonym, times shifted by the patient's offset
        identity = str(patient_id or patient_identity(folder, readout))
        reviewer = deidentifier.reviewer_pseudonym(str(reviewer)) if reviewer else None
        reviewed_at = deidentifier.shift_iso(reviewed_at, identity) if reviewed_at else None
        created = deidentifier.shift_iso(created, identity) or "" if created else ""
    if review.get("reviewed") and reviewer:
        reviewed += f" by {reviewer}" + (f" ({reviewed_at})" if reviewed_at else "")
    size_class = measured.get("figo_size_class")
    facts = [
        ("Sequences used", ", ".join(ROLE_TITLES[r] for r in sequences) or "not available"),
        ("Tumour contour", f"{reviewed}; origin {review.get('origin', 'unknown')}"),
        ("Tumour volume", _number(segmentation.get("volume_ml"), 1, " mL")),
        ("Maximum 3D diameter", _number(segmentation.get("max_diameter_mm"), 1, " mm")),
        ("FIGO size class", (f"{size_class}" if size_class else "not determined")
         + (" (valid: tumour confined to the cervix)" if measured.get("size_class_valid") else
            " (valid only if confined to the cervix)" if size_class else "")),
        ("Rad_score", _number(readout.get("rad_score"), 3)),
        ("DL_score", _number(readout.get("dl_score"), 3)),
    ]
    if segmentation.get("confidence") is not None:
        facts.append(("Segmentation confidence", _number(segmentation.get("confidence"), 2)))
    if segmentation.get("ood_score") is not None:
        facts.append(("Out-of-distribution score (above 1: unlike the segmentation model's training images)",
                      _number(segmentation.get("ood_score"), 2)))

    lnm = readout.get("lnm") or {}
    probability = lnm.get("probability", readout.get("lnm_probability"))
    lnm_lines = [("LNM probability (DLRC)", _percent(probability))]
    if lnm.get("model"):  # which model gave it: the full one, or the one without contrast (and why)
        lnm_lines.append(("LNM model", str(lnm["model"]) + (f" ({lnm['model_note']})" if lnm.get("model_note") else "")))
    if lnm.get("cutoff") is not None:
        source = lnm.get("cutoff_source") or "model operating point"
        lnm_lines.append(("Operating point", f"{_percent(lnm['cutoff'])} ({source})"))
        if probability is not None:
            positive = lnm.get("positive", float(probability) >= float(lnm["cutoff"]))
            lnm_lines.append(("Above the operating point", "yes: high risk" if positive else "no: low risk"))
    user_supplied = ((readout.get("models") or {}).get("lnm") or {}).get("source") == "user-supplied"
    for row in lnm.get("validated") or []:  # one row per cohort (readout.predict.validated_performance)
        if not isinstance(row, dict) or row.get("auc") is None:
            continue
        text = f"AUC {float(row['auc']):.2f}"
        if row.get("n") is not None:
            text += f" (n {row['n']}" + (f", {row['events']} with LNM)" if row.get("events") is not None else ")")
        for key, label in (("sensitivity", "sensitivity"), ("specificity", "specificity")):
            if row.get(key) is not None:
                text += f"; {label} {_percent(row[key])} at the operating point"
        if user_supplied:
            text += " (as stated by the user-supplied model, not verified)"
        lnm_lines.append((f"Validated: {str(row.get('cohort', '')).replace('_', ' ')}", text))
    if nomogram.get("total_points") is not None:
        lnm_lines.append(("Nomogram total points", _number(nomogram.get("total_points"), 1)))

    staging_lines = []
    if measured.get("text"):
        staging_lines.append(str(measured["text"]))
    nodes = staging.get("lymph_nodes") or {}
    if nodes:
        c_lnm = nodes.get("c_lnm")
        staging_lines.append("Lymph nodes (reader): c_LNM " + ("not measured" if c_lnm is None else "positive" if c_lnm
                             else "negative") + (f"; SRA {'positive' if nodes.get('sra') else 'negative'}"
                                                 if nodes.get("sra") is not None else ""))
    predicted = staging.get("predicted") or {}
    if predicted.get("text"):
        staging_lines.append(str(predicted["text"]))

    case_id = str(readout.get("case_id") or folder.name)
    content = ReportContent(
        case=case_id,
        created=created,
        sequences=sequences,
        facts=facts,
        lnm=lnm_lines,
        staging=staging_lines,
        needs_reader=[str(x) for x in staging.get("needs_reader") or []],
        warnings=[str(w) for w in readout.get("warnings") or []],
        models=_model_lines(readout.get("models")),
        statement=str(readout.get("statement") or RESEARCH_USE_STATEMENT),
        key_image_png=key_png,
        nomogram_png=nomogram_png,
        notes=notes,
    )
    if deidentifier is not None:
        identity = str(patient_id or patient_identity(folder, readout))
        pseudonymise(content, deidentifier.pseudonym(identity), [case_id, identity])
    return content


def pseudonymise(content: ReportContent, pseudonym: str, identities: list[str]) -> None:
    """Show `pseudonym` as the case and replace each identity (whole words) in every text of the report."""
    names = sorted({i for i in identities if i and i.strip()}, key=len, reverse=True)
    pattern = re.compile(r"(?<![\w-])(?:" + "|".join(re.escape(n) for n in names) + r")(?![\w-])") if names else None

    def scrub(text: str) -> str:
        # file paths may hold names and record numbers anywhere (a parent folder): never shown
        text = PATH_PATTERN.sub("[path]", text)
        return pattern.sub(pseudonym, text) if pattern else text

    content.case, content.case_label = pseudonym, "Pseudonym"
    for name in ("facts", "lnm", "models"):
        setattr(content, name, [(scrub(k), scrub(v)) for k, v in getattr(content, name)])
    # notes (problems met building the report) carry paths and error texts in brackets: left out
    content.notes = [re.sub(r"\s*\(.*\)", "", note) for note in content.notes]
    for name in ("sequences", "staging", "needs_reader", "warnings", "notes"):
        setattr(content, name, [scrub(line) for line in getattr(content, name)])
    content.statement = scrub(content.statement)
    if content.nomogram_png is not None:
        content.nomogram_png = blank_title(content.nomogram_png)
