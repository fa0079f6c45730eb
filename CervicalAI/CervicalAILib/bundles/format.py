"""Model bundles: a folder of data (JSON + ONNX + YAML), never code.

`bundle.json` describes the model (schema, name, version, task, inputs, preprocessing,
outputs, provenance, metrics, intended use, what data trained it) and lists every artefact
with its SHA-256. Loading verifies the schema and every hash and refuses with a clear error,
so a bundle that was edited, truncated or swapped is never used. Artefacts are restricted to
data formats: a bundle can never carry a pickle or a torch checkpoint.

`bundle.json` itself is pinned by the model catalogue (`bundles.catalog`): a loaded bundle is
"shipped" when the catalogue lists its bundle.json hash, refused when it carries a shipped name and
version with another hash (an edited copy), and "user-supplied" otherwise; `Bundle.summary()`
carries that source and the hash into every output that names the model.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from CervicalAILib.bundles.catalog import identify, refuse_shipped_folder
from CervicalAILib.core.atomic import atomic_directory, to_json
from CervicalAILib.core.errors import BundleError
from CervicalAILib.core.hashing import sha256_file

SCHEMA = "cervicalai.bundle/1"
MANIFEST = "bundle.json"
MODEL_CARD = "MODEL_CARD.md"

# What a bundle may do. "segmentation": tumour segmentation network; "encoder": deep-feature
# image encoder; "risk-model": fitted scores + logistic model for one endpoint (lnm, stage_group).
TASKS = ("segmentation", "encoder", "risk-model")

ALLOWED_SUFFIXES = (".onnx", ".json", ".yaml", ".yml", ".md", ".txt", ".csv", ".png", ".svg")

REQUIRED_KEYS: dict[str, type | tuple[type, ...]] = {
    "schema": str,
    "name": str,
    "version": str,
    "task": str,
    "intended_use": str,
    "training_data": str,
    "inputs": (list, dict),
    "outputs": (list, dict),
    "provenance": dict,
    "files": dict,
}


@dataclass
class Bundle:
    """A verified bundle on disk. Use `file()`/`read_json()` to reach its artefacts."""

    path: Path
    manifest: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    manifest_sha256: str | None = None  # SHA-256 of bundle.json (pinned by the catalogue for shipped bundles)
    source: str = "user-supplied"  # "shipped" (listed in the model catalogue) or "user-supplied"

    @property
    def user_supplied(self) -> bool:
        return self.source != "shipped"

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def task(self) -> str:
        return self.manifest["task"]

    @property
    def label(self) -> str:
        """`name@version`, how readouts and logs name a model."""
        return f"{self.name}@{self.version}"

    @property
    def display_label(self) -> str:
        """`name@version`, with "(user-supplied)" for a bundle the model catalogue does not list."""
        return self.label + (" (user-supplied)" if self.user_supplied else "")

    def file(self, name: str) -> Path:
        if name not in self.manifest["files"]:
            raise BundleError(f"{self.path}: bundle.json does not list a file named {name!r}")
        return self.path / name

    def read_json(self, name: str) -> Any:
        return json.loads(self.file(name).read_text(encoding="utf-8"))

    def read_text(self, name: str) -> str:
        return self.file(name).read_text(encoding="utf-8")

    def read_yaml(self, name: str) -> Any:
        import yaml

        return yaml.safe_load(self.read_text(name))

    def summary(self) -> dict[str, Any]:
        """Name, version, task and the training-data statement, for readouts and model cards."""
        return {
            "name": self.name,
            "version": self.version,
            "task": self.task,
            "training_data": self.manifest["training_data"],
            "intended_use": self.manifest["intended_use"],
            "source": self.source,
            "bundle_json_sha256": self.manifest_sha256,
            "sha256": {name: entry["sha256"] for name, entry in self.manifest["files"].items()},
        }


def _check_file_name(bundle_dir: Path, name: str) -> None:
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts:
        raise BundleError(f"{bundle_dir}: file {name!r} must be a relative path inside the bundle")
    if rel.suffix.lower() not in ALLOWED_SUFFIXES:
        raise BundleError(
            f"{bundle_dir}: file {name!r} has a type a bundle may not carry "
            f"(allowed: {', '.join(ALLOWED_SUFFIXES)}); bundles are data, never pickles or checkpoints"
        )


def validate_manifest(manifest: Any, where: Path | str = "bundle.json") -> None:
    """Raise BundleError if `manifest` does not follow the bundle schema."""
    if not isinstance(manifest, dict):
        raise BundleError(f"{where}: bundle.json must hold a JSON object")
    schema = manifest.get("schema")
    if schema != SCHEMA:
        raise BundleError(f"{where}: unknown bundle schema {schema!r} (this version reads {SCHEMA!r})")
    for key, kind in REQUIRED_KEYS.items():
        if key not in manifest:
            raise BundleError(f"{where}: bundle.json lacks the required key {key!r}")
        if not isinstance(manifest[key], kind):
            raise BundleError(f"{where}: bundle.json key {key!r} has the wrong type")
    if manifest["task"] not in TASKS:
        raise BundleError(f"{where}: unknown task {manifest['task']!r} (known: {', '.join(TASKS)})")
    for name, entry in manifest["files"].items():
        _check_file_name(Path(str(where)), name)
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str) or len(entry["sha256"]) != 64:
            raise BundleError(f"{where}: file entry {name!r} needs a 64-hex-digit 'sha256'")


def manifest_number(spec: Mapping[str, Any], key: str, default: float, *, low: float, high: float, what: str,
                    where: Path | str, low_included: bool = False, name: str | None = None) -> float:
    """The number `spec[key]` (`default` when absent) within (low, high) - [low, high) with `low_included` -,
    or a BundleError naming `where` and the value: a hand-edited bundle gets one line, not a traceback."""
    value = spec.get(key, default)
    number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float("nan")
    if not ((low <= number if low_included else low < number) and number < high):
        raise BundleError(f"{where}: {name or key} {value!r} is not {what}")
    return number


def load_bundle(path: str | Path, task: str | None = None) -> Bundle:
    """Load and verify a bundle folder; refuse with BundleError on any mismatch."""
    bundle_dir = Path(path)
    manifest_path = bundle_dir / MANIFEST
    if not bundle_dir.is_dir():
        raise BundleError(f"{bundle_dir}: model bundle folder not found" if not bundle_dir.exists()
                          else f"{bundle_dir}: not a model bundle folder (a bundle is a folder holding {MANIFEST})")
    if not manifest_path.is_file():
        raise BundleError(f"{bundle_dir}: not a model bundle (no {MANIFEST})")
    try:
        raw = manifest_path.read_bytes()
        manifest = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{manifest_path}: not valid JSON ({exc})") from exc
    except OSError as exc:
        raise BundleError(f"{manifest_path}: cannot be read ({exc.strerror or exc})") from exc
    validate_manifest(manifest, manifest_path)
    manifest_sha256 = hashlib.sha256(raw).hexdigest()
    source, _entry = identify(manifest, manifest_sha256, manifest_path)
    if task is not None and manifest["task"] != task:
        raise BundleError(f"{bundle_dir}: bundle task is {manifest['task']!r}, expected {task!r}")
    for name, entry in manifest["files"].items():
        file_path = bundle_dir / name
        if not file_path.is_file():
            raise BundleError(f"{bundle_dir}: bundle file {name!r} is missing")
        actual = sha256_file(file_path)
        if actual != entry["sha256"]:
            raise BundleError(
                f"{file_path}: SHA-256 does not match bundle.json (expected {entry['sha256'][:12]}..., "
                f"found {actual[:12]}...); the bundle was modified or is incomplete - refusing to use it"
            )
    return Bundle(path=bundle_dir, manifest=manifest, manifest_sha256=manifest_sha256, source=source)


def write_bundle(
    out_dir: str | Path,
    manifest: dict[str, Any],
    files: dict[str, bytes | str | Path],
    overwrite: bool = False,
) -> Bundle:
    """Write a bundle atomically: the artefacts, their hashes, then bundle.json.

    `files` maps the name inside the bundle to bytes, text or a path to copy. `manifest` is
    completed with `schema` and `files` (hashes); it must carry every other required key. No
    time stamp is added, so the same inputs give the same bytes (callers may add `created`). A model card (MODEL_CARD.md) is required: it is where a user reads what the model is for.
    """
    out_dir = Path(out_dir)
    refuse_shipped_folder(out_dir)
    if MODEL_CARD not in files:
        raise BundleError(f"{out_dir}: a bundle needs a {MODEL_CARD} model card")
    manifest = dict(manifest)
    manifest["schema"] = SCHEMA
    manifest.setdefault("model_card", MODEL_CARD)
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        entries: dict[str, dict[str, str]] = {}
        for name, content in sorted(files.items()):
            _check_file_name(out_dir, name)
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                shutil.copyfile(content, target)
            elif isinstance(content, str):
                target.write_text(content, encoding="utf-8")
            else:
                target.write_bytes(content)
            entries[name] = {"sha256": sha256_file(target)}
        manifest["files"] = entries
        validate_manifest(manifest, out_dir / MANIFEST)
        (tmp / MANIFEST).write_text(to_json(manifest), encoding="utf-8")
    return load_bundle(out_dir)
