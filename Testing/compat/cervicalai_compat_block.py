"""Import blocker of a compatibility environment (installed into its site-packages with a .pth line).

A compatibility environment holds, in layers, what a 3D Slicer version's Python holds at some
moment: `slicer` (the packages Slicer bundles, exact pins), `mrml` (the slicer-core wheel and its
VTK, standing for Slicer's built-in MRML and VTK), `extension` (what SlicerRadiomics adds),
`hub` (what the CervicalAI hub installs with pip) and `harness` (pytest, for running tests).
`CERVICALAI_COMPAT_LAYERS` names the layers that count as present, e.g. "slicer,mrml" for a
Slicer in which the user has installed nothing yet: every top-level module of an installed
distribution of another layer then fails to import, with a message saying which layer it is in.
Child processes inherit the variable, so the engine's background process sees the same Slicer.
Unset, nothing is blocked (pip and the build use the environment freely).
"""

from __future__ import annotations

import json
import os
import sys
from importlib.abc import MetaPathFinder

MANIFEST = "cervicalai-compat.json"  # beside this file: {"modules": {module: layer}, "slicer": "5.10", ...}


class _LayerBlocker(MetaPathFinder):
    def __init__(self, blocked: dict[str, str], slicer: str, present: list[str]):
        self.blocked = blocked
        self.slicer = slicer
        self.present = present

    def find_spec(self, fullname, path=None, target=None):
        top = fullname.partition(".")[0]
        layer = self.blocked.get(top)
        if layer is None:
            return None
        raise ModuleNotFoundError(
            f"{fullname!r} is blocked in this stand-in for Slicer {self.slicer}: its distribution belongs to the "
            f"{layer!r} layer, not present here (present: {', '.join(self.present)})",
            name=fullname,
        )


def install() -> None:
    wanted = os.environ.get("CERVICALAI_COMPAT_LAYERS")
    if not wanted:
        return
    manifest_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), MANIFEST)
    with open(manifest_path, encoding="utf-8") as file:
        manifest = json.load(file)
    present = [layer.strip() for layer in wanted.split(",") if layer.strip()]
    unknown = [layer for layer in present if layer not in manifest["layers"]]
    if unknown:
        raise SystemExit(f"CERVICALAI_COMPAT_LAYERS names unknown layer(s) {unknown}; known: {list(manifest['layers'])}")
    blocked = {module: layer for module, layer in manifest["modules"].items() if layer not in present}
    sys.meta_path.insert(0, _LayerBlocker(blocked, manifest["slicer"], present))


install()
