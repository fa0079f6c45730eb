"""The per-patient pipeline: segmentation (pipeline/segment.py) and the readout (inputs.py -> readout.py).

    from CervicalAILib.pipeline import load_inputs, predict_case
    inputs = load_inputs("case01/", "case01/seg/tumor.nii.gz", "case01/clinical.json")
    readout = predict_case(inputs, out_dir="readout/")   # features for the models, scores, nomogram, staging

The readout.json contract is contracts/readout.py (docs/readout.md); its wording contracts/readout_text.py.
"""

from CervicalAILib.pipeline.inputs import ReadoutInputs, load_inputs
from CervicalAILib.pipeline.readout import OUTPUT_FILES, predict_case

__all__ = ["OUTPUT_FILES", "ReadoutInputs", "load_inputs", "predict_case"]
