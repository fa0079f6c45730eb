"""The installed extension alone: only the files the CMakeLists list, run without the source tree.

Slicer installs what each module's CMakeLists lists (the serving engine, without the research and
web side: tools/sync_cmake_lists.py NOT_INSTALLED). Here those files are copied into a folder that
a fresh interpreter puts first on its path, with every other folder holding the engine taken off,
and the installed set must run the command line the modules run in the background and import every
engine module the Slicer side imports: a file the lists miss fails here, not on a radiologist's machine.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "tools"))
import sync_cmake_lists  # noqa: E402

ENGINE = REPO / "CervicalAI" / "CervicalAILib"
SLICER_SIDE = [REPO / "CervicalAI" / "CervicalAI.py", REPO / "CervicalAISegment" / "CervicalAISegment.py",
               REPO / "CervicalAIPredict" / "CervicalAIPredict.py",
               *(REPO / "CervicalAI" / "CervicalAIHubLib").rglob("*.py"),
               *(REPO / "CervicalAISegment" / "CervicalAISegmentLib").rglob("*.py"),
               *(REPO / "CervicalAIPredict" / "CervicalAIPredictLib").rglob("*.py")]
SERVING_COMMANDS = ("demo", "study", "segment", "predict", "export", "report", "review")
RESEARCH_COMMANDS = ("synth", "train-seg", "train-encoder", "extract", "icc", "fit", "evaluate", "study-report")

# Run in the fresh interpreter: the installed folder first, every other folder with an engine off the path.
RUNNER = """
import importlib, json, runpy, sys
from pathlib import Path
tree, modules, argv = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
sys.path[:] = [tree] + [p for p in sys.path if p and not (Path(p) / "CervicalAILib").exists()]
import CervicalAILib
assert Path(CervicalAILib.__file__).is_relative_to(tree), CervicalAILib.__file__
for name in modules:
    importlib.import_module(name)
if argv:
    sys.argv = ["cervicalai", *argv]
    runpy.run_module("CervicalAILib.cli", run_name="__main__")
"""


def _engine_modules_the_slicer_side_imports() -> list[str]:
    """Every engine module the module scripts and Libs import (module or function level)."""
    found = set()
    for path in SLICER_SIDE:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom) and node.module
                     else [])
            for name in names:
                parts = name.split(".")
                while parts and not (ENGINE.parent / Path(*parts)).is_dir() and not (
                        ENGINE.parent / Path(*parts)).with_suffix(".py").is_file():
                    parts.pop()  # an imported name, not a module
                if parts and parts[0] == "CervicalAILib":
                    found.add(".".join(parts))
    return sorted(found)


def _install(target: Path) -> Path:
    """The module folders' listed files, laid out as Slicer's qt-scripted-modules folder."""
    for module in sync_cmake_lists.MODULES:
        for name in sync_cmake_lists.listed(module):
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(REPO / module / name, target / name)
    return target


def _run(tree: Path, modules: list[str], argv: list[str]) -> subprocess.CompletedProcess:
    # -I: no PYTHONPATH, no user site, the script's folder not on the path; the venv's site-packages stay
    return subprocess.run([sys.executable, "-I", "-c", RUNNER, str(tree), json.dumps(modules), json.dumps(argv)],
                          capture_output=True, text=True, cwd=tree, timeout=300)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    return _install(tmp_path_factory.mktemp("qt-scripted-modules"))


def test_the_installed_set_leaves_out_the_research_and_web_side(installed):
    engine = installed / "CervicalAILib"
    assert (engine / "research" / "synth" / "render.py").is_file()  # the self-tests' synthetic patient
    for gone in ("research/training", "research/fit", "research/cohort", "research/study_report", "web",
                 "cli/train_seg.py", "cli/fit.py"):
        assert not (engine / gone).exists(), gone


def test_the_installed_set_runs_the_cli_and_imports_what_the_slicer_side_imports(installed):
    modules = _engine_modules_the_slicer_side_imports()
    assert {"CervicalAILib.research.synth", "CervicalAILib.core.background"} <= set(modules)
    run = _run(installed, modules, ["--help"])
    assert run.returncode == 0, run.stderr
    assert "usage: cervicalai" in run.stdout, run.stderr
    commands = set(re.findall(r"^    ([a-z][a-z-]*)\s", run.stdout, re.M))  # the subcommand lines of --help
    assert commands == set(SERVING_COMMANDS), run.stdout


def test_a_missing_installed_file_is_caught(installed, tmp_path):
    """The check can fail: an installed tree without the generator's renderer does not import."""
    tree = shutil.copytree(installed, tmp_path / "tree")
    (tree / "CervicalAILib" / "research" / "synth" / "render.py").unlink()
    run = _run(tree, ["CervicalAILib.research.synth"], [])
    assert run.returncode != 0
    assert "No module named 'CervicalAILib.research.synth.render'" in run.stderr


def test_the_web_review_app_says_it_is_not_installed(installed, tmp_path):
    run = _run(installed, [], ["review", "serve", str(tmp_path), "--reader", "A"])
    assert run.returncode == 2
    assert "the web review app is not part of this installation" in run.stderr
    assert "Traceback" not in run.stderr
