"""MRML logic of the CervicalAISegment module: uses only MRML classes (testable with the slicer-core wheel)."""
