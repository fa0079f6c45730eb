"""What the per-patient report shows, gathered from a readout folder (`readout.json` + `nomogram.png`).

The readout contract is contracts/readout.py (docs/readout.md), its wording contracts/readout_text.py.
Every value may be null (the reason is then in the readout's warnings); the report says "not
available" instead of failing. Images come from the case files the readout references (paths
relative to the readout folder or absolute): the key image is the T2WI at the slice with the
largest tumour area, with the tumour contour, and the ADC and CE-T1WI at the same position
(resampled onto the T2WI grid in scanner coordinates when they are on their own grids).
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

from CervicalAILib.bundles.catalog import load_catalog, shipped_models_dirs
from CervicalAILib.contracts import readout_text as wording
from CervicalAILib.contracts.case_folder import ROLE_TITLES
from CervicalAILib.contracts.readout import (
    NOMOGRAM_IMAGE,
    READOUT_FILE,
    ImageInput,
    Readout,
    read_readout,
    validated_rows,
)
from CervicalAILib.core.errors import InputError
from CervicalAILib.export.manifest import patient_id_of_case
from CervicalAILib.io import measurements as measure
from CervicalAILib.io.geometry import resample_to_reference, same_grid
from CervicalAILib.io.images import read_image
from CervicalAILib.study.load import load_study

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
    lnm: list[tuple[str, str]]  # (label, value); the first is the risk sentence (readout_text.lnm_line)
    staging: list[str]
    needs_reader: list[str]
    warnings: list[str]
    models: list[tuple[str, str]]  # (model, one-line card)
    statement: str
    key_image_png: bytes | None
    nomogram_png: bytes | None
    notes: list[str] = field(default_factory=list)  # problems met while building the report
    case_label: str = "Case"  # "Pseudonym" when `case` is a keyed pseudonym (build_content(deidentifier=...))


def load_readout(readout_dir: str | Path) -> tuple[Path, Readout]:
    """(folder, readout); InputError naming the file when it is missing, not a readout, breaks its contract
    (contracts/readout.py: schema, value ranges, no contradiction) or misquotes a shipped model: nothing
    impossible is ever rendered for a reader."""
    folder, readout = read_readout(readout_dir)
    _check_shipped_figures(readout, Path(readout_dir) / READOUT_FILE if Path(readout_dir).is_dir() else Path(readout_dir))
    return folder, readout


def _check_shipped_figures(readout: Readout, path: Path) -> None:
    """A readout naming a shipped LNM model must quote that model's validated figures: they are read again
    from the shipped bundle (pinned by the model catalogue), so an edited AUC is caught."""
    model = readout.models.lnm
    digest = model.bundle_json_sha256 if model is not None else None
    if model is None or model.source != "shipped" or not digest:
        return
    entry = next((e for e in load_catalog() if e.bundle_json_sha256 == digest), None)
    if entry is None:
        raise InputError(f"the readout names a shipped LNM model (bundle.json {str(digest)[:12]}...) that the model "
                         "catalogue does not list (edited, or from another version of CervicalAI)", path)
    manifest_path = next((d / entry.folder / "bundle.json" for d in shipped_models_dirs()
                          if (d / entry.folder / "bundle.json").is_file()), None)
    if manifest_path is None:
        return
    expected = validated_rows(json.loads(manifest_path.read_text(encoding="utf-8")))
    quoted = [row.to_dict() for row in readout.lnm.validated or []]
    if expected != quoted:
        raise InputError(f"the readout's validated figures for {entry.label} differ from the shipped model's (edited "
                         "or corrupt readout): refusing to show them", path)


def resolve_path(folder: Path, path: Any) -> Path | None:
    if not path:
        return None
    candidate = Path(str(path))
    if not candidate.is_absolute() and (folder / candidate).exists():
        return folder / candidate
    return candidate if candidate.exists() else None


def _read_sequence(path: Path, entry: ImageInput, role: str) -> sitk.Image:
    """An image file, or the DICOM series (by its SeriesInstanceUID) in a folder."""
    if path.is_file():
        return read_image(path)
    study = load_study(path)
    uid = entry.series_uid
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


def patient_identity(folder: Path, readout: Readout) -> str:
    """The identity a report's pseudonym is keyed on, as `cervicalai export` keys it for the case
    folder the readout's mask is in (clinical.json's patient_id, else its case_id, else the folder
    name), so a patient has the same pseudonym on the report and on exported masks; else the
    readout's case_id."""
    mask_path = resolve_path(folder, readout.inputs.mask.path if readout.inputs.mask is not None else None)
    if mask_path is not None:
        case_dir = mask_path.parent.parent if mask_path.parent.name == "labels" else mask_path.parent
        if (case_dir / "clinical.json").is_file():
            return patient_id_of_case(case_dir)
    return readout.case_id or folder.name


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
    folder, readout = load_readout(readout_dir)
    notes: list[str] = []
    image_entries = readout.inputs.images or {}
    sequences = [role for role in ROLE_TITLES if role in image_entries]
    segmentation = readout.segmentation
    measured = readout.staging.measured
    review = readout.review

    # key image
    key_png = None
    images: dict[str, sitk.Image] = {}
    for role in ("T2W", "ADC", "CET1"):
        entry = image_entries.get(role) or ImageInput()
        path = resolve_path(folder, entry.path)
        if path is None:
            if role in image_entries:
                notes.append(f"{ROLE_TITLES[role]} image not found ({entry.path}): not shown")
            continue
        try:
            images[role] = _read_sequence(path, entry, role)
        except InputError as exc:
            notes.append(f"{ROLE_TITLES[role]} image not readable ({exc})")
    mask_path = resolve_path(folder, readout.inputs.mask.path if readout.inputs.mask is not None else None)
    if "T2W" in images and mask_path is not None:
        try:
            key_png = key_image_png(images, read_image(mask_path), segmentation.largest_slice_index)
        except InputError as exc:
            notes.append(f"key image not drawn ({exc})")
    else:
        notes.append("key image not drawn: the readout's T2WI or tumour mask file was not found")

    # nomogram
    nomogram = readout.nomogram
    nomogram_path = resolve_path(folder, (nomogram.image if nomogram is not None else None) or NOMOGRAM_IMAGE)
    nomogram_png = nomogram_path.read_bytes() if nomogram_path is not None and nomogram_path.suffix == ".png" else None
    if nomogram_png is None:
        notes.append(f"nomogram image ({NOMOGRAM_IMAGE}) not found in the readout folder")

    reviewed = "reviewed" if review is not None and review.reviewed else "NOT reviewed"
    reviewer = review.reviewer if review is not None else None
    reviewed_at = review.reviewed_at if review is not None else None
    created = readout.created or ""
    if deidentifier is not None:
        # as the de-identified exports do: the reviewer's keyed pseudonym, times shifted by the patient's offset
        identity = str(patient_id or patient_identity(folder, readout))
        reviewer = deidentifier.reviewer_pseudonym(str(reviewer)) if reviewer else None
        reviewed_at = deidentifier.shift_iso(reviewed_at, identity) if reviewed_at else None
        created = deidentifier.shift_iso(created, identity) or "" if created else ""
    if review is not None and review.reviewed and reviewer:
        reviewed += f" by {reviewer}" + (f" ({reviewed_at})" if reviewed_at else "")
    size_class = measured.figo_size_class if measured is not None else None
    size_valid = measured is not None and measured.size_class_valid
    labels = wording.LABELS
    facts = [
        ("Sequences used", ", ".join(ROLE_TITLES[r] for r in sequences) or wording.NOT_AVAILABLE),
        ("Tumour contour", f"{reviewed}; origin {(review.origin if review is not None else None) or 'unknown'}"),
        (labels["volume_ml"], wording.number(segmentation.volume_ml, 1, "mL")),
        (labels["max_diameter_mm"], wording.number(segmentation.max_diameter_mm, 1, "mm")),
        (labels["figo_size_class"], (f"{size_class}" if size_class else "not determined")
         + (" (valid: tumour confined to the cervix)" if size_valid else
            " (valid only if confined to the cervix)" if size_class else "")),
        (labels["rad_score"], wording.number(readout.rad_score)),
        (labels["dl_score"], wording.number(readout.dl_score)),
    ]
    if segmentation.confidence is not None:
        facts.append((labels["confidence"], wording.number(segmentation.confidence, 2)))
    if segmentation.ood_score is not None:
        facts.append((labels["ood_score"], wording.number(segmentation.ood_score, 2)))

    lnm_lines = [(labels["lnm"], wording.lnm_value(readout))]
    model = wording.lnm_model_value(readout)  # which model gave it: the full one, or the one without contrast (and why)
    if model:
        lnm_lines.append((labels["lnm_model"], model))
    cutoff = wording.cutoff_value(readout)
    if cutoff:
        lnm_lines.append((labels["cutoff"], cutoff))
    lnm_lines += wording.validated_lines(readout)
    if nomogram is not None and nomogram.total_points is not None:
        lnm_lines.append((labels["total_points"], wording.number(nomogram.total_points, 1)))

    staging_lines = [line for line in (wording.size_line(readout), wording.nodes_line(readout), wording.stage_line(readout)) if line]

    case_id = readout.case_id or folder.name
    content = ReportContent(
        case=case_id,
        created=created,
        sequences=sequences,
        facts=facts,
        lnm=lnm_lines,
        staging=staging_lines,
        needs_reader=list(readout.staging.needs_reader or []),
        warnings=list(readout.warnings),
        models=wording.model_lines(readout),
        statement=readout.statement,
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
