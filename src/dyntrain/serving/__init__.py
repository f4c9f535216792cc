"""Serving: hot-swappable ONNX sessions and prediction records (no torch here)."""
