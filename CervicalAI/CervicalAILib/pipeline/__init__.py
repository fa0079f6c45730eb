"""The per-patient pipeline: segmentation (pipeline/segment.py) and the readout (inputs.py -> readout.py).

    from CervicalAILib.pipeline import load_inputs, predict_case
    inputs = load_inputs("case01/", "case01/seg/tumor.nii.gz", "case01/clinical.json")
    readout = predict_case(inputs, out_dir="readout/")   # features for the models, scores, nomogram, staging

See docs/readout.md for the readout.json contract.
"""

from CervicalAILib.pipeline.inputs import ReadoutInputs, load_inputs
from CervicalAILib.pipeline.readout import OUTPUT_FILES, READOUT_SCHEMA, predict_case
from CervicalAILib.pipeline.summary import summary_text

__all__ = ["OUTPUT_FILES", "READOUT_SCHEMA", "ReadoutInputs", "load_inputs", "predict_case", "summary_text"]
