"""Atomic file writing: a reader never sees a half-written file or folder.

Everything the engine writes goes to a temporary name in the destination folder first and is
then renamed into place (os.replace is atomic on one file system), so a crash leaves either
the old file or the new one, never a truncated one. Images are written with io.images.write_image,
which also checks the file before it is renamed into place (ITK's writers do not fail on a full disk).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from CervicalAILib.core.errors import OutputExistsError
from CervicalAILib.core.output_guard import foreign_entries, refuse_reviewed


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# tempfile creates private files (0600) and folders (0700); outputs get the usual permissions
# that the user's umask gives a new file or folder, as if written directly.
_UMASK = _current_umask()
FILE_MODE = 0o666 & ~_UMASK
DIR_MODE = 0o777 & ~_UMASK


def _temp_path_beside(path: Path, suffix: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` when the block succeeds.

    The temporary name keeps the file's full suffix (e.g. `.nii.gz`) so that writers which
    choose the format from the file name (SimpleITK, matplotlib) do the right thing.
    """
    path = Path(path)
    suffix = "".join(path.suffixes)
    tmp = _temp_path_beside(path, suffix)
    try:
        yield tmp
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if exc.errno is not None and (not exc.filename or str(exc.filename) == str(tmp)):
            raise OSError(exc.errno, exc.strerror, str(path)) from exc  # the output, not its temporary name
        raise
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays, Paths: the common non-JSON types in engine results
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serialisable")


def to_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=False, default=_json_default, allow_nan=False) + "\n"


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, to_json(obj))


def refuse_taken_folder(path: str | Path, overwrite: bool = False, owned: list[str] | None = None) -> None:
    """OutputExistsError when `path` is a file, or a non-empty folder and `overwrite` is not set, or
    holds a reviewed contour (never replaced), or (with `owned` patterns) files the writer does not own.

    Commands call it before long work so that a taken output is refused at once, not after it.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"{path}: exists and is not a folder")
    if path.is_dir() and any(path.iterdir()):
        refuse_reviewed(path)
        if not overwrite:
            raise OutputExistsError(f"{path}: output folder exists and is not empty (use --overwrite to replace it)")
        foreign = foreign_entries(path, owned) if owned is not None else []
        if foreign:
            raise OutputExistsError(
                f"{path}: also holds files this command does not write ({', '.join(foreign)}); --overwrite replaces "
                "only the command's own output: move them, or choose another output folder")


@contextlib.contextmanager
def atomic_directory(path: str | Path, overwrite: bool = False, owned: list[str] | None = None) -> Iterator[Path]:
    """Build a folder under a temporary name and move it into place only when complete.

    Refuses (OutputExistsError) when `path` exists and is not empty, unless `overwrite`; with
    `overwrite` the old folder is replaced only after the new one is complete. A folder holding a
    reviewed contour is never replaced; with `owned` (glob patterns of what the writer makes), a
    folder holding anything else is not replaced either (see io.output_guard).
    A kill at any moment leaves the old folder or the new one at `path` (or, between the two
    renames, none), never a partial one: the new content is complete before its first rename.
    """
    path = Path(path)
    refuse_taken_folder(path, overwrite, owned)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        yield tmp
        for folder, _dirs, files in os.walk(tmp):
            os.chmod(folder, DIR_MODE)
            for name in files:
                file = os.path.join(folder, name)
                if not os.path.islink(file):
                    os.chmod(file, FILE_MODE)
        if path.exists():
            refuse_taken_folder(path, overwrite, owned)  # again: something may have appeared meanwhile
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / "content")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno is not None and (not exc.filename or str(exc.filename).startswith(str(tmp))):
            # name the output the user asked for, not the temporary folder (a failed write() names no file)
            inside = Path(str(exc.filename)).relative_to(tmp) if exc.filename else None
            raise OSError(exc.errno, exc.strerror, str(path / inside if inside else path)) from exc
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
