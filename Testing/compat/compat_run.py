"""Running code in a compatibility environment (see build_env.py), for the compatibility tests.

    manifest = environment("5.10")                     # built on first use, then reused (cached)
    result = run_in("5.10", ["-c", "import numpy"], layers=BEFORE_INSTALL)

`layers` says which layers of the environment are present (the others are blocked on import):
BEFORE_INSTALL is a Slicer in which nothing has been installed yet, INSTALLED one with
SlicerRadiomics and what the hub installed, TESTING adds pytest. Child processes (the engine's
background runs) inherit the layers. CERVICALAI_COMPAT=skip skips the tier (quick local runs);
otherwise a missing Python 3.12 fails the tests with the reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import build_env

BEFORE_INSTALL = "slicer,mrml"
WITH_EXTENSION = "slicer,mrml,extension"
INSTALLED = "slicer,mrml,extension,hub"
TESTING = "slicer,mrml,extension,hub,harness"
PROJECT_PATH = os.pathsep.join(str(path) for path in build_env.PROJECT_PATHS)
# The environments are installed without .pyc (build_env: made on import instead). Where the caller's
# environment says PYTHONDONTWRITEBYTECODE they would never be made, and every process of a stand-in
# would compile numpy, scipy, VTK and the engine again (~4 s each): the bytecode goes to one cache
# folder beside the environments instead (nothing is written next to the sources).
PYCACHE = build_env.COMPAT_DIR / "pycache"


def environment(version: str) -> dict:
    """The manifest of the Slicer `version` stand-in, built if needed (skips when CERVICALAI_COMPAT=skip)."""
    import pytest

    if os.environ.get("CERVICALAI_COMPAT", "").lower() == "skip":
        pytest.skip("CERVICALAI_COMPAT=skip: the Slicer compatibility tier is not run")
    try:
        return build_env.ensure(version, log=lambda line: print(line, file=sys.stderr))
    except build_env.BuildError as exc:
        pytest.fail(f"cannot build the Slicer {version} stand-in: {exc}", pytrace=False)


def run_in(version: str, arguments: list[str], layers: str, timeout: float = 600, cwd: str | Path | None = None,
           extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:  # fmt: skip
    """Run the environment's Python with `arguments`, the project's module folders on PYTHONPATH (as
    Slicer puts them on sys.path) and only `layers` importable."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "CERVICALAI_MODELS", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE")}  # fmt: skip
    env.update({"PYTHONPATH": PROJECT_PATH, "CERVICALAI_COMPAT_LAYERS": layers, "PYTHONPYCACHEPREFIX": str(PYCACHE)})
    env.update(extra_env or {})
    return subprocess.run([str(build_env.env_python(version)), *arguments], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=cwd)  # fmt: skip
