"""MRML logic of the CervicalAISegment module: uses only MRML classes (testable with the slicer-core wheel).
It builds on CervicalAIHubLib (scene vocabulary, volume roles, the result import, review state).

- `pipeline`: the background commands of Apply (co-registration, segmentation).
- `review`: "Mark as reviewed" (frozen reviewed copy, review record, edit metrics) and new working copies.
"""
