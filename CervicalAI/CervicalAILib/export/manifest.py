"""Provenance manifests: what an export holds, where each mask came from, and every file's hash.

`manifest.json` (in an export folder) or `<file>.manifest.json` (beside a single exported file):

    schema        "cervicalai.export-manifest/1"
    kind          "nnunet" | "dicom-seg" | "seg-nrrd" | "nifti"
    created       export time (UTC); tool {name, version}
    deidentified  false, or {method, dates, pseudonyms: "HMAC-SHA256 ..."} (never the key)
    cases         one entry per exported case: case (ID or pseudonym), sequences, mask provenance
                  (algorithm type, model name@version that drew the automatic contour, reviewer,
                  review time, edit metrics), warnings
    excluded      cases left out, each with the reason
    files         relative path -> SHA-256 of every exported file

De-identified manifests carry pseudonyms only: no source paths, no names, review times shifted
like the patient's dates, reviewers replaced by keyed reviewer pseudonyms.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from pathlib import Path
from typing import Any

from CervicalAILib import RESEARCH_USE_STATEMENT, __version__
from CervicalAILib.contracts.segmentation import SEGMENTATION_SUMMARY
from CervicalAILib.core import atomic
from CervicalAILib.core.errors import InputError
from CervicalAILib.core.hashing import sha256_file
from CervicalAILib.review.record import read_review

SCHEMA = "cervicalai.export-manifest/1"
MANIFEST_FILE = "manifest.json"


def automatic_model_of(mask_path: str | Path, review_model: str | None = None) -> str | None:
    """'name@version' of the model that drew the automatic contour: from the review record, else
    from `segmentation.json` beside the mask (the segment command's summary), else None."""
    if review_model:
        return review_model
    summary_path = Path(mask_path).with_name(SEGMENTATION_SUMMARY)
    if summary_path.is_file():
        try:
            model = json.loads(summary_path.read_text(encoding="utf-8")).get("model") or {}
        except json.JSONDecodeError:
            return None
        label = model.get("label") or (f"{model['name']}@{model['version']}" if model.get("name") else None)
        return str(label) if label else None
    return None


def automatic_model_source(mask_path: str | Path) -> str | None:
    """"shipped" or "user-supplied" for the model that drew the automatic contour (segmentation.json), or None."""
    summary_path = Path(mask_path).with_name(SEGMENTATION_SUMMARY)
    try:
        model = json.loads(summary_path.read_text(encoding="utf-8")).get("model") or {}
    except (OSError, ValueError, AttributeError):
        return None
    return model.get("source") if isinstance(model, dict) else None


def scrub(texts: list[str], deidentifier: Any, identities: dict[str, str]) -> list[str]:
    """Texts for a de-identified manifest: each identity (case id, folder name, patient ID) replaced by
    its stand-in, every file path removed (a parent folder may hold a name). Unchanged without a deidentifier."""
    if deidentifier is None:
        return list(texts)
    names = sorted((name for name in identities if name and name.strip()), key=len, reverse=True)
    out = []
    for text in texts:
        text = re.sub(r"(?<![\w.\-])(?:[A-Za-z]:)?[\\/][^\s(),;']+", "[path]", str(text))
        for name in names:
            text = text.replace(name, identities[name])
        out.append(text)
    return out


def mask_provenance(mask_path: str | Path) -> dict[str, Any]:
    """How a mask came to be: review record, SEG algorithm type, automatic model (and whether that model
    was shipped or user-supplied)."""
    record = read_review(mask_path)
    return {
        "reviewed": record.reviewed,
        "origin": record.origin,
        "algorithm_type": record.algorithm_type,
        "automatic_model": automatic_model_of(mask_path, record.automatic_model),
        "automatic_model_source": automatic_model_source(mask_path),
        "reviewer": record.reviewer,
        "reviewed_at": record.reviewed_at,
        "edit_metrics": record.to_dict()["edit_metrics"],
    }


def split_model_label(label: str | None) -> tuple[str, str]:
    """('name', 'version') from 'name@version'; version 'unknown' when absent."""
    if not label:
        return "unknown", "unknown"
    name, _, version = str(label).partition("@")
    return name or "unknown", version or "unknown"


def file_hashes(folder: str | Path, exclude: tuple[str, ...] = (MANIFEST_FILE,)) -> dict[str, str]:
    """Relative path (POSIX) -> SHA-256 of every file under `folder`, sorted."""
    folder = Path(folder)
    hashes = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if relative not in exclude:
            hashes[relative] = sha256_file(path)
    return hashes


def build_manifest(
    kind: str,
    cases: list[dict[str, Any]],
    files: dict[str, str],
    *,
    excluded: list[dict[str, Any]] | None = None,
    deidentifier: Any = None,
    details: dict[str, Any] | None = None,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """The manifest document (see the module docstring)."""
    deidentified: Any = False
    if deidentifier is not None:
        deidentified = {
            "method": deidentifier.method_text(),
            **deidentifier.options(),
            "dates": deidentifier.dates,
            "pseudonyms": "HMAC-SHA256 of the patient ID under the site's secret key (not included)",
            "manifest": "pseudonyms only: no names, case-folder names, paths or record numbers; review times shifted "
                        "like the patient's dates; reviewers replaced by keyed reviewer pseudonyms",
        }
    return {
        "schema": SCHEMA,
        "kind": kind,
        "created": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(),
        "tool": {"name": "cervicalai", "version": __version__},
        "deidentified": deidentified,
        **(details or {}),
        "cases": cases,
        "excluded": excluded or [],
        "warnings": warnings or [],
        "files": files,
        "statement": RESEARCH_USE_STATEMENT,
    }


def write_manifest(path: str | Path, manifest: dict[str, Any]) -> Path:
    return atomic.write_json(path, manifest)


def sidecar_path(file_path: str | Path) -> Path:
    """`seg.dcm` -> `seg.dcm.manifest.json`."""
    file_path = Path(file_path)
    return file_path.with_name(file_path.name + "." + MANIFEST_FILE)


def verify_manifest(path: str | Path) -> list[str]:
    """Problems found when re-hashing the files a manifest lists ([] when everything matches)."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read manifest ({exc})", path) from exc
    root = path.parent
    problems = []
    for relative, digest in manifest.get("files", {}).items():
        target = root / relative
        if not target.is_file():
            problems.append(f"{relative}: missing")
        elif sha256_file(target) != digest:
            problems.append(f"{relative}: SHA-256 differs from the manifest")
    return problems


def patient_id_of_case(case_dir: str | Path) -> str:
    """The identity a case folder's pseudonym is keyed on: clinical.json's `patient_id`, else its
    `case_id`, else the folder name (the same patient then gets the same pseudonym everywhere)."""
    case_dir = Path(case_dir)
    clinical_path = case_dir / "clinical.json"
    if clinical_path.is_file():
        try:
            clinical = json.loads(clinical_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"clinical.json is not valid JSON ({exc})", clinical_path) from exc
        for key in ("patient_id", "case_id"):
            if isinstance(clinical, dict) and clinical.get(key):
                return str(clinical[key])
    return case_dir.name
