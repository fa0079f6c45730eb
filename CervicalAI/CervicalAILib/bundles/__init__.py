"""Model bundles as data: the bundle format with its hashes, the model catalogue, where the bundles live, the one ONNX session factory."""
