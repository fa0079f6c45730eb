"""Where the model bundles live, and finding one: the default of a purpose, an alias or a folder, the encoder a risk model names.

Search order: the CERVICALAI_MODELS environment variable (a site's own bundle folder), the
source checkout's `Resources/Models/`, and `CervicalAIModels/` beside the scripted modules in an
installed Slicer extension (see the top-level CMakeLists.txt). Which folder holds the default
bundle of a purpose, and what "2d" stands for, is the model catalogue's (`bundles/catalog.py`).
"""

from __future__ import annotations

import os
from pathlib import Path

from CervicalAILib.bundles.catalog import (
    alias_entry,
    default_entry,
    find_entry,
    known_aliases,
    shipped_models_dirs,
)
from CervicalAILib.bundles.format import Bundle, load_bundle
from CervicalAILib.core.errors import BundleError, InputError
from CervicalAILib.core.hashing import sha256_file


def site_models_dirs() -> list[Path]:
    """A site's own bundle folder ($CERVICALAI_MODELS), when set: its bundles are user-supplied."""
    return [Path(os.environ["CERVICALAI_MODELS"])] if os.environ.get("CERVICALAI_MODELS") else []


def models_dir_candidates() -> list[Path]:
    return site_models_dirs() + shipped_models_dirs()  # the source checkout's, the installed extension's


def models_dir() -> Path:
    """The first existing models directory; BundleError listing where it looked if none."""
    candidates = models_dir_candidates()
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise BundleError("no model folder found; looked in: " + ", ".join(str(c) for c in candidates))


def default_bundle_path(purpose: str) -> Path:
    """Path of the default bundle for `purpose` (a `default_for` of the catalogue); BundleError if absent."""
    path = models_dir() / default_entry(purpose).folder
    if not (path / "bundle.json").is_file():
        raise BundleError(f"default {purpose} bundle not found at {path}")
    return path


def resolve_bundle(spec: str | Path, task: str) -> Path:
    """The bundle folder `spec` names: an alias of the catalogue ("2d": the default 2D encoder, from the
    model folder) or a folder of the user's own (then marked user-supplied when loaded).

    InputError of one line for a spec that is neither, listing the aliases; BundleError when the
    alias's bundle is not in the model folder.
    """
    text = str(spec).strip()
    entry = alias_entry(text, task)
    if entry is not None:  # an alias wins over a folder of the same name in the working directory, as always
        path = models_dir() / entry.folder
        if not (path / "bundle.json").is_file():
            raise BundleError(f"{entry.label} not found at {path}")
        return path
    path = Path(text)
    if not path.exists():
        aliases = known_aliases(task)
        raise InputError(f"{task} bundle folder not found (known names: {aliases})" if aliases
                         else f"{task} bundle folder not found", path)
    return path


def find_bundle(name: str | None, version: str | None, sha256: str | None, task: str, used_by: str = "the result") -> Bundle:
    """The bundle a result was made with (the encoder a risk model names): same name, version and
    bundle.json SHA-256. A site's own folder ($CERVICALAI_MODELS) is searched first, for a user-supplied
    bundle; a shipped one is found through the catalogue. BundleError of one line when neither has it.
    """
    if not name:
        raise BundleError(f"{used_by} does not name the {task} bundle it needs")
    site = site_models_dirs()
    for folder in site:
        for manifest in sorted(folder.glob("*/bundle.json")) if folder.is_dir() else []:
            if sha256 and sha256_file(manifest) != sha256:
                continue
            bundle = load_bundle(manifest.parent)
            if bundle.task == task and bundle.name == name and (version is None or bundle.version == version):
                return bundle
    entry = find_entry(name, version, sha256, task)
    if entry is not None:
        for folder in shipped_models_dirs():
            if (folder / entry.folder / "bundle.json").is_file():
                return load_bundle(folder / entry.folder)
    raise BundleError(
        f"{task} {name}@{version} (bundle.json sha256 {str(sha256)[:12]}...) used by {used_by} was not found: not in the model "
        f"catalogue{', nor in ' + str(site[0]) if site else ''}"
    )
