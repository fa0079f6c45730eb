"""Static checks of the Slicer modules (3D Slicer itself cannot run here).

- every `.ui` file parses, and every `self.ui.X` the widget code uses is a widget in its `.ui`;
- the `SlicerParameterName` properties in the `.ui` name fields of the module's
  `@parameterNodeWrapper` class, with a field type the bound widget can show;
- the module files and their Lib packages compile under the running Python and use no API
  removed in Python 3.12 or 3.13, and (vermin, a real version checker) no Python feature newer
  than 3.12, the Python of every supported Slicer (5.10, 5.12 and the 5.13 preview ship 3.12.10;
  the engine's own environment is 3.11, which the whole suite runs on);
- the module files and the support check they run first need nothing newer than Python 3.9, so
  that Slicer 5.8 (Python 3.9.10, not supported) loads them and shows its one sentence (checked
  with a real Python 3.9 too); Slicer APIs against the oldest supported slicer-core are checked in
  the compatibility tier (Testing/python/compat);
- the Lib packages stay free of Qt (they are tested here without it), and each module's
  self-test runs all its test methods, each of which asserts something.
Each checker is also shown to catch the mistake it looks for.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import REPO

MODULES = ("CervicalAI", "CervicalAISegment", "CervicalAIPredict")
LIBS = {
    "CervicalAI": REPO / "CervicalAI" / "CervicalAIHubLib",
    "CervicalAISegment": REPO / "CervicalAISegment" / "CervicalAISegmentLib",
    "CervicalAIPredict": REPO / "CervicalAIPredict" / "CervicalAIPredictLib",
}


def module_file(module: str) -> Path:
    return REPO / module / f"{module}.py"


def ui_file(module: str) -> Path:
    return REPO / module / "Resources" / "UI" / f"{module}.ui"


def python_files(module: str) -> list[Path]:
    return [module_file(module), *sorted(LIBS[module].rglob("*.py"))]


# --- .ui files ------------------------------------------------------------------------------------------

def ui_widgets(source: str) -> dict[str, ET.Element]:
    """name -> <widget> element of every widget in a .ui document (the top-level one included)."""
    root = ET.fromstring(source)
    return {widget.get("name"): widget for widget in root.iter("widget")}


def used_ui_names(source: str) -> dict[str, int]:
    """`X` of every `self.ui.X` in Python source -> first line number."""
    used: dict[str, int] = {}
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "ui"
            and isinstance(node.value.value, ast.Name)
            and node.value.value.id == "self"
        ):
            used.setdefault(node.attr, node.lineno)
    return used


def missing_ui_names(python_source: str, ui_source: str) -> list[str]:
    widgets = ui_widgets(ui_source)
    return [f"self.ui.{name} (line {line})" for name, line in sorted(used_ui_names(python_source).items()) if name not in widgets]


@pytest.mark.parametrize("module", MODULES)
def test_ui_file_parses_as_a_slicer_module_widget(module):
    root = ET.parse(ui_file(module)).getroot()
    top = root.find("widget")
    assert top.get("class") == "qMRMLWidget" and top.get("name") == module
    names = [widget.get("name") for widget in root.iter("widget")]
    assert len(names) == len(set(names)), "widget names must be unique"
    declared = {custom.findtext("class") for custom in root.iter("customwidget")}
    used_classes = {widget.get("class") for widget in root.iter("widget")}
    custom = {cls for cls in used_classes if cls.startswith(("qMRML", "ctk", "qSlicer"))}
    assert custom <= declared, f"custom widget classes without a <customwidget> entry: {custom - declared}"
    for connection in root.iter("connection"):  # scene connections reach existing widgets
        assert connection.findtext("receiver") in names


@pytest.mark.parametrize("module", MODULES)
def test_every_ui_widget_the_code_uses_exists(module):
    source = module_file(module).read_text()
    assert used_ui_names(source), f"{module}.py uses no self.ui widgets: is the checker reading the right file?"
    assert missing_ui_names(source, ui_file(module).read_text()) == []


def test_ui_name_checker_catches_a_missing_widget():
    ui = '<ui version="4.0"><widget class="qMRMLWidget" name="M"><widget class="QPushButton" name="applyButton"/></widget></ui>'
    code = "class W:\n    def setup(self):\n        self.ui.applyButton.enabled = True\n        self.ui.aplyButton.clicked.connect(f)\n"
    assert missing_ui_names(code, ui) == ["self.ui.aplyButton (line 4)"]


# --- parameter node <-> .ui ------------------------------------------------------------------------------

def parameter_fields(source: str) -> dict[str, str]:
    """field -> annotation source of the @parameterNodeWrapper class(es) in a module."""
    fields: dict[str, str] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef) and any(
            (isinstance(d, ast.Name) and d.id == "parameterNodeWrapper") for d in node.decorator_list
        ):
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    fields[item.target.id] = ast.unparse(item.annotation)
    return fields


def bound_widgets(ui_source: str) -> dict[str, str]:
    """SlicerParameterName -> widget class, from a .ui document."""
    bound = {}
    for widget in ui_widgets(ui_source).values():
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound[prop.findtext("string")] = widget.get("class")
    return bound


def widget_accepts(widget_class: str, annotation: str) -> bool:
    """Whether Slicer's parameterNodeWrapper has a GUI connector for this widget and field type."""
    if widget_class == "qMRMLNodeComboBox":
        return annotation.startswith("vtkMRML")
    if widget_class in ("QComboBox", "ctkComboBox"):
        return "Choice(" in annotation
    if widget_class in ("QLineEdit", "QLabel", "QTextEdit"):
        return annotation == "str"
    if widget_class in ("QCheckBox", "ctkCheckBox"):
        return annotation == "bool"
    if widget_class in ("QSpinBox", "QSlider"):
        return annotation.startswith(("int", "Annotated[int"))
    if widget_class in ("QDoubleSpinBox", "ctkSliderWidget", "ctkDoubleSpinBox", "qMRMLSliderWidget", "qMRMLSpinBox"):
        return annotation.startswith(("float", "int", "Annotated[float", "Annotated[int"))
    if widget_class in ("ctkPathLineEdit", "ctkDirectoryButton"):
        return "Path" in annotation
    return False


def parameter_binding_problems(python_source: str, ui_source: str) -> list[str]:
    fields = parameter_fields(python_source)
    problems = []
    for name, widget_class in sorted(bound_widgets(ui_source).items()):
        if name not in fields:
            problems.append(f"SlicerParameterName {name!r} is not a parameter node field ({', '.join(fields)})")
        elif not widget_accepts(widget_class, fields[name]):
            problems.append(f"{widget_class} cannot show parameter {name!r} of type {fields[name]}")
    return problems


@pytest.mark.parametrize("module", MODULES)
def test_ui_parameter_names_match_the_parameter_node(module):
    source = module_file(module).read_text()
    ui = ui_file(module).read_text()
    assert parameter_fields(source), f"{module}.py has no @parameterNodeWrapper class"
    assert bound_widgets(ui), f"{module}.ui binds no widget with SlicerParameterName"
    assert parameter_binding_problems(source, ui) == []


def test_parameter_checker_catches_wrong_names_and_types():
    code = (
        "@parameterNodeWrapper\nclass P:\n    volume: vtkMRMLScalarVolumeNode\n    device: Annotated[str, Choice(['cpu'])] = 'cpu'\n"
        "    count: int = 1\n"
    )
    ui = (
        '<ui><widget class="qMRMLWidget" name="M">'
        '<widget class="qMRMLNodeComboBox" name="a"><property name="SlicerParameterName" stdset="0"><string>volume</string></property></widget>'
        '<widget class="QComboBox" name="b"><property name="SlicerParameterName" stdset="0"><string>devices</string></property></widget>'
        '<widget class="QLineEdit" name="c"><property name="SlicerParameterName" stdset="0"><string>count</string></property></widget>'
        "</widget></ui>"
    )
    problems = parameter_binding_problems(code, ui)
    assert problems == [
        "QLineEdit cannot show parameter 'count' of type int",
        "SlicerParameterName 'devices' is not a parameter node field (volume, device, count)",
    ]


# --- Python versions -------------------------------------------------------------------------------------

REMOVED_MODULES = {  # removed in Python 3.12 (imp, distutils, asynchat, asyncore, smtpd) or 3.13
    "imp", "distutils", "asynchat", "asyncore", "smtpd", "cgi", "cgitb", "crypt", "imghdr", "mailcap", "msilib",
    "nis", "nntplib", "ossaudiodev", "pipes", "sndhdr", "spwd", "sunau", "telnetlib", "uu", "xdrlib", "lib2to3",
}  # fmt: skip
REMOVED_ATTRIBUTES = {
    # unittest aliases removed in 3.12
    "assertEquals", "assertNotEquals", "assertAlmostEquals", "assertNotAlmostEquals", "assertRegexpMatches",
    "assertNotRegexpMatches", "assertRaisesRegexp", "assertDictContainsSubset", "failUnless", "failIf",
    "failUnlessEqual", "failIfEqual", "failUnlessAlmostEqual", "failIfAlmostEqual", "failUnlessRaises", "assert_",
    # unittest functions removed in 3.13
    "makeSuite", "findTestCases", "getTestCaseNames",
    # other removals in 3.12
    "SafeConfigParser", "readfp", "ImpImporter", "ImpLoader", "wrap_socket", "match_hostname",
}  # fmt: skip
REMOVED_QUALIFIED = {("locale", "format"), ("locale", "resetlocale"), ("typing", "io"), ("typing", "re")}


def removed_api_uses(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"line {node.lineno}: import {a.name}" for a in node.names if a.name.split(".")[0] in REMOVED_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in REMOVED_MODULES:
                found.append(f"line {node.lineno}: from {node.module} import ...")
            found += [f"line {node.lineno}: from {node.module} import {a.name}" for a in node.names if a.name in REMOVED_ATTRIBUTES]
        elif isinstance(node, ast.Attribute):
            if node.attr in REMOVED_ATTRIBUTES:
                found.append(f"line {node.lineno}: .{node.attr}")
            elif isinstance(node.value, ast.Name) and (node.value.id, node.attr) in REMOVED_QUALIFIED:
                found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    return found


@pytest.mark.parametrize("module", MODULES)
def test_module_files_compile_and_avoid_apis_removed_in_python_312(module):
    for path in python_files(module):
        source = path.read_text()
        compile(source, str(path), "exec")  # a SyntaxError fails the test with the file and line
        assert removed_api_uses(source) == [], path


def test_removed_api_checker_catches_old_code():
    old = (
        "import imp\nfrom distutils.version import LooseVersion\nimport configparser\n"
        "p = configparser.SafeConfigParser()\nclass T:\n    def test(self):\n        self.assertEquals(1, 1)\n"
        "import locale\nlocale.format('%d', 1)\nfrom unittest import makeSuite\n"
    )
    assert sorted(removed_api_uses(old)) == sorted([
        "line 1: import imp",
        "line 2: from distutils.version import ...",
        "line 4: .SafeConfigParser",
        "line 7: .assertEquals",
        "line 9: locale.format",
        "line 10: from unittest import makeSuite",
    ])


def test_running_python_is_the_engines_own():
    # the engine's environment (3.11); Slicer's Python 3.12 is the compatibility tier's (Testing/python/compat)
    assert sys.version_info >= (3, 11)


# --- newest Python feature used (vermin) -------------------------------------------------------------------

ENGINE = REPO / "CervicalAI" / "CervicalAILib"
SUPPORT = REPO / "CervicalAI" / "CervicalAIHubLib" / "support.py"
# Run by Slicer before the version check: must load on an unsupported Slicer's Python (5.8: 3.9.10).
BEFORE_VERSION_CHECK = [module_file(module) for module in MODULES] + [SUPPORT, LIBS["CervicalAI"] / "__init__.py"]


def vermin_violations(paths: list[Path], target: str) -> list[str]:
    """Lines of vermin's report for files that need a Python newer than `target` (e.g. "3.12")."""
    result = subprocess.run([sys.executable, "-c", "import sys, vermin; sys.exit(vermin.main())", "-q", "--no-tips",
                             "--violations", "--no-parse-comments", f"-t={target}-", *map(str, paths)],
                            capture_output=True, text=True)  # fmt: skip
    assert "No module named 'vermin'" not in result.stderr, "vermin (test extra) is not installed"
    return [line for line in result.stdout.splitlines() if line.strip() and not line.startswith(("Minimum", "Incompatible"))]


def test_no_module_lib_or_engine_file_needs_a_python_newer_than_slicers():
    files = BEFORE_VERSION_CHECK + [p for lib in LIBS.values() for p in sorted(lib.rglob("*.py"))] + sorted(ENGINE.rglob("*.py"))
    assert len(files) > 100
    assert vermin_violations(files, "3.12") == []


def test_files_slicer_loads_before_the_version_check_need_only_python_3_9():
    assert vermin_violations(BEFORE_VERSION_CHECK, "3.9") == []


def test_the_version_checker_catches_newer_python(tmp_path):
    newer = tmp_path / "newer.py"
    newer.write_text("import copy\nimport datetime\nx = copy.replace(datetime.date(2020, 1, 1), day=2)\n"
                     "y = datetime.UTC\nz = list(zip([1], [2], strict=True))\n")  # fmt: skip
    assert any("copy.replace" in line and "3.13" in line for line in vermin_violations([newer], "3.12"))
    old_python = vermin_violations([newer], "3.9")
    assert any("datetime.UTC" in line for line in old_python) and any("zip(strict)" in line for line in old_python)


def python39() -> str | None:
    """A Python 3.9 interpreter (python3.9 on PATH or pyenv's), standing for Slicer 5.8's 3.9.10."""
    import build_env  # Testing/compat: the same search as for the compatibility environments' 3.12

    try:
        return build_env.find_python("3.9")
    except build_env.BuildError:
        return None


@pytest.mark.skipif(python39() is None, reason="no Python 3.9 interpreter (pyenv install 3.9) to stand for Slicer 5.8's")
def test_on_python_3_9_the_module_files_compile_and_the_hub_says_which_slicer_to_use():
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(REPO / 'CervicalAI')!r})\n"
        f"for path in {[str(p) for p in BEFORE_VERSION_CHECK]!r}:\n"
        "    compile(open(path).read(), path, 'exec')\n"
        "from CervicalAIHubLib.support import unsupported_reason\n"
        "print(unsupported_reason((5, 8), sys.version_info))\n"
        "print(repr(unsupported_reason((5, 10), (3, 12, 10))))\n"
    )
    result = subprocess.run([python39(), "-I", "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    sentence, supported = result.stdout.strip().splitlines()
    assert sentence.startswith("CervicalAI needs 3D Slicer 5.10, 5.12 or the 5.13 preview (Python 3.12); this is 3D Slicer 5.8")
    assert "Python 3.9." in sentence and sentence.count(". ") == 0 and sentence.endswith("download.slicer.org.")
    assert supported == "''"


def test_the_support_check():
    from CervicalAIHubLib.support import unsupported_reason

    for slicer_version in ((5, 10), (5, 12, 3), (5, 13), (6, 0)):
        assert unsupported_reason(slicer_version, (3, 12, 10)) == ""
    assert "3D Slicer 5.8 with Python 3.9.10" in unsupported_reason((5, 8, 1), (3, 9, 10))
    assert "3D Slicer 5.10 with Python 3.11.7" in unsupported_reason((5, 10), (3, 11, 7))  # a custom build on 3.11
    assert unsupported_reason((5, 9), (3, 12, 1)).startswith("CervicalAI needs 3D Slicer 5.10")


@pytest.mark.parametrize("module", MODULES)
def test_each_module_checks_its_slicer_before_loading_anything(module):
    """setup() asks the support check first and returns after showing the sentence; the self-test
    fails on an unsupported Slicer with the reason."""
    tree = ast.parse(module_file(module).read_text())
    widget = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == f"{module}Widget")
    setup = next(item for item in widget.body if isinstance(item, ast.FunctionDef) and item.name == "setup")
    first_ui = next(node.lineno for node in ast.walk(setup) if isinstance(node, ast.Attribute) and node.attr == "loadUI")
    check = [node.lineno for node in ast.walk(setup) if isinstance(node, (ast.Name, ast.Attribute))
             and "unsupportedSlicerReason" in (getattr(node, "id", "") or getattr(node, "attr", ""))]  # fmt: skip
    assert check and min(check) < first_ui
    test_class = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == f"{module}Test")
    run_test = next(item for item in test_class.body if isinstance(item, ast.FunctionDef) and item.name == "runTest")
    assert "unsupportedSlicerReason" in ast.unparse(run_test)


# --- thin Qt layer and real self-tests --------------------------------------------------------------------

def imported_modules(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def application_uses(source: str) -> list[str]:
    """Qt imports and uses of Slicer's application-level helpers (slicer.util, slicer.app, slicer.modules)."""
    found = [f"import {name}" for name in sorted(imported_modules(source) & {"qt", "ctk", "PythonQt"})]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "slicer":
            if node.attr in ("util", "app", "modules", "mrmlScene", "dicomDatabase"):
                found.append(f"line {node.lineno}: slicer.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module in ("slicer.util", "slicer.ScriptedLoadableModule"):
            found.append(f"line {node.lineno}: from {node.module} import ...")
    return found


# The one Lib file that calls the running application: the settings, PythonSlicer, the environment and temporary
# folder of background runs, and the package-installation dialogs, which all three module scripts need and
# none may import from another (it only calls the Lib functions tested here).
APPLICATION_GLUE = {LIBS["CervicalAI"] / "application.py"}


@pytest.mark.parametrize("module", MODULES)
def test_lib_packages_use_only_mrml(module):
    """The Lib packages hold the behaviour tested here without the application: no Qt, no slicer.util /
    slicer.app / slicer.mrmlScene (the scene is passed in), so slicer-core tests cover all of it."""
    for path in sorted(LIBS[module].rglob("*.py")):
        if path not in APPLICATION_GLUE:
            assert application_uses(path.read_text()) == [], path


def test_the_application_glue_uses_the_application_and_no_qt():
    for path in APPLICATION_GLUE:
        found = application_uses(path.read_text())
        assert found and not any(line.startswith("import") for line in found), path


def test_application_use_checker():
    code = "import qt\nimport slicer\ndef f():\n    slicer.util.getNode('x')\n    return slicer.vtkMRMLScene()\n"
    assert application_uses(code) == ["import qt", "line 4: slicer.util"]


def self_test_problems(source: str, module: str) -> list[str]:
    """The <Module>Test class: runTest calls every test_ method, and every test_ method asserts."""
    tree = ast.parse(source)
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    test_class = classes.get(f"{module}Test")
    if test_class is None:
        return [f"no {module}Test class"]
    methods = {item.name: item for item in test_class.body if isinstance(item, ast.FunctionDef)}
    problems = []
    if "runTest" not in methods:
        return ["no runTest method"]
    called = {
        node.func.attr for node in ast.walk(methods["runTest"])
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }  # fmt: skip
    for name, method in methods.items():
        if not name.startswith("test_"):
            continue
        if name not in called:
            problems.append(f"runTest does not call {name}")
        asserts = [
            node for node in ast.walk(method)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr.startswith("assert")
        ]  # fmt: skip
        if not asserts:
            problems.append(f"{name} asserts nothing")
        if any(isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "skipTest" for node in ast.walk(method)):
            problems.append(f"{name} can skip itself")
    if not any(name.startswith("test_") for name in methods):
        problems.append("no test_ methods")
    return problems


@pytest.mark.parametrize("module", MODULES)
def test_self_tests_run_every_test_and_assert(module):
    assert self_test_problems(module_file(module).read_text(), module) == []


def test_self_test_checker_catches_empty_or_skipped_tests():
    code = (
        "class MTest:\n    def runTest(self):\n        self.test_a()\n"
        "    def test_a(self):\n        self.delayDisplay('nothing checked')\n"
        "    def test_b(self):\n        self.skipTest('no GPU')\n        self.assertTrue(True)\n"
    )
    assert self_test_problems(code, "M") == ["test_a asserts nothing", "runTest does not call test_b", "test_b can skip itself"]


@pytest.mark.parametrize("module", MODULES)
def test_module_classes_and_logic_delegation(module):
    """The widget never reaches past its logic into the engine's heavy work: no subprocess in the Qt layer."""
    source = module_file(module).read_text()
    tree = ast.parse(source)
    classes = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
    assert {module, f"{module}Widget", f"{module}Logic", f"{module}Test"} <= classes
    assert "subprocess" not in imported_modules(source)
