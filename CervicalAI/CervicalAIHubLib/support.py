"""Which 3D Slicer versions CervicalAI supports, and the one sentence an older Slicer shows instead.

Supported: the current stable Slicer (5.12), the previous one (5.10) and the preview (5.13);
every one of them ships Python 3.12. Slicer 5.8 (Python 3.9.10) and older are not supported: the
engine uses Python 3.10+ syntax and APIs, and Slicer APIs that 5.10 introduced.

The three module files call `unsupported_reason()` (each through its own unsupportedSlicerReason)
before they import anything of CervicalAI that needs a newer Python, so this file and the module
files must import and run on Python 3.9; a test runs it with Python 3.9.
"""

from __future__ import annotations

# (major, minor) of the oldest supported Slicer and of the Python it ships.
OLDEST_SLICER = (5, 10)
OLDEST_PYTHON = (3, 12)
SUPPORTED_TEXT = "3D Slicer 5.10, 5.12 or the 5.13 preview"


def unsupported_reason(slicer_version, python_version) -> str:
    """One sentence saying why this Slicer cannot run CervicalAI, or "" when it can.

    slicer_version: (major, minor[, ...]) of the running Slicer (slicer.app.majorVersion, minorVersion).
    python_version: sys.version_info (or a (major, minor[, micro]) tuple).
    """
    slicer = tuple(int(part) for part in tuple(slicer_version)[:2])
    python = tuple(int(part) for part in tuple(python_version)[:3])
    if slicer >= OLDEST_SLICER and python[:2] >= OLDEST_PYTHON:
        return ""
    shown_python = ".".join(str(part) for part in python)
    return (
        f"CervicalAI needs {SUPPORTED_TEXT} (Python 3.12); this is 3D Slicer {slicer[0]}.{slicer[1]} with "
        f"Python {shown_python}, so the CervicalAI modules are disabled: please install a current Slicer "
        "from download.slicer.org."
    )

