"""MRML logic of the CervicalAIPredict module: uses only MRML classes (testable with the slicer-core wheel).

- `form`: the clinical form from the engine's field definitions; values read back and validated;
  lengths of markups lines for the lymph-node axes.
- `inputs`: the files `cervicalai predict` reads, made from the scene (case folder, tumour mask
  with its review record, clinical.json), and the warning for an unreviewed segmentation.
- `readout`: the background predict command, the readout as text and as a table node, and
  "Save report" beside the scene.
"""
