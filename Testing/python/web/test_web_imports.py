"""Import rules of the web review app: trame and trame-slicer stay inside CervicalAILib/web, and
nothing outside it imports the app at module level (the CLI imports it inside `run`)."""

from __future__ import annotations

import ast
import subprocess
import sys

from conftest import REPO

ENGINE = REPO / "CervicalAI" / "CervicalAILib"
HEAVY = {"trame", "trame_slicer", "trame_server", "trame_client", "trame_vuetify", "trame_rca", "wslink", "playwright"}
APP_MODULES = {"app", "scene", "server"}


def _module_level_imports(path) -> list[tuple[str, int]]:
    """(module, level) of every import at module level (not inside functions)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in tree.body:
        for sub in ast.walk(node) if isinstance(node, (ast.If, ast.Try)) else [node]:
            if isinstance(sub, ast.Import):
                found += [(alias.name, 0) for alias in sub.names]
            elif isinstance(sub, ast.ImportFrom):
                names = [f"{sub.module}.{alias.name}" if sub.module else alias.name for alias in sub.names]
                found += [(name, sub.level) for name in names]
    return found


def test_trame_is_imported_only_inside_the_web_package():
    offenders = []
    for path in sorted(ENGINE.rglob("*.py")):
        inside_web = "web" in path.relative_to(ENGINE).parts
        for module, level in _module_level_imports(path):
            top = module.split(".")[0]
            if level == 0 and top in HEAVY and not inside_web:
                offenders.append(f"{path.relative_to(REPO)}: {module}")
            parts = module.split(".")
            if not inside_web and "web" in parts and parts[-1] in APP_MODULES | {"web"}:
                offenders.append(f"{path.relative_to(REPO)}: {module} (import the web app inside a function)")
    assert offenders == []


def test_the_light_web_modules_need_no_trame():
    for name in ("__init__.py", "security.py"):
        heavy = [m for m, level in _module_level_imports(ENGINE / "web" / name) if m.split(".")[0] in HEAVY | {"slicer", "vtk"}]
        assert heavy == [], name


def test_the_review_command_loads_without_trame():
    heavy = sorted(HEAVY | {"slicer", "vtk"})
    code = ("import sys; from CervicalAILib.cli import build_parser; argv = ['review', 'status', 'x']; build_parser(argv).parse_args(argv); "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_checker_sees_a_module_level_trame_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import trame_slicer.core\nfrom ..web import app\ndef f():\n    import trame\n")
    assert _module_level_imports(bad) == [("trame_slicer.core", 0), ("web.app", 2)]
