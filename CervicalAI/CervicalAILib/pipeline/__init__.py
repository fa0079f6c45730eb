"""The per-patient readout: features for the bundle, scores, nomogram, LNM risk and staging.

    from CervicalAILib.pipeline import predict_case
    readout = predict_case("case01/", "case01/seg/tumor.nii.gz", {"ln_short_axis_mm": 6, ...}, out_dir="readout/")

See docs/readout.md for the readout.json contract.
"""

from CervicalAILib.pipeline.predict import READOUT_SCHEMA, ReadoutInputs, predict_case
from CervicalAILib.pipeline.summary import summary_text

__all__ = ["READOUT_SCHEMA", "ReadoutInputs", "predict_case", "summary_text"]
