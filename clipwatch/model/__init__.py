"""The model: network and training (torch), ONNX export, ONNX Runtime inference, scoring.

Only the modules in TORCH_MODULES import torch; everything else runs with numpy, OpenCV and
ONNX Runtime alone (the server and replay), which tests/test_layering.py checks.
"""

TORCH_MODULES = frozenset({"network", "fast_network", "train", "export", "fast_export",
                           "checkpoint", "provenance"})
