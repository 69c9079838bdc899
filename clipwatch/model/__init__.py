"""The network (torch, training and export only), ONNX Runtime inference, scoring and evaluation."""
