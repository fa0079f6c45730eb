"""The modules' few calls into Slicer's running application (slicer.app, slicer.util), in one place.

All three module scripts need them, and none may import another: the settings as Slicer stores them,
PythonSlicer with Slicer's environment and temporary folder for background engine runs, and the
gate before a background step (missing Python packages offered for installation, then the model
bundles verified). These need the application, so slicer-core tests cannot run them: this is the one
CervicalAIHubLib file allowed to use slicer.app/slicer.util (test_static_modules names it). Everything
they decide is in the files they call (settings, dependencies, bundles, runner), tested without Slicer.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import sys
import tempfile

import slicer

from CervicalAIHubLib.bundles import chosen_models_dir, model_problems
from CervicalAIHubLib.dependencies import NotReadyError, constraints_text, install_plan
from CervicalAIHubLib.settings import engine_environment_extra, read_settings
from CervicalAILib.core.background import engine_environment as background_environment


def settings() -> dict:
    """The hub's settings (device, model bundles, reviewer, ...) from Slicer's settings."""
    return read_settings(slicer.util.settingsValue)


def python_executable() -> str:
    """PythonSlicer (Slicer's Python launcher), which runs the engine in the background."""
    found = shutil.which("PythonSlicer")
    if found:
        return found
    home = getattr(slicer.app, "slicerHome", "")
    candidate = os.path.join(home, "bin", "PythonSlicer.exe" if os.name == "nt" else "PythonSlicer")
    return candidate if os.path.isfile(candidate) else sys.executable


def engine_environment() -> dict:
    """The environment of a background engine run."""
    # Slicer's own sys.path goes along: extensions' packages (pyradiomics from SlicerRadiomics)
    # are on it, and PythonSlicer alone may not know them.
    paths = [path for path in sys.path if path and os.path.isdir(path)]
    return background_environment(slicer.util.startupEnvironment(), extra=engine_environment_extra(settings()), python_paths=paths)


def work_base() -> str:
    """The folder under which each run gets its own folder (CervicalAIHubLib.runner.new_work_folder)."""
    return os.path.join(slicer.app.temporaryPath, "CervicalAI")


def ensure_ready(device: str | None = None, purposes=()) -> None:
    """The one gate before a background step (Segment's Apply, Predict's Compute) and in the
    self-tests: the Python packages the engine needs (offered for installation, unless Slicer
    runs its tests) and the model bundles of `purposes`, verified. Raises NotReadyError saying
    what is missing."""
    device = device or settings()["device"]
    if not ensure_dependencies(device):
        raise NotReadyError(install_plan(device).message())
    problems = model_problems(chosen_models_dir(settings()["bundleFolder"]), tuple(purposes))
    if problems:
        raise NotReadyError("Model bundles cannot be used (see the CervicalAI module's Models section):\n"
                            + "\n".join(problems))  # fmt: skip


def ensure_dependencies(device: str | None = None) -> bool:
    """Install missing packages after the user agrees: slicer.packaging.pip_ensure (Slicer 5.12
    and later), else slicer.util.pip_install (Slicer 5.10). Slicer's own numpy, SimpleITK, VTK,
    scipy, pydicom and packaging are pinned by a constraints file, never replaced. While Slicer
    runs its tests nothing is installed and no dialog is shown. Returns True when everything
    the engine needs is there."""
    device = device or settings()["device"]
    plan = install_plan(device)
    if plan.complete:
        return True
    if slicer.app.testingEnabled():  # a self-test must not change Slicer's Python, nor wait on a dialog
        logging.error(f"CervicalAI: Python packages missing: {plan.message()}")
        return False
    if not plan.to_install:  # only things pip must not fix (extension, Slicer's own packages)
        slicer.util.errorDisplay(plan.message(), windowTitle="CervicalAI: Python packages")
        return False
    constraints = os.path.join(tempfile.mkdtemp(prefix="CervicalAI-"), "constraints.txt")
    with open(constraints, "w", encoding="utf-8") as file:
        file.write(constraints_text(plan))
    try:
        packaging = importlib.import_module("slicer.packaging")  # Slicer 5.12 and later
    except ImportError:
        packaging = None
    if packaging is not None and hasattr(packaging, "pip_ensure"):
        from packaging.requirements import Requirement

        try:
            packaging.pip_ensure([Requirement(spec) for spec in plan.to_install], constraints=constraints,
                                 requester="CervicalAI", prompt_install=True, prompt_restart=True)  # fmt: skip
        except RuntimeError as exc:  # the user declined
            logging.info(f"CervicalAI: {exc}")
            return False
    else:
        if not slicer.util.confirmOkCancelDisplay(plan.message(), windowTitle="CervicalAI: install Python packages"):
            return False
        slicer.util.pip_install(list(plan.to_install) + ["-c", constraints])
        if plan.restart_needed and slicer.util.confirmYesNoDisplay(
            "Restart Slicer now? An upgraded package was already loaded.", windowTitle="CervicalAI"
        ):
            slicer.util.restart()
    after = install_plan(device)
    if not after.complete:
        slicer.util.warningDisplay(after.message(), windowTitle="CervicalAI: Python packages")
    return after.complete
