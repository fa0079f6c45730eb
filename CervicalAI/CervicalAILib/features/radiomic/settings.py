"""Per-sequence pyradiomics settings (parameter files in pyradiomics' own YAML format).

The defaults live beside this module in `settings/<ROLE>.yaml`; the fitting code copies the
files it used into each risk-model bundle, and the readout loads them back from there, so a
bundle is always applied with the settings it was trained with.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import yaml

from CervicalAILib.core.errors import InputError
from CervicalAILib.io.case import ROLES

SETTINGS_DIR = Path(__file__).resolve().parent / "settings"
SECTIONS = ("setting", "imageType", "featureClass", "voxelSetting")
_VALIDATED: set[str] = set()  # settings_sha256 of parameter dicts pyradiomics' schema accepted


def default_settings_path(role: str) -> Path:
    """Path of the shipped default parameter file for a sequence role (e.g. `settings/T2W.yaml`)."""
    _check_role(role)
    return SETTINGS_DIR / f"{role}.yaml"


def load_settings(role: str, path: str | Path | None = None) -> dict[str, Any]:
    """pyradiomics parameters for `role`: the shipped default, or the YAML file at `path`.

    Returns the parameter dictionary (`setting`, `imageType`, `featureClass`) after checking
    it against pyradiomics' own schema; an unreadable or invalid file raises InputError.
    """
    _check_role(role)
    source = Path(path) if path is not None else default_settings_path(role)
    if not source.is_file():
        raise InputError("pyradiomics settings file not found", source)
    stat = source.stat()
    return copy.deepcopy(_load_file(str(source.resolve()), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=64)
def _load_file(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    """Parsed and validated settings file, cached per (path, modification time, size)."""
    source = Path(path)
    try:
        params = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"not a readable YAML file ({exc})", source) from exc
    validate_settings(params, where=str(source))
    return params


def validate_settings(params: Any, where: str = "settings") -> None:
    """Raise InputError unless `params` is a pyradiomics parameter dictionary that pyradiomics accepts."""
    if not isinstance(params, dict) or not params:
        raise InputError(
            f"{where}: pyradiomics settings must be a mapping with 'setting', 'imageType', 'featureClass'"
        )
    unknown = sorted(set(params) - set(SECTIONS))
    if unknown:
        raise InputError(
            f"{where}: unknown pyradiomics settings section(s) {unknown} (allowed: {', '.join(SECTIONS)})"
        )
    for section in ("imageType", "featureClass"):
        if not params.get(section):
            raise InputError(f"{where}: the {section!r} section is missing or empty; list it explicitly")
    digest = settings_sha256(params)
    if digest in _VALIDATED:  # validation is a pure function of the content; pykwalify is slow
        return
    import pykwalify.core
    from radiomics import getParameterValidationFiles  # pyradiomics (absolute import)

    schema_file, schema_funcs = getParameterValidationFiles()
    # pykwalify logs every schema violation at ERROR before raising; the InputError says it once.
    pykwalify_log = logging.getLogger("pykwalify")
    previous = pykwalify_log.level
    pykwalify_log.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            # pykwalify loads pyradiomics' schema functions with a deprecated importlib call
            warnings.simplefilter("ignore", DeprecationWarning)
            core = pykwalify.core.Core(
                source_data=copy.deepcopy(params), schema_files=[schema_file], extensions=[schema_funcs]
            )
            core.validate(raise_exception=True)
    except Exception as exc:  # pykwalify raises SchemaError; the schema functions raise ValueError
        message = getattr(exc, "msg", None) or str(exc)
        raise InputError(f"{where}: pyradiomics rejects these settings: {message.strip()}") from exc
    finally:
        pykwalify_log.setLevel(previous)
    _VALIDATED.add(digest)


def settings_sha256(params: dict[str, Any]) -> str:
    """SHA-256 of the settings' canonical JSON (key order and YAML formatting do not matter)."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InputError(f"unknown sequence role {role!r} (known: {', '.join(ROLES)})")
