"""MRML logic of the CervicalAISegment module: uses only MRML classes (testable with the slicer-core wheel).

- `volumes`: which loaded volume plays which sequence role; export of the chosen volumes as a case folder.
- `pipeline`: the background commands of Apply (co-registration, segmentation).
- `segmentation`: the engine's result as new segmentation nodes (terminology, T2WI geometry),
  the probability map, and the low-confidence slices with the point to jump to.
- `review`: "Mark as reviewed" (frozen reviewed copy, review record, edit metrics) and review state.
- `nodes`: attribute names and small MRML helpers shared by the above.
"""
