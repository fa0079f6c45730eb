"""Shared pytest fixtures: outside reference data, module Lib folders on sys.path."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# ../shared/refdata beside the checkout (CI and developer machines); a user's fresh clone has none.
REFDATA = Path(os.environ.get("CERVICALAI_REFDATA", REPO.parent / "shared" / "refdata"))

# The tests start the engine in a few hundred child processes (`cervicalai` runs, background runs): they
# write and reuse the engine's bytecode (gitignored __pycache__) even where the caller's environment says
# PYTHONDONTWRITEBYTECODE, else each one compiles the engine's modules again (~0.5 s each).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

# The Slicer modules' MRML logic packages (CervicalAISegmentLib, ...) are imported by the MRML tests.
for module in ("CervicalAISegment", "CervicalAIPredict", "CervicalAI"):
    path = str(REPO / module)
    if path not in sys.path:
        sys.path.append(path)


# The compatibility tier's tooling (Testing/compat): what each Slicer version ships, its environments.
if str(REPO / "Testing" / "compat") not in sys.path:
    sys.path.append(str(REPO / "Testing" / "compat"))
import slicer_versions  # noqa: E402, F401  (tests import it from here)


def refdata_path(*parts: str) -> Path:
    """Path inside ../shared/refdata, or skip the test with the reason when it is absent."""
    path = REFDATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"outside reference data not available: {path} (needs ../shared/refdata beside the checkout)")
    return path


@pytest.fixture
def refdata():
    return refdata_path


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO
