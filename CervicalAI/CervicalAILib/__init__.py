"""CervicalAI engine: pure Python, importable inside and outside 3D Slicer.

Never import slicer, qt, ctk or vtk at module level anywhere in this package: the engine runs
from the `cervicalai` command line, from tests, and in Slicer's background process alike.
"""

__version__ = "0.1.0"

RESEARCH_USE_STATEMENT = (
    "Research tool. The shipped models were trained on synthetic data from the CervicalAI "
    "generator and are not for clinical use."
)
