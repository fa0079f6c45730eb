"""The extension's build tree, as Slicer lays it out, holds the default model bundles.

Slicer's `slicerMacroBuildScriptedModule` copies each module's listed scripts and resources into
`<build>/<Slicer_QTSCRIPTEDMODULES_LIB_DIR>/`, and ctest runs the self-tests from there. The
engine looks for the default bundles in `CervicalAIModels/` beside the scripts; the top-level
CMakeLists copies them there at build time with CMake/CervicalAICopyModels.cmake (and installs
them for the packaged extension). Here the same layout is made from the CMakeLists' own file
lists, the copy script is run by the real `cmake -P`, and the engine, imported from that layout
with no CERVICALAI_MODELS, must find and verify every bundle.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import REPO

MODULES = ("CervicalAI", "CervicalAISegment", "CervicalAIPredict")
BUILD_MODELS = "${CMAKE_BINARY_DIR}/${Slicer_QTSCRIPTEDMODULES_LIB_DIR}/CervicalAIModels"
INSTALL_MODELS = "${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}/CervicalAIModels"


def listed_files(module: str) -> list[str]:
    """MODULE_PYTHON_SCRIPTS and MODULE_PYTHON_RESOURCES of a module's CMakeLists.txt."""
    text = (REPO / module / "CMakeLists.txt").read_text()
    files = []
    for variable in ("MODULE_PYTHON_SCRIPTS", "MODULE_PYTHON_RESOURCES"):
        block = re.search(rf"set\({variable}\s+(.*?)\)", text, re.S)
        assert block, f"{module}/CMakeLists.txt has no {variable}"
        files += block.group(1).split()
    return files


def test_cmakelists_copy_the_bundles_where_the_engine_looks_and_install_them_there():
    text = (REPO / "CMakeLists.txt").read_text()
    assert f"set(CervicalAI_BUILD_MODELS_DIR {BUILD_MODELS})" in text
    assert "-DDESTINATION_DIR=${CervicalAI_BUILD_MODELS_DIR}" in text
    assert re.search(r"add_custom_target\(CervicalAIModels ALL", text)
    assert f"DESTINATION {INSTALL_MODELS}" in text
    catalog = (REPO / "CervicalAI" / "CervicalAILib" / "bundles" / "catalog.py").read_text()
    assert 'here.parents[2] / "CervicalAIModels"' in catalog  # beside the CervicalAILib folder (shipped_models_dirs)


@pytest.mark.skipif(shutil.which("cmake") is None, reason="needs cmake (the build tool Slicer extensions use)")
def test_self_tests_in_the_build_tree_find_every_bundle(tmp_path):
    scripts = tmp_path / "build" / "lib" / "Slicer-5.10" / "qt-scripted-modules"
    for module in MODULES:
        for name in listed_files(module):
            target = scripts / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(REPO / module / name, target)
    result = subprocess.run(
        ["cmake", f"-DSOURCE_DIR={REPO / 'Resources' / 'Models'}", f"-DDESTINATION_DIR={scripts / 'CervicalAIModels'}",
         "-P", str(REPO / "CMake" / "CervicalAICopyModels.cmake")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    shipped = sorted(p.relative_to(REPO / "Resources" / "Models") for p in (REPO / "Resources" / "Models").rglob("*") if p.is_file())
    copied = sorted(p.relative_to(scripts / "CervicalAIModels") for p in (scripts / "CervicalAIModels").rglob("*") if p.is_file())
    assert copied == shipped

    env = {key: value for key, value in os.environ.items() if key not in ("CERVICALAI_MODELS", "PYTHONPATH")}
    env["PYTHONPATH"] = str(scripts)  # what Slicer puts on sys.path: the scripted-modules folder only
    code = (
        "import json, CervicalAILib\n"
        "from CervicalAIHubLib.bundles import bundle_cards, chosen_models_dir\n"
        "folder = chosen_models_dir('')\n"
        "print(json.dumps({'engine': CervicalAILib.__file__, 'folder': str(folder),"
        " 'problems': [c.title() for c in bundle_cards(folder) if not c.usable]}))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["engine"].startswith(str(scripts))  # the build tree's copy of the engine, not the checkout
    assert found["folder"] == str(scripts / "CervicalAIModels")
    assert found["problems"] == []  # every bundle verified (schema and SHA-256 of each file)


@pytest.mark.skipif(shutil.which("cmake") is None, reason="needs cmake (the build tool Slicer extensions use)")
def test_the_copy_script_refuses_a_missing_source(tmp_path):
    result = subprocess.run(["cmake", f"-DSOURCE_DIR={tmp_path / 'none'}", f"-DDESTINATION_DIR={tmp_path / 'out'}",
                             "-P", str(REPO / "CMake" / "CervicalAICopyModels.cmake")], capture_output=True, text=True)  # fmt: skip
    assert result.returncode != 0 and "is not a folder" in " ".join(result.stderr.split())
