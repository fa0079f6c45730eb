"""The model catalogue: the identity of every bundle the extension ships, pinned by SHA-256.

`Resources/Models/catalog.json` (installed beside the modules as `CervicalAIModels/catalog.json`)
lists each shipped bundle: its name, version, task, folder, what it is the default for, the short
names a command line accepts for it (`aliases`: `--encoders 2d`), the title the hub shows for it,
the sequences it reads, and the SHA-256 of its `bundle.json`. It is the one list of the models:
the default bundle of each purpose (`default_entry`), the aliases (`alias_entry`), the hub's
titles and the encoder a risk model names (`find_entry`) are all read here; `bundles/defaults.py`
finds their folders. `bundle.json` lists the SHA-256 of every other file of the bundle, so this
one hash pins the whole bundle: a threshold, a coefficient or a quoted AUC edited in
`bundle.json` changes it.

When a bundle is loaded (`bundles.format.load_bundle`) it is identified here:

- its `bundle.json` hash is in the catalogue: a shipped bundle ("source": "shipped");
- a bundle in the extension's own model folder with another hash: refused (the shipped files were
  edited in place: a threshold or a quoted AUC changed under the same name and version);
- anything else, also a copy that keeps a shipped name and version: "user-supplied", and every
  output that names the model says so (segmentation.json, readout.json, the report, export
  manifests), so an edited copy never passes for the shipped model.

The catalogue is the extension's, never the site's: a folder given in $CERVICALAI_MODELS is
searched for bundles but cannot change what "shipped" means. `tools/update_model_catalog.py`
regenerates it after a bundle is retrained; a test checks it matches the shipped bundles.
Format: docs/schemas/model-catalog.schema.json (modelled on SlicerMONAIAuto3DSeg's models.json).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from CervicalAILib.contracts.schemas import validate
from CervicalAILib.core.errors import BundleError, InputError
from CervicalAILib.core.hashing import sha256_file

CATALOG_FILE = "catalog.json"
CATALOG_SCHEMA = "cervicalai.model-catalog/1"
SHIPPED = "shipped"
USER_SUPPLIED = "user-supplied"


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    name: str
    version: str
    task: str
    folder: str
    bundle_json_sha256: str
    default_for: tuple[str, ...]
    inputs: tuple[str, ...]
    description: str
    aliases: tuple[str, ...] = ()  # short names a command line accepts for it ("2d"), lower case
    title: str = ""  # what the hub calls it ("Deep-feature encoder (2D)")

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


def shipped_models_dirs() -> list[Path]:
    """Where the extension's own bundles (and catalogue) live: the source checkout, the installed extension."""
    here = Path(__file__).resolve()
    return [here.parents[3] / "Resources" / "Models", here.parents[2] / "CervicalAIModels"]


def refuse_shipped_folder(path: str | Path, option: str = "--out") -> None:
    """InputError when `path` is, or lies inside, the extension's own model folder.

    Every bundle there is pinned by the catalogue, so one written there (a refit, a recalibration) would be refused
    at its next load and leave the extension without that model. Commands call this before their long work;
    `format.write_bundle` calls it again so that no writer gets round it."""
    target = Path(os.path.abspath(Path(path).expanduser())).resolve()
    for folder in shipped_models_dirs():
        shipped = folder.resolve()
        if target == shipped or target.is_relative_to(shipped):
            where = "is the extension's own model folder" if target == shipped else \
                f"lies in the extension's own model folder ({folder})"
            raise InputError(f"{option} {path}: {where}, whose bundles the model catalogue pins; write it elsewhere, "
                             "then copy it in and run tools/update_model_catalog.py")


def catalog_path() -> Path | None:
    for folder in shipped_models_dirs():
        if (folder / CATALOG_FILE).is_file():
            return folder / CATALOG_FILE
    return None


def parse_catalog(document: Any, where: str | Path = CATALOG_FILE) -> list[CatalogEntry]:
    """Entries of a catalogue document; BundleError naming the file when it is not a valid catalogue."""
    problems = validate(document, "model-catalog")
    if problems:
        raise BundleError(f"{where}: not a valid model catalogue ({'; '.join(problems[:3])})")
    for field in ("default_for", "aliases"):  # each purpose has one default, each alias one bundle
        seen = [value for item in document["models"] for value in item.get(field, [])]
        twice = sorted({value for value in seen if seen.count(value) > 1})
        if twice:
            raise BundleError(f"{where}: not a valid model catalogue ({field} {', '.join(twice)} given to two bundles)")
    return [
        CatalogEntry(
            id=item["id"], name=item["name"], version=item["version"], task=item["task"], folder=item["folder"],
            bundle_json_sha256=item["bundle_json_sha256"], default_for=tuple(item.get("default_for", [])),
            inputs=tuple(item.get("inputs", [])), description=item.get("description", ""),
            aliases=tuple(item.get("aliases", [])), title=item.get("title", ""),
        )
        for item in document["models"]
    ]


@lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> tuple[CatalogEntry, ...]:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path}: the model catalogue cannot be read ({exc})") from exc
    return tuple(parse_catalog(document, path))


def load_catalog() -> list[CatalogEntry]:
    """The shipped catalogue's entries ([] in an installation without one: every bundle is then user-supplied)."""
    path = catalog_path()
    if path is None:
        return []
    return list(_load(str(path), path.stat().st_mtime))


# The order of the workflow (the schema's order of tasks): how the hub lists the default bundles.
TASK_ORDER = ("segmentation", "encoder", "risk-model")


def default_purposes() -> list[str]:
    """Every purpose a shipped bundle is the default for, in the workflow's order (segmentation, encoders, risk models)."""
    entries = sorted(load_catalog(), key=lambda e: TASK_ORDER.index(e.task) if e.task in TASK_ORDER else len(TASK_ORDER))
    return [purpose for entry in entries for purpose in entry.default_for]


def default_entry(purpose: str) -> CatalogEntry:
    """The catalogue entry of the default bundle for `purpose`; BundleError listing the known purposes."""
    for entry in load_catalog():
        if purpose in entry.default_for:
            return entry
    known = ", ".join(default_purposes()) or f"none: no {CATALOG_FILE} found"
    raise BundleError(f"unknown default bundle {purpose!r} (known: {known})")


def alias_entry(alias: str, task: str | None = None) -> CatalogEntry | None:
    """The entry a short name stands for ("2d" -> the 2D encoder), None when no entry has that alias."""
    text = alias.strip().lower()
    return next((e for e in load_catalog() if text in e.aliases and task in (None, e.task)), None)


def known_aliases(task: str | None = None) -> str:
    """ "2d (tumor-encoder-resnet2d@1.0.0), 3d (...)": the aliases of the catalogue, for error messages."""
    return ", ".join(f"{alias} ({e.label})" for e in load_catalog() if task in (None, e.task) for alias in e.aliases)


def find_entry(name: str, version: str | None, sha256: str | None, task: str | None = None) -> CatalogEntry | None:
    """The shipped bundle a result names: by bundle.json SHA-256 (when given) and name and version."""
    for entry in load_catalog():
        if task not in (None, entry.task) or entry.name != name or version not in (None, entry.version):
            continue
        if sha256 in (None, "", entry.bundle_json_sha256):
            return entry
    return None


def identify(manifest: dict[str, Any], manifest_sha256: str, where: str | Path) -> tuple[str, CatalogEntry | None]:
    """("shipped", entry) or ("user-supplied", None); BundleError for a modified bundle in the extension's own
    model folder (the shipped files themselves were edited: never used, whatever it claims to be)."""
    entries = load_catalog()
    for entry in entries:
        if entry.bundle_json_sha256 == manifest_sha256:
            return SHIPPED, entry
    bundle_dir = Path(where).parent.resolve()
    for folder in shipped_models_dirs():
        if entries and bundle_dir.parent == folder.resolve():
            shipped = next((e for e in entries if e.folder == bundle_dir.name), None)
            what = f"the shipped model {shipped.label}" if shipped else "a bundle the model catalogue does not list"
            raise BundleError(
                f"{where}: {what} in the extension's model folder was modified (bundle.json SHA-256 "
                f"{manifest_sha256[:12]}...{', catalogue ' + shipped.bundle_json_sha256[:12] + '...' if shipped else ''}) "
                "- refusing to use it; reinstall the extension, or put your own model in its own folder "
                "(it is then marked user-supplied)")
    return USER_SUPPLIED, None


def bundle_source(bundle_dir: str | Path) -> dict[str, Any]:
    """{"source", "bundle_json_sha256"} of the bundle folder a result names (for summaries written
    by code that holds only the bundle's path)."""
    manifest_path = Path(bundle_dir) / "bundle.json"
    digest = sha256_file(manifest_path)
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    source, _ = identify(manifest, digest, manifest_path)
    return {"source": source, "bundle_json_sha256": digest}


def _input_roles(inputs: Any) -> list[str]:
    """The sequences a bundle reads, from the three `inputs` layouts of bundle.json."""
    if isinstance(inputs, list):  # segmentation: [{"role": "T2W", "channel": 0}, ...]
        return [str(item["role"]) for item in inputs if isinstance(item, dict) and item.get("role")]
    if isinstance(inputs, dict):  # risk model: {"sequences": [...]}; encoder: {"roles": [...]}
        return [str(role) for role in inputs.get("sequences") or inputs.get("roles") or []]
    return []


def _first_sentence(text: str, limit: int = 300) -> str:
    """The intended use's first sentence, cut at a word (with an ellipsis) when longer than `limit`."""
    sentence = text.split(". ")[0].rstrip(".")
    return sentence if len(sentence) <= limit else sentence[: limit - 1].rsplit(" ", 1)[0] + "\u2026"


def catalog_document(models_dir: str | Path, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """The catalogue of every bundle folder under `models_dir` (what tools/update_model_catalog.py writes).

    previous: the catalogue document of today; each bundle keeps its curated fields (default_for,
    aliases, title) from its entry there (same id). A new bundle gets none: add them by hand.
    """
    models_dir = Path(models_dir)
    curated = {item["id"]: item for item in (previous or {}).get("models", [])}
    models = []
    for manifest_path in sorted(models_dir.glob(f"*/{'bundle.json'}")):
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        folder = manifest_path.parent.name
        roles = _input_roles(manifest.get("inputs"))
        kept = curated.get(folder, {})
        models.append({
            "id": folder,
            "name": manifest["name"],
            "version": manifest["version"],
            "task": manifest["task"],
            "folder": folder,
            "bundle_json_sha256": sha256_file(manifest_path),
            "default_for": list(kept.get("default_for", [])),
            **{field: kept[field] for field in ("aliases", "title") if kept.get(field)},
            "inputs": roles,
            "description": _first_sentence(str(manifest.get("intended_use", ""))),
        })
    return {
        "schema": CATALOG_SCHEMA,
        "description": "The model bundles shipped with CervicalAI, pinned by the SHA-256 of their bundle.json "
                       "(regenerate with tools/update_model_catalog.py)",
        "models": models,
    }
