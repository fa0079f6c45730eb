"""Software versions recorded in what the tools write (bundles, feature tables, training runs).

One function for every writer: `software_versions(modules=..., distributions=...)` gives the
engine's version and, for each library named, the version it reports. A writer lists the
libraries that computed its result (a feature table: pyradiomics, SimpleITK, numpy,
onnxruntime; a fitted model: the statistics stack; a trained network: torch, MONAI, ONNX).
"""

from __future__ import annotations

import importlib
import platform
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version

from CervicalAILib import __version__


def software_versions(modules: Mapping[str, str] | None = None, distributions: Sequence[str] = (),
                      python: bool = False) -> dict[str, str]:
    """{"cervicalai": ..., ["python": ...,] name: version}.

    modules: name to record -> module to import; its `__version__` (SimpleITK: its
    `Version_VersionString()`); an ImportError propagates (the writer used the module).
    distributions: installed distributions read from their metadata, "not installed" when absent.
    """
    out = {"cervicalai": __version__}
    if python:
        out["python"] = platform.python_version()
    for name, module_name in (modules or {}).items():
        module = importlib.import_module(module_name)
        out[name] = module.Version_VersionString() if module_name == "SimpleITK" else str(module.__version__)
    for dist in distributions:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out
