"""What each 3D Slicer version's Python holds, read from requirements/compat/ (standard library only).

    slicer-<version>.txt   the packages Slicer bundles, exact pins read from its source by
                           tools/slicer_compat_pins.py, with a header ("# key: value"): slicer,
                           supported, slicer-tag, python, vtk-built-in, mrml-wheel
    slicerradiomics.txt    what the SlicerRadiomics extension adds (pyradiomics and its requirements)

Used by the environment builder (build_env.py) and by the hub's tests, which check the install
plan against these real versions rather than made-up ones.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PINS_DIR = REPO / "requirements" / "compat"
EXTENSION_FILE = PINS_DIR / "slicerradiomics.txt"
SUPPORTED = ("5.10", "5.12", "5.13")  # previous stable, stable, preview (main)
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9_.\-]*)==([^\s#;]+)")
_HEADER = re.compile(r"^#\s*([a-z][a-z0-9-]*):\s*(.+?)\s*$")


def normalise(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pin_file(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(header "# key: value" lines, {normalised distribution name: version}) of a pin file."""
    header, pins = {}, {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        match = _HEADER.match(line)
        if match:
            header[match.group(1)] = match.group(2)
            continue
        match = _PIN.match(line)
        if match:
            pins[normalise(match.group(1))] = match.group(2)
    return header, pins


def pin_file(version: str) -> Path:
    return PINS_DIR / f"slicer-{version}.txt"


def known_versions() -> list[str]:
    """Every Slicer version with a pin file, oldest first (supported or not)."""
    found = [path.stem.removeprefix("slicer-") for path in PINS_DIR.glob("slicer-*.txt")]
    return sorted(found, key=lambda v: tuple(int(part) for part in v.split(".")))


def header(version: str) -> dict[str, str]:
    return read_pin_file(pin_file(version))[0]


def bundled(version: str, with_extension: bool = True) -> dict[str, str]:
    """{distribution: version} in that Slicer's Python: its bundled packages, its built-in VTK
    (Slicer writes a vtk dist-info), and (by default) what SlicerRadiomics adds."""
    head, pins = read_pin_file(pin_file(version))
    packages = {**pins, "vtk": head["vtk-built-in"]}
    if with_extension:
        packages.update(read_pin_file(EXTENSION_FILE)[1])
    return packages
