"""Which Slicer APIs the module files and their Lib packages use, found with `ast` (standard library only).

    uses = slicer_api_uses(source)   # {"util": {...}, "slicer": {...}, "methods": {...}}

- "util": `slicer.util.X` (functions of Slicer's util.py);
- "slicer": `slicer.X` (classes and modules of the `slicer` namespace);
- "methods": `obj.Name(...)` calls with a capitalised name on an object that is not an imported
  module (VTK/MRML methods are capitalised; Qt's and Python's are not).

`missing_apis(uses, namespace)` (run inside a compatibility environment) answers which of them the
slicer-core wheel there lacks. Names that exist only in the Slicer application (slicer.app,
slicer.modules, slicer.mrmlScene, ...) or only behind an explicit version branch are listed in
APPLICATION_ONLY and GUARDED, with the reason.
"""

from __future__ import annotations

import ast

# slicer.X that exist only in the application (not in the slicer-core wheel): checked by no wheel.
APPLICATION_ONLY = {
    "app": "the application object",
    "modules": "loaded modules (application)",
    "mrmlScene": "the application's scene",
    "dicomDatabase": "the application's DICOM database",
    "ScriptedLoadableModule": "scripted-module base classes (application)",
    "parameterNodeWrapper": "parameter node wrapper (application)",
}
# slicer.X used only behind an explicit version branch (import guarded, with a fallback).
GUARDED = {"packaging": "slicer.packaging.pip_ensure exists from Slicer 5.12; 5.10 falls back to slicer.util.pip_install"}
# The plain VTK classes the code handles (matrices, collections, images, tables, events).
VTK_CLASSES = ("vtkMatrix4x4", "vtkCollection", "vtkImageData", "vtkPointData", "vtkDataArray", "vtkStringArray", "vtkTable",
               "vtkCommand", "vtkTransform")
# Methods of Qt/ctk widgets or of Python objects that happen to be capitalised (none known today).
NOT_SLICER_METHODS: dict[str, str] = {}


def _module_aliases(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            # `from X import Y`: Y may be a module (qSlicerSegmentationsModuleWidgetsPythonQt) or a class
            names |= {alias.asname or alias.name for alias in node.names}
    return names


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def slicer_api_uses(source: str) -> dict[str, set[str]]:
    tree = ast.parse(source)
    aliases = _module_aliases(tree)
    uses: dict[str, set[str]] = {"util": set(), "slicer": set(), "methods": set()}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            dotted = _dotted(node)
            if dotted.startswith("slicer.util.") and dotted.count(".") == 2:
                uses["util"].add(node.attr)
            elif dotted.startswith("slicer.") and dotted.count(".") == 1:
                uses["slicer"].add(node.attr)
        elif isinstance(node, ast.ImportFrom) and node.module == "slicer":
            uses["slicer"] |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module == "slicer.util":
            uses["util"] |= {alias.name for alias in node.names}
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name = node.func.attr
            receiver = node.func.value
            if not name[:1].isupper() or name in NOT_SLICER_METHODS:
                continue
            if isinstance(receiver, ast.Name) and receiver.id in aliases:
                continue  # a module's function or class (sitk.Cast, np.X, slicer.vtkMRMLScene)
            if _dotted(receiver).split(".")[0] in ("slicer", "vtk", "sitk", "qt", "ctk"):
                continue  # namespace members, checked as "slicer"/"util" or not Slicer's
            uses["methods"].add(name)
    return uses


def missing_apis(uses: dict[str, list[str]]) -> dict[str, list[str]]:
    """What the importable `slicer` (slicer-core) and `vtk` lack of `uses` (run in a compat environment)."""
    import SimpleITK as sitk
    import slicer
    import slicer.util
    import vtk

    util = set(dir(slicer.util))
    namespace = set(dir(slicer)) | set(APPLICATION_ONLY) | set(GUARDED) | {"util"}
    methods: set[str] = set()
    for name in dir(slicer):  # every MRML, logic and segmentation class of the wheel (vtkObject's methods too)
        cls = getattr(slicer, name, None)
        if isinstance(cls, type):
            methods |= set(dir(cls))
    for name in VTK_CLASSES:
        methods |= set(dir(getattr(vtk, name)))
    methods |= set(dir(sitk.Image))  # SimpleITK images handled in the Lib packages (GetSize, CopyInformation...)
    return {
        "util": sorted(set(uses["util"]) - util),
        "slicer": sorted(set(uses["slicer"]) - namespace),
        "methods": sorted(set(uses["methods"]) - methods),
    }
