"""Sliced, batched inference on whole photos: `Predictor.from_path(weights).predict(photo) -> Boxes`.

Importing this package does not import torch, onnxruntime or ultralytics; opening a backend does.
"""

from rookery.inference.backends import Backend, OnnxBackend, TorchBackend, open_backend
from rookery.inference.export import export_onnx
from rookery.inference.options import PredictOptions
from rookery.inference.predictor import Predictor

__all__ = [
    "Backend",
    "OnnxBackend",
    "PredictOptions",
    "Predictor",
    "TorchBackend",
    "export_onnx",
    "open_backend",
]
