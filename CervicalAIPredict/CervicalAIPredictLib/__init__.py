"""MRML logic of the CervicalAIPredict module: uses only MRML classes (testable with the slicer-core wheel)."""
