#!/usr/bin/env python3
"""Keep each module's CMakeLists.txt file lists in step with the files in the module folder.

Slicer's `slicerMacroBuildScriptedModule` packages only the files its CMakeLists lists and
silently drops the rest, so an engine file that is not listed works in a source checkout and
is missing from the installed extension. This tool rewrites the blocks between the markers

    # BEGIN GENERATED FILE LIST (tools/sync_cmake_lists.py)
    # END GENERATED FILE LIST

with every Python file (MODULE_PYTHON_SCRIPTS) and every resource (MODULE_PYTHON_RESOURCES)
under the module folder, except the module's Testing/ folder (registered by its own CMake) and
the engine's research and web side (NOT_INSTALLED): the extension ships the serving engine only.

    python tools/sync_cmake_lists.py           # rewrite the lists
    python tools/sync_cmake_lists.py --check   # exit 1 and name what is missing or stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("CervicalAI", "CervicalAISegment", "CervicalAIPredict")
BEGIN = "# BEGIN GENERATED FILE LIST (tools/sync_cmake_lists.py)"
END = "# END GENERATED FILE LIST"
RESOURCE_SUFFIXES = {".ui", ".png", ".svg", ".json", ".onnx", ".yaml", ".yml", ".txt", ".md", ".csv"}
SKIP_PARTS = {"Testing", "__pycache__", ".pytest_cache"}
# What the extension does not install, as paths under a module folder (a folder ends with "/"), and why.
# The radiologist's Slicer runs the serving engine: the commands its modules run in the background
# (study, segment, predict, report, export, review, demo) and the synthetic patient of the self-tests
# (research/synth: numpy, scipy and SimpleITK only). Testing/python/test_layers.py checks that no
# installed engine file imports one of these, and test_installed_tree.py runs the installed set alone.
NOT_INSTALLED: dict[str, dict[str, str]] = {
    "CervicalAI": {
        "CervicalAILib/research/cohort/": "cohort extraction (research: pandas, Dask)",
        "CervicalAILib/research/fit/": "model fitting (research: pandas, scikit-learn, statsmodels)",
        "CervicalAILib/research/stats/": "validation statistics (research)",
        "CervicalAILib/research/study_report/": "the reproduced study (research)",
        "CervicalAILib/research/training/": "network training (torch, MONAI)",
        "CervicalAILib/research/tables.py": "research tables (pandas)",
        "CervicalAILib/research/synth/realism.py": "the generator's realism measurement (scikit-learn)",
        "CervicalAILib/research/synth/figure.py": "cohort figures for `cervicalai synth` (matplotlib)",
        "CervicalAILib/cli/extract.py": "research command",
        "CervicalAILib/cli/fit.py": "research command",
        "CervicalAILib/cli/icc.py": "research command",
        "CervicalAILib/cli/evaluate.py": "research command",
        "CervicalAILib/cli/study_report.py": "research command",
        "CervicalAILib/cli/synth.py": "research command (cohorts; the self-tests call research/synth directly)",
        "CervicalAILib/cli/train_seg.py": "research command (torch, MONAI)",
        "CervicalAILib/cli/train_encoder.py": "research command (torch, MONAI)",
        "CervicalAILib/web/": "the browser review app (trame-slicer: its own environment)",
    },
}


def installed(module: str, rel: str) -> bool:
    """Whether the extension installs a file (path relative to the module folder)."""
    return not any(rel == path or (path.endswith("/") and rel.startswith(path))
                   for path in NOT_INSTALLED.get(module, {}))


def module_files(module: str) -> tuple[list[str], list[str]]:
    base = ROOT / module
    scripts, resources = [], []
    for path in sorted(base.rglob("*")):
        rel = path.relative_to(base)
        if not path.is_file() or SKIP_PARTS & set(rel.parts) or path.name == "CMakeLists.txt":
            continue
        if any(part.startswith(".") or part.endswith(".egg-info") for part in rel.parts):
            continue
        if not installed(module, rel.as_posix()):
            continue
        if path.suffix == ".py":
            scripts.append(rel.as_posix())
        elif path.suffix.lower() in RESOURCE_SUFFIXES:
            resources.append(rel.as_posix())
    return scripts, resources


def generated_block(module: str) -> str:
    scripts, resources = module_files(module)
    lines = [BEGIN, "set(MODULE_PYTHON_SCRIPTS"]
    lines += [f"  {name}" for name in scripts]
    lines += ["  )", "", "set(MODULE_PYTHON_RESOURCES"]
    lines += [f"  {name}" for name in resources]
    lines += ["  )", END]
    return "\n".join(lines)


def sync(module: str, check: bool) -> list[str]:
    cmake = ROOT / module / "CMakeLists.txt"
    text = cmake.read_text()
    start, stop = text.find(BEGIN), text.find(END)
    if start < 0 or stop < 0:
        return [f"{cmake}: generated file-list markers are missing"]
    current = text[start : stop + len(END)]
    wanted = generated_block(module)
    if current == wanted:
        return []
    if check:
        listed = set(current.split())
        scripts, resources = module_files(module)
        missing = [name for name in scripts + resources if name not in listed]
        problems = [f"{module}/CMakeLists.txt does not list {name}" for name in missing]
        return problems or [f"{module}/CMakeLists.txt lists files that no longer exist (run tools/sync_cmake_lists.py)"]
    cmake.write_text(text[:start] + wanted + text[stop + len(END) :])
    return []


def listed(module: str) -> list[str]:
    """The files a module's CMakeLists lists (scripts, then resources): what Slicer installs."""
    text = (ROOT / module / "CMakeLists.txt").read_text()
    block = text[text.find(BEGIN) : text.find(END)]
    return [line.strip() for line in block.splitlines()[1:] if line.strip() and not line.strip().startswith(("set(", ")"))]


def stale_exclusions() -> list[str]:
    """NOT_INSTALLED entries that name nothing in the module folder (a moved or renamed path)."""
    return [f"tools/sync_cmake_lists.py NOT_INSTALLED: {module}/{path} does not exist"
            for module, paths in NOT_INSTALLED.items() for path in paths if not (ROOT / module / path).exists()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="report differences instead of rewriting")
    args = parser.parse_args()
    problems = stale_exclusions() + [p for module in MODULES for p in sync(module, args.check)]
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
