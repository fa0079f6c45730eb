"""The one check every command makes of its output path before it writes anything.

    check_output_path(out, inputs, overwrite=..., kind="folder"|"file", owned=[...])

refuses, with one line naming both paths:

- an output that is, lies inside, or contains one of the command's inputs (symbolic links and
  hard links resolved): an output never replaces or deletes an input;
- an output below a regular file, or in a folder that cannot be written;
- an existing output without --overwrite;
- whatever would replace a reviewed contour or its review record (`*.review.json`), with any
  flag: a reviewed contour is never replaced or deleted by a command;
- with --overwrite, a folder that also holds files the command does not write (`owned`: the
  glob patterns of what it writes): --overwrite replaces only the command's own output.

`atomic.atomic_directory` repeats the reviewed-contour rule at the moment it replaces a folder,
so no writer can get round it.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable
from pathlib import Path

from CervicalAILib.core.errors import InputError, OutputExistsError
from CervicalAILib.core.hashing import sha256_file

# Suffix of a review record beside its mask (`tumor.nii.gz.review.json`, see CervicalAILib.contracts.review).
REVIEW_RECORD_SUFFIX = ".review.json"


def _resolved(path: str | Path) -> Path:
    return Path(os.path.abspath(Path(path).expanduser())).resolve(strict=False)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _inside(child: Path, parent: Path) -> bool:
    return child != parent and child.is_relative_to(parent)


def _exported_copies(folder: Path) -> dict[str, str]:
    """Files an export wrote into `folder` (relative path -> SHA-256 from its manifest.json), {} if none."""
    import json

    manifest = folder / "manifest.json"
    try:
        document = json.loads(manifest.read_text(encoding="utf-8")) if manifest.is_file() else {}
    except (OSError, ValueError):
        return {}
    files = document.get("files") if isinstance(document, dict) and str(document.get("schema", "")).startswith(
        "cervicalai.export-manifest/") else None
    return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {}


def reviewed_contours(folder: str | Path, limit: int = 5) -> list[str]:
    """Review records (relative paths) under `folder`: a folder holding one holds a reviewed contour.

    Copies an export made (listed with the same SHA-256 in the folder's export manifest) do not count:
    the reader's own contour is elsewhere, and re-exporting replaces the copies."""
    folder = Path(folder)
    found = []
    if folder.is_dir():
        exported = _exported_copies(folder)
        for root, _dirs, files in os.walk(folder):
            for name in sorted(files):
                if name.endswith(REVIEW_RECORD_SUFFIX):
                    path = Path(root) / name
                    relative = path.relative_to(folder).as_posix()
                    if relative in exported and sha256_file(path) == exported[relative]:
                        continue
                    found.append(relative)
                    if len(found) >= limit:
                        return found
    return found


def is_reviewed_file(path: str | Path) -> bool:
    """True for a review record, or a file with a review record beside it (a reviewed mask)."""
    path = Path(path)
    return path.name.endswith(REVIEW_RECORD_SUFFIX) or path.with_name(path.name + REVIEW_RECORD_SUFFIX).exists()


def refuse_reviewed(path: str | Path) -> None:
    """OutputExistsError when replacing `path` (a file or folder) would replace a reviewed contour."""
    path = Path(path)
    if path.is_dir():
        records = reviewed_contours(path)
        if records:
            raise OutputExistsError(
                f"{path}: output folder exists and is not empty: it holds a reviewed contour ({', '.join(records)}); a "
                "reviewed contour and its record are never replaced or deleted, with any flag: write to another "
                "folder (or move it aside yourself)")
    elif path.exists() and is_reviewed_file(path):
        raise OutputExistsError(
            f"{path}: is a reviewed contour or its review record; it is never replaced, with any flag: write to "
            "another file")


def foreign_entries(folder: str | Path, owned: Iterable[str], limit: int = 5) -> list[str]:
    """Files under `folder` (relative POSIX paths) that match none of the `owned` glob patterns."""
    folder = Path(folder)
    patterns = list(owned)
    found = []
    for root, _dirs, files in os.walk(folder):
        for name in sorted(files):
            relative = (Path(root) / name).relative_to(folder).as_posix()
            if not any(fnmatch.fnmatchcase(relative, pattern) for pattern in patterns):
                found.append(relative)
                if len(found) >= limit:
                    return found
    return found


def _check_parent(out: Path, option: str) -> None:
    """The nearest existing folder above `out` must be a folder this process can write into."""
    for ancestor in _resolved(out).parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise InputError(f"{option} {out}: cannot be created, {ancestor} is a file, not a folder")
            if not os.access(ancestor, os.W_OK | os.X_OK):
                raise InputError(f"{option} {out}: cannot write into {ancestor} (permission denied)")
            return


def check_output_path(
    out: str | Path,
    inputs: Iterable[str | Path | None] = (),
    *,
    overwrite: bool = False,
    kind: str = "folder",
    owned: Iterable[str] | None = None,
    option: str = "--out",
    inside_ok: Iterable[str | Path] = (),
) -> Path:
    """Refuse an output path that would lose or corrupt something (see the module docstring).

    kind: "folder" (the command builds a folder) or "file". owned: with --overwrite and a folder,
    glob patterns (relative to it) of everything the command writes; other files there are refused.
    inside_ok: inputs an output may lie inside, where a command's own layout puts it there (the review
    worklist keeps each case's automatic segmentation in CASE/segmentation/); still never equal to them.
    Returns `out` as given.
    """
    out = Path(out)
    if str(out).strip() == "":
        raise InputError(f"{option}: empty path")
    target = _resolved(out)
    nested = {_resolved(item) for item in inside_ok if item is not None}
    for item in inputs:
        if item is None or str(item) == "":
            continue
        source = _resolved(item)
        if target == source or _same_file(out, Path(item)):
            raise InputError(f"{option} {out} is the input {item}: an output never replaces an input")
        if _inside(target, source) and source not in nested:
            raise InputError(f"{option} {out} lies inside the input {item}: write outputs outside the inputs")
        if _inside(source, target):
            raise InputError(f"{option} {out} contains the input {item}: replacing it could delete the input; "
                             "choose another output path")
    _check_parent(out, option)
    if out.exists() or out.is_symlink():
        if kind == "folder" and not out.is_dir():
            raise OutputExistsError(f"{out}: exists and is not a folder")
        if kind == "file" and out.is_dir():
            raise OutputExistsError(f"{out}: is a folder; give a file name")
        refuse_reviewed(out)
        taken = out.is_file() or (out.is_dir() and any(out.iterdir()))
        if taken and not overwrite:
            what = "output folder exists and is not empty" if kind == "folder" else "exists"
            raise OutputExistsError(f"{out}: {what} (use --overwrite to replace it)")
        if taken and kind == "folder" and owned is not None:
            foreign = foreign_entries(out, owned)
            if foreign:
                raise OutputExistsError(
                    f"{out}: also holds files this command does not write ({', '.join(foreign)}); --overwrite "
                    "replaces only the command's own output: move them, or choose another output folder")
    return out
