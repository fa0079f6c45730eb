"""Tumour features per sequence: radiomic (pyradiomics) and deep (ONNX encoders)."""
