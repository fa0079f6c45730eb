"""The extension skeleton: CMake file lists, module layout, engine import rules, CLI."""

from __future__ import annotations

import ast
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "tools"))
import sync_cmake_lists  # noqa: E402

MODULES = ("CervicalAI", "CervicalAISegment", "CervicalAIPredict")


def test_every_module_file_is_listed_in_its_cmakelists():
    problems = [p for module in MODULES for p in sync_cmake_lists.sync(module, check=True)]
    assert problems == [], "\n".join(problems)


def test_cmake_check_detects_an_unlisted_file(tmp_path, monkeypatch):
    # the check must be able to fail: a new engine file that is not listed is reported
    extra = REPO / "CervicalAISegment" / "CervicalAISegmentLib" / "_unlisted_probe.py"
    extra.write_text("# probe\n")
    try:
        problems = sync_cmake_lists.sync("CervicalAISegment", check=True)
    finally:
        extra.unlink()
    assert any("_unlisted_probe.py" in p for p in problems)


def test_top_level_cmakelists_declares_modules_and_dependencies():
    text = (REPO / "CMakeLists.txt").read_text()
    for module in MODULES:
        assert f"add_subdirectory({module})" in text
    for needed in ("find_package(Slicer REQUIRED)", "Slicer_EXTENSION_GENERATE_CONFIG", "Slicer_EXTENSION_CPACK"):
        assert needed in text
    assert 'EXTENSION_DEPENDS "SlicerRadiomics"' in text


@pytest.mark.parametrize("module", MODULES)
def test_module_layout(module):
    base = REPO / module
    cmake = (base / "CMakeLists.txt").read_text()
    assert "slicerMacroBuildScriptedModule" in cmake and "WITH_GENERIC_TESTS" in cmake
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in cmake
    ET.parse(base / "Resources" / "UI" / f"{module}.ui")
    assert (base / "Resources" / "Icons" / f"{module}.png").stat().st_size > 100
    tree = ast.parse((base / f"{module}.py").read_text())
    classes = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
    assert {module, f"{module}Widget", f"{module}Logic", f"{module}Test"} <= classes


def _module_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in tree.body:  # module level only: imports inside functions are allowed
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif isinstance(node, (ast.If, ast.Try)):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Import):
                    names |= {alias.name.split(".")[0] for alias in sub.names}
                elif isinstance(sub, ast.ImportFrom) and sub.module and sub.level == 0:
                    names.add(sub.module.split(".")[0])
    return names


def test_engine_never_imports_slicer_qt_ctk_vtk_at_module_level():
    forbidden = {"slicer", "qt", "ctk", "vtk", "vtkmodules", "PythonQt"}
    offenders = []
    for path in sorted((REPO / "CervicalAI" / "CervicalAILib").rglob("*.py")):
        bad = _module_level_imports(path) & forbidden
        if bad:
            offenders.append(f"{path.relative_to(REPO)}: {sorted(bad)}")
    assert offenders == []


def test_cli_help_lists_subcommands():
    result = subprocess.run(
        [sys.executable, "-m", "CervicalAILib.cli", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "usage: cervicalai" in result.stdout
    assert "study" in result.stdout


def test_cli_without_command_fails_with_usage():
    result = subprocess.run([sys.executable, "-m", "CervicalAILib.cli"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "usage: cervicalai" in result.stdout


def test_ci_runs_the_readme_test_command():
    assert "make test" in (REPO / ".ci" / "run").read_text()
    readme = (REPO / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme


def test_ruff_finds_nothing():
    """The project's lint (pyproject [tool.ruff]) over the engine, the modules, tests and tools."""
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        pytest.skip("ruff is not installed in this environment (it is in the test extra)")
    paths = ["CervicalAI", "CervicalAISegment", "CervicalAIPredict", "Testing", "tools"]
    result = subprocess.run([str(ruff), "check", *paths], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
