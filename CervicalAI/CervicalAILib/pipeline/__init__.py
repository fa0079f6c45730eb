"""The per-patient readout: features for the bundle, scores, nomogram, LNM risk and staging.

    from CervicalAILib.pipeline import predict_case
    readout = predict_case("case01/", "case01/seg/tumor.nii.gz", {"ln_short_axis_mm": 6, ...}, out_dir="readout/")

The readout.json contract is contracts/readout.py (docs/readout.md); its wording contracts/readout_text.py.
"""

from CervicalAILib.pipeline.predict import ReadoutInputs, predict_case

__all__ = ["ReadoutInputs", "predict_case"]
