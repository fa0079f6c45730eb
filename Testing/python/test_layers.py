"""The import rules of ../shared/docs/architecture.md section 2, as data, checked on the code.

- each engine package imports only the packages below it (ALLOWED): nothing in serving imports
  research, and data flows one way; no import cycle between engine files;
- engine modules are imported at module level; a function-level import is only for a library in
  OPTIONAL_AT_FUNCTION_LEVEL (heavy or optional: the reason is given there);
- serving code never imports a research-only library, at any level, and an optional library
  only inside a function;
- the extension installs the serving engine only (tools/sync_cmake_lists.py NOT_INSTALLED): no
  installed file imports one it does not install, at any level, and the installed research code
  (the synthetic patient of the self-tests) needs only numpy, scipy and SimpleITK;
- the engine never imports the Slicer modules; the module Libs build on CervicalAIHubLib, never the
  reverse, and the module scripts never import one another nor another module's Lib (each imports
  its own Lib, CervicalAIHubLib and the engine).

KNOWN_VIOLATIONS (known_layer_violations.py) is the ratchet of the renovation (issue 16): each entry
names the step that removes it; the test fails on any violation not listed AND on any listed entry
that no longer occurs, so the list only shrinks.
"""

from __future__ import annotations

import ast
import functools
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from known_layer_violations import KNOWN_VIOLATIONS

from conftest import REPO

sys.path.insert(0, str(REPO / "tools"))
import sync_cmake_lists  # noqa: E402

ENGINE = REPO / "CervicalAI" / "CervicalAILib"
SERVING = ("core", "contracts", "bundles", "io", "study", "registration", "segmentation", "features", "scoring",
           "review", "pipeline", "export", "report")
# package -> the engine packages it may import (besides itself and CervicalAILib/__init__.py, "").
ALLOWED: dict[str, set[str]] = {
    "": set(),
    "core": set(),
    "contracts": {"core"},
    "bundles": {"core", "contracts"},
    "io": {"core", "contracts"},
    "study": {"core", "contracts", "io"},
    "registration": {"core", "contracts", "io"},
    "segmentation": {"core", "contracts", "io", "bundles"},
    "features": {"core", "contracts", "io", "bundles"},
    "scoring": {"core", "contracts", "bundles"},
    "review": {"core", "contracts", "io"},
    "pipeline": {"core", "contracts", "bundles", "io", "study", "registration", "segmentation", "features",
                 "scoring", "review"},
    "export": {"core", "contracts", "io", "study", "registration", "review"},
    # export: the pseudonym is keyed as exports key it; bundles: whether a model is a shipped one (the catalogue)
    "report": {"core", "contracts", "bundles", "io", "study", "export"},
    "web": {*SERVING},  # the review app: a serving application in its own environment
    "research": {*SERVING},  # may import the engine; the engine never imports it
    "cli": {*SERVING, "web", "research"},  # argparse and printing
}
ALLOWED = {package: allowed | {"", package} for package, allowed in ALLOWED.items()}
# Research-only libraries (the `research` extra): never imported by serving code, at any level.
RESEARCH_LIBRARIES = {"pandas", "pyarrow", "sklearn", "statsmodels", "neuroHarmonize", "neuroCombat", "dcurves",
                      "pingouin", "dask", "distributed", "tqdm", "torch", "monai", "onnx", "onnxscript"}
# The one serving module that may use a research library: a site's own nnU-Net model runs through
# nnU-Net's predictor, which is torch (inside functions, only when such a model is chosen).
NNUNET_TORCH = {("CervicalAI/CervicalAILib/segmentation/nnunet.py", "torch")}
# Libraries imported inside functions, and why (every other import is at module level).
OPTIONAL_AT_FUNCTION_LEVEL = {
    "torch": "training extra (gigabytes); nnU-Net segmentation needs it only when a site's model is chosen",
    "monai": "training extra",
    "nnunetv2": "a site's own nnU-Net model, optional",
    "trame": "the web app's own environment",
    "trame_slicer": "the web app's own environment",
    "slicer": "the engine never imports Slicer at module level (the io/mrml bridge)",
    "vtk": "the engine never imports VTK at module level",
    "vtkmodules": "the engine never imports VTK at module level",
    "qt": "the engine never imports Qt",
    "ctk": "the engine never imports CTK",
    "radiomics": "pyradiomics: inside Slicer it comes from the SlicerRadiomics extension, which may be missing",
    "onnxruntime": "installed by the hub when missing, and the hub imports engine modules before that",
    "matplotlib": "0.5 s to import; only figures need it",
    "highdicom": "DICOM SEG export only",
    "pydicom": "DICOM only; Slicer ships its own version",
    "neuroHarmonize": "research extra (ComBat learning)",
    "pandas": "research extra",
    "statsmodels": "research extra",
    "sklearn": "research extra",
    "threadpoolctl": "research extra",
    "distributed": "research extra (Dask)",
}
# Inside Slicer these come from pip, installed by the hub when missing; the hub imports engine modules
# before that, so the modules it imports keep them inside functions (the compatibility tier checks which).
PIP_ONLY_IN_SLICER = {"yaml", "nibabel", "trimesh", "pywt", "pykwalify"}
# Parts of the engine that may be imported inside functions, and why: they load a heavy optional library
# at module level and are not installed everywhere.
OPTIONAL_ENGINE_AT_FUNCTION_LEVEL = {
    "CervicalAILib.web": "the web review app: trame and trame-slicer at module level, its own environment, "
                         "not installed by the Slicer extension",
}
# Installed files that import a file the extension does not install, and why that is safe.
INSTALLED_IMPORTS_OF_UNINSTALLED = {
    ("CervicalAI/CervicalAILib/cli/review.py", "CervicalAILib/web/"):
        "`review serve` runs the web app in its own environment; without it the command says what to install",
}
# What installed research code (research/synth: the self-tests' patient) may import besides the engine.
INSTALLED_RESEARCH_LIBRARIES = {"numpy", "scipy", "SimpleITK"}
SLICER_LIBS = {  # module Lib -> the other Libs it may import (all may import the engine)
    "CervicalAIHubLib": set(),
    "CervicalAISegmentLib": {"CervicalAIHubLib"},
    "CervicalAIPredictLib": {"CervicalAIHubLib"},
}
LIB_FOLDERS = {"CervicalAIHubLib": REPO / "CervicalAI" / "CervicalAIHubLib",
               "CervicalAISegmentLib": REPO / "CervicalAISegment" / "CervicalAISegmentLib",
               "CervicalAIPredictLib": REPO / "CervicalAIPredict" / "CervicalAIPredictLib"}
MODULE_SCRIPTS = {"CervicalAI": REPO / "CervicalAI" / "CervicalAI.py",
                  "CervicalAISegment": REPO / "CervicalAISegment" / "CervicalAISegment.py",
                  "CervicalAIPredict": REPO / "CervicalAIPredict" / "CervicalAIPredict.py"}
SCRIPT_LIBS = {"CervicalAI": {"CervicalAIHubLib"},  # module script -> the Libs it may import
               "CervicalAISegment": {"CervicalAISegmentLib", "CervicalAIHubLib"},
               "CervicalAIPredict": {"CervicalAIPredictLib", "CervicalAIHubLib"}}


def _module_name(path: Path) -> str:
    """Dotted name of a file of the engine or of a module Lib."""
    for top in [ENGINE, *LIB_FOLDERS.values()]:
        if top in path.parents:
            parts = list(path.relative_to(top.parent).with_suffix("").parts)
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    return path.stem


def _imports(path: Path, text: str) -> tuple[tuple[str, bool], ...]:
    """(imported dotted name, at function level) of every import statement of a file."""
    return _parsed_imports(path, text)


@functools.lru_cache(maxsize=4096)  # the probes re-check the whole tree with one file changed: parse each text once
def _parsed_imports(path: Path, text: str) -> tuple[tuple[str, bool], ...]:
    return tuple(_walk_imports(path, text))


def _walk_imports(path: Path, text: str) -> Iterator[tuple[str, bool]]:
    tree = ast.parse(text, filename=str(path))
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]

    def visit(node: ast.AST, in_function: bool) -> Iterator[tuple[str, bool]]:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, in_function
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package[: len(package) - child.level + 1] + ([base] if base else []))
                for alias in child.names:
                    yield (f"{base}.{alias.name}" if base else alias.name), in_function
            yield from visit(child, inner)

    yield from visit(tree, False)


class Tree:
    """The engine's and the Libs' source files (plus `extra` files, for the probes)."""

    def __init__(self, extra: dict[Path, str] | None = None):
        self.sources = {p: p.read_text(encoding="utf-8") for p in ENGINE.rglob("*.py") if "__pycache__" not in p.parts}
        self.sources.update(extra or {})
        self.modules = {_module_name(p) for p in self.sources}
        self.extra = extra or {}

    def engine_files(self) -> list[Path]:
        return sorted(p for p in self.sources if ENGINE in p.parents)

    def text(self, path: Path) -> str:
        return self.sources[path] if path in self.sources else self.extra.get(path) or path.read_text(encoding="utf-8")

    def existing(self, name: str) -> str:
        """The longest prefix of a dotted name that is an engine module (an imported name is cut off)."""
        parts = name.split(".")
        while parts and ".".join(parts) not in self.modules:
            parts.pop()
        return ".".join(parts) or name

    def package(self, name: str) -> str | None:
        """The engine package of a dotted name ("" for CervicalAILib itself), None outside the engine."""
        parts = self.existing(name).split(".")
        if parts[0] != "CervicalAILib":
            return None
        return parts[1] if len(parts) > 1 and (ENGINE / parts[1]).is_dir() else ""


def violations(extra: dict[Path, str] | None = None) -> set[tuple[str, str, str]]:
    tree = Tree(extra)
    found: set[tuple[str, str, str]] = set()
    graph: dict[str, set[str]] = defaultdict(set)
    for path in tree.engine_files():
        rel = path.relative_to(REPO).as_posix()
        me = tree.package(_module_name(path))
        for name, in_function in _imports(path, tree.text(path)):
            top = name.split(".")[0]
            target = tree.package(name)
            if target is not None:
                graph[_module_name(path)].add(tree.existing(name))
                if target not in ALLOWED[me]:
                    found.add(("layer", rel, f"{me or 'CervicalAILib'} -> {target or 'CervicalAILib'}"))
                optional = any(name == part or name.startswith(part + ".") for part in OPTIONAL_ENGINE_AT_FUNCTION_LEVEL)
                if in_function and not optional:
                    found.add(("function-level engine import", rel, tree.existing(name)))
            elif top in MODULE_SCRIPTS or top in SLICER_LIBS:
                found.add(("engine imports Slicer module code", rel, top))
            else:
                if me in SERVING and top in RESEARCH_LIBRARIES and not (in_function and (rel, top) in NNUNET_TORCH):
                    found.add(("research library in serving code", rel, top))
                deferred_ok = OPTIONAL_AT_FUNCTION_LEVEL.keys() | PIP_ONLY_IN_SLICER | sys.stdlib_module_names
                if me in ("research", "cli"):
                    deferred_ok |= RESEARCH_LIBRARIES  # the research extra, imported where a command needs it
                if in_function and top not in deferred_ok:
                    found.add(("function-level import of a non-optional library", rel, top))
                if not in_function and top in OPTIONAL_AT_FUNCTION_LEVEL and me in SERVING:
                    found.add(("optional library at module level", rel, top))
    found |= _installed_set_violations(tree)
    for cycle in _cycles(graph):
        found.add(("cycle", " -> ".join(cycle), ""))
    lib_files = {lib: sorted(folder.rglob("*.py")) for lib, folder in LIB_FOLDERS.items()}
    for path in tree.extra:
        for lib, folder in LIB_FOLDERS.items():
            if folder in path.parents:
                lib_files[lib].append(path)
    for lib, allowed in SLICER_LIBS.items():
        for path in lib_files[lib]:
            for name, _ in _imports(path, tree.text(path)):
                top = name.split(".")[0]
                if (top in SLICER_LIBS and top != lib and top not in allowed) or top in MODULE_SCRIPTS:
                    found.add(("Slicer layering", path.relative_to(REPO).as_posix(), top))
    for module, path in MODULE_SCRIPTS.items():
        for name, _ in _imports(path, tree.text(path)):
            top = name.split(".")[0]
            if top in MODULE_SCRIPTS and top != module:
                found.add(("module script imports another module", path.relative_to(REPO).as_posix(), top))
            elif top in SLICER_LIBS and top not in SCRIPT_LIBS[module]:
                found.add(("module script imports another module's Lib", path.relative_to(REPO).as_posix(), top))
    return found


def _engine_file(module: str) -> str:
    """The file of an engine module, relative to the CervicalAI module folder."""
    path = ENGINE.parent / Path(*module.split("."))
    return (path / "__init__.py" if path.is_dir() else path.with_suffix(".py")).relative_to(ENGINE.parent).as_posix()


def _installed_set_violations(tree: Tree) -> set[tuple[str, str, str]]:
    """Installed engine files importing uninstalled ones; installed research files importing beyond its libraries."""
    found = set()
    for path in tree.engine_files():
        me = path.relative_to(ENGINE.parent).as_posix()
        if not sync_cmake_lists.installed("CervicalAI", me):
            continue
        rel = path.relative_to(REPO).as_posix()
        for name, _ in _imports(path, tree.text(path)):
            top = name.split(".")[0]
            if tree.package(name) is not None:
                target = _engine_file(tree.existing(name))
                if sync_cmake_lists.installed("CervicalAI", target):
                    continue
                excluded = next(p for p in sync_cmake_lists.NOT_INSTALLED["CervicalAI"]
                                if target == p or (p.endswith("/") and target.startswith(p)))
                if (rel, excluded) not in INSTALLED_IMPORTS_OF_UNINSTALLED:
                    found.add(("installed file imports one the extension does not install", rel, target))
            elif (tree.package(_module_name(path)) == "research" and top not in sys.stdlib_module_names
                  and top not in INSTALLED_RESEARCH_LIBRARIES):
                found.add(("installed research file imports beyond numpy, scipy, SimpleITK", rel, top))
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one file (Tarjan, iterative), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []
    for root in sorted(set(graph) | {w for ws in graph.values() for w in ws}):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            vertex, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph.get(successor, ())))))
                    break
                if successor in on_stack:
                    low[vertex] = min(low[vertex], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[vertex])
                if low[vertex] == index[vertex]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == vertex:
                            break
                    if len(component) > 1:
                        result.append(sorted(component))
    return result


@functools.lru_cache(maxsize=1)
def current_violations() -> frozenset[tuple[str, str, str]]:
    """The tree's violations as it is (the probes below compare against it: checked once)."""
    return frozenset(violations())


def test_the_import_rules_hold():
    found = current_violations()
    new = sorted(found - set(KNOWN_VIOLATIONS))
    fixed = sorted(set(KNOWN_VIOLATIONS) - found)
    assert not new, "new violations of the architecture's import rules:\n" + "\n".join(map(str, new))
    assert not fixed, "fixed: strike them from known_layer_violations.py:\n" + "\n".join(map(str, fixed))


def test_every_known_violation_names_the_step_that_removes_it():
    assert all(step.startswith("S") and step[1:].isdigit() for step in KNOWN_VIOLATIONS.values())


@pytest.mark.parametrize(
    "files, expected",
    [
        ({"CervicalAILib/scoring/_probe.py": "from CervicalAILib.research.fit import fit\n"},
         ("layer", "CervicalAI/CervicalAILib/scoring/_probe.py", "scoring -> research")),
        ({"CervicalAILib/core/_probe.py": "import numpy\n"
                                          "def f():\n    from CervicalAILib.core import errors\n"},
         ("function-level engine import", "CervicalAI/CervicalAILib/core/_probe.py", "CervicalAILib.core.errors")),
        ({"CervicalAILib/core/_probe_a.py": "from CervicalAILib.core import _probe_b\n",
          "CervicalAILib/core/_probe_b.py": "from CervicalAILib.core import _probe_a\n"},
         ("cycle", "CervicalAILib.core._probe_a -> CervicalAILib.core._probe_b", "")),
        ({"CervicalAILib/features/_probe.py": "import pandas\n"},
         ("research library in serving code", "CervicalAI/CervicalAILib/features/_probe.py", "pandas")),
        ({"CervicalAILib/io/_probe.py": "import matplotlib\n"},
         ("optional library at module level", "CervicalAI/CervicalAILib/io/_probe.py", "matplotlib")),
        ({"CervicalAILib/io/_probe.py": "def f():\n    import numpy\n"},
         ("function-level import of a non-optional library", "CervicalAI/CervicalAILib/io/_probe.py", "numpy")),
        ({"CervicalAILib/io/_probe.py": "from CervicalAISegmentLib import nodes\n"},
         ("engine imports Slicer module code", "CervicalAI/CervicalAILib/io/_probe.py", "CervicalAISegmentLib")),
        ({"CervicalAIHubLib/_probe.py": "from CervicalAIPredictLib import form\n"},
         ("Slicer layering", "CervicalAI/CervicalAIHubLib/_probe.py", "CervicalAIPredictLib")),
        ({"CervicalAI.py": "def exportCase():\n    from CervicalAISegmentLib.review import mark_reviewed\n"},
         ("module script imports another module's Lib", "CervicalAI/CervicalAI.py", "CervicalAISegmentLib")),
        ({"CervicalAILib/report/_probe.py": "def f():\n    from CervicalAILib.research.stats import roc\n"},
         ("installed file imports one the extension does not install", "CervicalAI/CervicalAILib/report/_probe.py",
          "CervicalAILib/research/stats/roc.py")),
        ({"CervicalAILib/cli/_probe.py": "from CervicalAILib.cli import train_seg\n"},
         ("installed file imports one the extension does not install", "CervicalAI/CervicalAILib/cli/_probe.py",
          "CervicalAILib/cli/train_seg.py")),
        ({"CervicalAILib/research/synth/_probe.py": "def f():\n    import sklearn\n"},
         ("installed research file imports beyond numpy, scipy, SimpleITK",
          "CervicalAI/CervicalAILib/research/synth/_probe.py", "sklearn")),
        ({"CervicalAI.py": "def loadCase():\n    import CervicalAISegment\n"},
         ("module script imports another module", "CervicalAI/CervicalAI.py", "CervicalAISegment")),
    ],
)
def test_the_check_can_fail(files, expected):
    """Each rule reports a file that breaks it (the probes exist only in memory: the tree is not touched)."""
    extra = {REPO / "CervicalAI" / name: text for name, text in files.items()}
    assert expected not in current_violations()
    assert expected in violations(extra)


if __name__ == "__main__":  # print the current violations (to fill known_layer_violations.py)
    for item in sorted(violations()):
        print(item)
