"""Which Python packages the engine needs inside Slicer, which are missing, and how to install them.

Three kinds of package:

- installed with pip on first use (after the user agrees): `REQUIREMENTS`;
- Slicer's own (`SLICER_OWN`: numpy, SimpleITK, VTK, scipy, pydicom, packaging): never installed,
  upgraded or replaced - other modules depend on exactly those builds; the pip run is constrained
  to the installed versions, and a too-old one is reported (it needs a newer Slicer). The minimum
  versions are those of the oldest supported Slicer, 5.10.0 (numpy 2.0.2, scipy 1.13.1, pydicom
  2.4.4, SimpleITK 2.5.2, packaging 25.0; 5.12 ships numpy 2.4.6, scipy 1.17.1, pydicom 3.0.2,
  SimpleITK 2.5.5, packaging 26.2), and the engine works with each of them (requirements/compat/);
- pyradiomics, which comes from the SlicerRadiomics extension (declared in EXTENSION_DEPENDS):
  reported with a pointer to the Extensions Manager, never pip-installed here.

`install_plan()` answers what to do; the hub then calls `slicer.packaging.pip_ensure` (Slicer 5.12
and later, with `packaging.requirements.Requirement` objects and the constraints file) or, in
Slicer 5.10, `slicer.util.pip_install` with the plan's requirement strings and `-c constraints`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


class NotReadyError(RuntimeError):
    """A workflow step cannot run yet: Python packages or model bundles are missing (the message says which)."""


@dataclass(frozen=True)
class Requirement:
    spec: str  # pip requirement, e.g. "onnxruntime>=1.18"
    module: str  # what `import` names
    why: str
    alternatives: tuple[str, ...] = ()  # distributions that satisfy it as well (same import name)

    @property
    def name(self) -> str:
        from packaging.requirements import Requirement as _Requirement

        return _Requirement(self.spec).name


REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement("onnxruntime>=1.18", "onnxruntime", "runs the segmentation network and the deep-feature encoders",
                alternatives=("onnxruntime-gpu",)),
    Requirement("PyYAML>=6.0", "yaml", "reads the radiomics settings and model bundle files"),
    Requirement("PyWavelets>=1.6", "pywt", "wavelet radiomics features (normally installed with SlicerRadiomics)"),
    Requirement("pykwalify>=1.8", "pykwalify", "checks radiomics settings (normally installed with SlicerRadiomics)"),
    Requirement("matplotlib>=3.8", "matplotlib", "draws the nomogram with the patient's values"),
    Requirement("nibabel>=5.0", "nibabel", "checks NIfTI headers of case folders"),
    Requirement("trimesh>=4.0", "trimesh", "samples the sphere of the LBP3D radiomics filter (pyradiomics imports it; "
                "SlicerRadiomics does not install it)"),
)
GPU_RUNTIME = "onnxruntime-gpu>=1.18"  # installed instead of onnxruntime when the GPU is chosen (never both)
# Slicer's own packages: minimum versions the engine needs (those of Slicer 5.10.0, the oldest supported);
# never installed or replaced by CervicalAI.
SLICER_OWN: dict[str, str] = {
    "numpy": ">=2.0",
    "SimpleITK": ">=2.5",
    "vtk": "",
    "scipy": ">=1.13",
    "pydicom": ">=2.4",
    "packaging": ">=23.0",
}
# Packages that come with an extension: distribution -> (import name, extension).
FROM_EXTENSION: dict[str, tuple[str, str]] = {
    "pyradiomics": ("radiomics", "SlicerRadiomics"),
}
# Engine dependencies (pyproject.toml) not needed inside Slicer, and why.
NOT_NEEDED_IN_SLICER: dict[str, str] = {
    "pyradiomics-bhklab": "the same `radiomics` package comes from the SlicerRadiomics extension",
    "highdicom": "used only by `cervicalai export dicom-seg` (Slicer 5.12 and later ship highdicom 0.27; "
                 "inside Slicer, DICOM SEG is exported by Slicer's own DICOM module)",
}


def installed_version(distribution: str) -> str | None:
    """Installed version of a distribution (None if absent)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def _satisfied(spec: str, version: str | None) -> bool:
    from packaging.requirements import Requirement as _Requirement

    return version is not None and _Requirement(spec).specifier.contains(version, prereleases=True)


@dataclass
class InstallPlan:
    to_install: list[str] = field(default_factory=list)  # pip requirement strings
    reasons: dict[str, str] = field(default_factory=dict)  # requirement -> why it is needed
    upgrades: list[str] = field(default_factory=list)  # those already installed in a too-old version
    slicer_problems: list[str] = field(default_factory=list)  # Slicer's own package missing or too old
    extension_missing: list[str] = field(default_factory=list)  # e.g. "pyradiomics (install SlicerRadiomics)"
    constraints: list[str] = field(default_factory=list)  # pins that keep Slicer's own packages as they are
    restart_needed: bool = False  # an upgraded package is already imported in this session

    @property
    def complete(self) -> bool:
        """Nothing to install and nothing missing."""
        return not (self.to_install or self.slicer_problems or self.extension_missing)

    def message(self) -> str:
        """Plain text for the confirmation dialog."""
        lines = []
        if self.to_install:
            lines.append("CervicalAI needs these Python packages, installed into Slicer's Python with pip:")
            lines += [f"  - {spec}: {self.reasons.get(spec, '')}" for spec in self.to_install]
            lines.append("Slicer's own numpy, SimpleITK, VTK, scipy, pydicom and packaging are not changed.")
        if self.extension_missing:
            lines.append("Install with the Extensions Manager, then restart Slicer:")
            lines += [f"  - {item}" for item in self.extension_missing]
        if self.slicer_problems:
            lines.append("Not fixable from here (they belong to Slicer; use a newer Slicer):")
            lines += [f"  - {item}" for item in self.slicer_problems]
        if self.restart_needed:
            lines.append("Slicer must be restarted after the installation (an upgraded package is already loaded).")
        return "\n".join(lines) or "All Python packages CervicalAI needs are installed."


def install_plan(
    device: str = "cpu",
    version_of: Callable[[str], str | None] = installed_version,
    imported: Mapping[str, object] | None = None,
) -> InstallPlan:
    """What is missing and how to install it.

    device: "gpu" asks for onnxruntime-gpu when no ONNX Runtime is installed (an installed CPU
    runtime is kept: the engine falls back to the CPU and says so; never both runtimes).
    version_of: distribution name -> installed version or None (injectable for tests).
    imported: the modules loaded in this session (default sys.modules), to tell whether an
    upgrade needs a restart.
    """
    imported = sys.modules if imported is None else imported
    plan = InstallPlan()
    for name, minimum in SLICER_OWN.items():
        version = version_of(name)
        if name == "vtk" and version is None:
            if "vtk" in imported or "vtkmodules" in imported:
                continue  # Slicer's VTK is built in, not a pip distribution
        if version is None and name != "vtk":
            plan.slicer_problems.append(f"{name}{minimum} is missing from Slicer's Python")
        elif version is not None and minimum and not _satisfied(f"{name}{minimum}", version):
            plan.slicer_problems.append(f"{name} {version} is installed; the engine needs {name}{minimum}")
        if version is not None:
            plan.constraints.append(f"{name}=={version}")
    for distribution, (module, extension) in FROM_EXTENSION.items():
        if version_of(distribution) is None and version_of(f"{distribution}-bhklab") is None:
            plan.extension_missing.append(f"{distribution} (import {module}): install the {extension} extension")
    for requirement in REQUIREMENTS:
        candidates = (requirement.name, *requirement.alternatives)
        versions = {name: version_of(name) for name in candidates}
        if any(_satisfied(f"{name}{_specifier(requirement.spec)}", version) for name, version in versions.items()):
            continue
        spec = requirement.spec
        if requirement.module == "onnxruntime" and device == "gpu" and all(v is None for v in versions.values()):
            spec = GPU_RUNTIME
        if requirement.module == "onnxruntime":
            # upgrade the runtime that is there, never add the other one beside it
            present = [name for name, version in versions.items() if version is not None]
            if present:
                spec = f"{present[0]}{_specifier(requirement.spec)}"
        plan.to_install.append(spec)
        plan.reasons[spec] = requirement.why
        if any(version is not None for version in versions.values()):
            plan.upgrades.append(spec)
            if requirement.module in imported:
                plan.restart_needed = True
    return plan


def _specifier(spec: str) -> str:
    from packaging.requirements import Requirement as _Requirement

    return str(_Requirement(spec).specifier)


def constraints_text(plan: InstallPlan) -> str:
    """A pip constraints file that pins Slicer's own packages to their installed versions."""
    header = "# CervicalAI: keep Slicer's own packages exactly as installed\n"
    return header + "".join(f"{pin}\n" for pin in plan.constraints)
