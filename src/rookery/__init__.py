"""rookery: count many small, similar objects in large photos.

    import rookery
    model = rookery.load("models:/rookery@champion")   # or a .pt/.onnx file
    result = model.count("photo.jpg")
    result.counts, result.intervals, result.points

`import rookery` imports no torch, MLflow or Ultralytics (tests/test_architecture.py): the counting stack is
imported on the first `load`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rookery.api import Model

__version__ = "0.1.0"
__all__ = ["__version__", "load"]


def load(uri: str, backend: str = "auto", device: str = "auto", **options: Any) -> Model:
    """Load the model behind `uri` once: models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/model, or a
    .pt/.onnx file. `model.count(photo)` then counts a path, an RGB numpy array or a PIL image (rookery.api)."""
    from rookery.api import load as _load

    return _load(uri, backend=backend, device=device, **options)
