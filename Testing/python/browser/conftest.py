"""Fixtures of the browser tests: a small synthetic cohort with real automatic contours, and the
folder the screenshots of every step go to (test-artefacts/browser/, ignored by git)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

from .harness import chromium, missing_requirements

ARTEFACTS = REPO / "test-artefacts" / "browser"
COHORT_SEED = 15  # a generator seed the shipped models were not trained on


def pytest_collection_modifyitems(config, items):
    why = missing_requirements()
    for item in items:
        if "browser" in str(item.fspath):
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.slow)  # real servers and Chromium: seconds per test
            if why:
                item.add_marker(pytest.mark.skip(reason=why))


def _cli(*arguments: str) -> None:
    result = subprocess.run([sys.executable, "-m", "CervicalAILib.cli", "-q", *arguments], capture_output=True, text=True,
                            timeout=600, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="session")
def review_cohort(tmp_path_factory) -> Path:
    """3 synthetic cases (half-size matrices) segmented by the shipped model (`review prepare`)."""
    cohort = tmp_path_factory.mktemp("review") / "cohort"
    _cli("synth", "--cases", "3", "--seed", str(COHORT_SEED), "--matrix-scale", "0.5", "--out", str(cohort))
    _cli("review", "prepare", str(cohort))
    return cohort


@pytest.fixture(scope="session")
def artefacts() -> Path:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    return ARTEFACTS


@pytest.fixture(scope="session")
def browser():
    """One Chromium for the session; each test opens its pages in new contexts."""
    with chromium() as instance:
        yield instance
