"""The parts folder beside a feature table: one finished case per file, for resuming an extraction.

`features.parquet.parts/cases/<case_id>.json.gz` holds a case's components (radiomics of one sequence,
deep features of one encoder), each with the digest of what decides its values
(`ExtractionConfig.components()`) and the size and time stamp of the case's files; a part is reused
only when both still match. `config.json` holds the configuration's fingerprint; `errors/<case_id>.log`
the error of a failed case.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import math
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from CervicalAILib.core import atomic
from CervicalAILib.core.errors import InputError, OutputExistsError

log = logging.getLogger(__name__)

PARTS_CONFIG = "config.json"
PARTS_CASES = "cases"
PARTS_ERRORS = "errors"


def parts_dir_for(out: str | Path) -> Path:
    """`features.parquet` -> `features.parquet.parts/` (beside the output)."""
    out = Path(out)
    return out.with_name(out.name + ".parts")


def _describe_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human-readable differences between two configuration fingerprints."""
    differences = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            for sub in sorted(set(a) | set(b)):
                if a.get(sub) != b.get(sub):
                    differences.append(f"{key}.{sub}: {_short(a.get(sub))} before, {_short(b.get(sub))} now")
        else:
            differences.append(f"{key}: {_short(a)} before, {_short(b)} now")
    return differences


def _short(value: Any) -> str:
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return "[" + ", ".join(f"{v.get('name')}@{v.get('version')}" + (f" ({str(v.get('sha256'))[:10]})" if v.get("sha256") else "")
                               for v in value) + "]"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "none"
    if isinstance(value, str) and len(value) == 64:
        return value[:12] + "..."
    return "absent" if value is None else str(value)


def prepare_parts(parts: Path, fingerprint: dict[str, Any], overwrite: bool) -> str:
    """Create, resume or (with overwrite) reset the parts folder; returns what was done."""
    config_path = parts / PARTS_CONFIG
    if parts.exists() and not parts.is_dir():
        raise InputError("parts path exists and is not a folder", parts)
    state = "new"
    if parts.is_dir() and any(parts.iterdir()):
        old = None
        if config_path.is_file():
            with contextlib.suppress(OSError, ValueError):
                old = json.loads(config_path.read_text(encoding="utf-8"))
        if old == fingerprint:
            state = "resumed"
        else:
            differences = _describe_differences(old, fingerprint) if isinstance(old, dict) else [
                "no readable config.json in the parts folder"]
            if not overwrite:
                raise OutputExistsError(
                    f"{parts}: holds a partial extraction made with a different configuration ({'; '.join(differences)}); "
                    "rerun with the same options to resume it, use --overwrite to replace it (what is still valid, e.g. "
                    "the radiomics of a sequence whose settings did not change, is reused), or choose another --out")
            log.warning("configuration changed (%s): only the still valid parts in %s are reused", "; ".join(differences),
                        parts)
            state = "changed"
    (parts / PARTS_CASES).mkdir(parents=True, exist_ok=True)
    (parts / PARTS_ERRORS).mkdir(parents=True, exist_ok=True)
    atomic.write_json(config_path, fingerprint)
    return state


def _part_path(parts: Path, case_id: str) -> Path:
    return parts / PARTS_CASES / f"{case_id}.json.gz"


def error_path(parts: Path, case_id: str) -> Path:
    return parts / PARTS_ERRORS / f"{case_id}.log"


def _json_ready(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_part(parts: Path, record: dict[str, Any]) -> None:
    payload = dict(record)
    payload["components"] = {
        name: {"key": c["key"], "cpu_seconds": c.get("cpu_seconds"),
               "features": {k: _json_ready(float(v)) for k, v in c["features"].items()}}
        for name, c in record["components"].items()}
    data = json.dumps(payload, allow_nan=False, separators=(",", ":")).encode("utf-8")
    atomic.write_bytes(_part_path(parts, record["case_id"]), gzip.compress(data, compresslevel=3, mtime=0))


def read_part(parts: Path, case_id: str) -> dict[str, Any] | None:
    path = _part_path(parts, case_id)
    if not path.is_file():
        return None
    try:
        record = json.loads(gzip.decompress(path.read_bytes()).decode("utf-8"))
    except (OSError, ValueError, EOFError):
        log.warning("unreadable part %s: the case is extracted again", path)
        return None
    if not isinstance(record, dict) or record.get("case_id") != case_id or not isinstance(record.get("components"), dict):
        return None
    return record


def valid_components(part: dict[str, Any] | None, stamp: dict[str, list[int]], keys: dict[str, str]) -> dict[str, Any]:
    """The components of a stored part that the current configuration can reuse as they are."""
    if part is None or part.get("inputs") != stamp:
        return {}
    return {name: c for name, c in part["components"].items()
            if name in keys and isinstance(c, dict) and c.get("key") == keys[name]}


def write_error_log(parts: Path, record: dict[str, Any], case_dir: Path) -> Path:
    path = error_path(parts, record["case_id"])
    text = (f"case: {record['case_id']}\nfolder: {case_dir}\nerror: {record['error']}\n"
            f"type: {record.get('error_type', '')}\ntime: {datetime.now(UTC).isoformat(timespec='seconds')}\n\n"
            f"{record.get('traceback', '')}")
    atomic.write_text(path, text)
    return path


def case_input_stamp(case_dir: Path) -> dict[str, list[int]]:
    """Size and modification time of every file of a case: a part is reused only if they are unchanged."""
    stamp = {}
    for folder, dirs, files in os.walk(case_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(folder) / name
            info = path.stat()
            stamp[path.relative_to(case_dir).as_posix()] = [int(info.st_size), int(info.st_mtime_ns)]
    return stamp
