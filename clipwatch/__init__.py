"""clipwatch: real-time video anomaly detection with a ConvLSTM autoencoder.

Subpackages point one way: `stream` (frames in) -> `model` (network, inference, scoring)
-> `server` (the live service).
"""

__version__ = "0.1.0"
