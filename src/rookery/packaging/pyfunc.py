"""rookery's MLflow pyfunc model: whole photos in (base64 image bytes), one row per detection out.

Input: a DataFrame with a string column `image` holding base64-encoded image bytes (JPEG, PNG, ...).
Params: `conf`, `iou`, `tile`, `overlap`. Output: one row per detection with
`image` (row index of the input), `class`, `score`, `x1`, `y1`, `x2`, `y2` (pixels of that photo).
So `mlflow.pyfunc.load_model(uri).predict(df)` and `mlflow models serve` both count whole photos with the
same sliced inference engine that rookery uses itself.
"""

from __future__ import annotations

import base64
import binascii
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc.model import PythonModel
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec

OUTPUT_COLUMNS = ["image", "class", "score", "x1", "y1", "x2", "y2"]


def signature(tile: int, overlap: int) -> ModelSignature:
    inputs: list[ColSpec | TensorSpec] = [ColSpec("string", "image")]
    outputs: list[ColSpec | TensorSpec] = [ColSpec("long", "image"), ColSpec("string", "class")]
    outputs += [ColSpec("double", c) for c in ("score", "x1", "y1", "x2", "y2")]
    params = [
        ParamSpec("conf", "double", 0.25),
        ParamSpec("iou", "double", 0.5),
        ParamSpec("tile", "long", tile),
        ParamSpec("overlap", "long", overlap),
    ]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs), params=ParamSchema(params))


def encode_image(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def image_bytes(value: object, row: int) -> bytes:
    """Base64 text -> the image file's bytes; bad text raises a 4xx-mapped MlflowException naming the row."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError) as e:
        raise MlflowException(f"row {row}: 'image' is not base64 text", INVALID_PARAMETER_VALUE) from e


def decode_image(value: object, row: int) -> np.ndarray:
    """Base64 text -> BGR array; a bad row raises a 4xx-mapped MlflowException naming the row."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    from rookery.errors import InputError
    from rookery.imaging import decode_image as decode_bytes

    raw = image_bytes(value, row)
    try:  # rookery's one decoder: the header's pixel count is checked before decoding (decompression bombs)
        return decode_bytes(raw, f"row {row}: 'image'")
    except InputError as e:
        raise MlflowException(str(e), INVALID_PARAMETER_VALUE) from e


class RookeryModel(PythonModel):
    """Loads the Predictor once (ONNX Runtime on CPU when the ONNX file is there, PyTorch otherwise)."""

    def load_context(self, context: Any) -> None:
        from rookery.inference.loading import predictor_from_meta

        meta = json.loads(Path(context.artifacts["meta"]).read_text())
        self.meta = meta
        weights = context.artifacts.get("onnx") or context.artifacts["weights"]
        self.predictor = predictor_from_meta(Path(weights), meta)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return predict_frame(self.predictor, model_input, params)


def predict_frame(
    predictor: Any,
    model_input: pd.DataFrame,
    params: dict[str, Any] | None = None,
    decode: Callable[[object, int], np.ndarray] = decode_image,
) -> pd.DataFrame:
    """The pyfunc's input -> output: one row per detection of each base64 `image` row.

    Shared with `rookery serve`'s POST /invocations, which passes its own `predictor` (anything with
    `class_names` and `predict(image, **options)`) and `decode` (with its upload limits).
    """
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    if not isinstance(model_input, pd.DataFrame) or "image" not in model_input.columns:
        raise MlflowException("input needs a column 'image' of base64-encoded image bytes", INVALID_PARAMETER_VALUE)
    params = params or {}
    options = {k: params[k] for k in ("conf", "iou", "tile", "overlap") if params.get(k) is not None}
    names = predictor.class_names
    frames = []
    for row, value in enumerate(model_input["image"].tolist()):
        boxes = predictor.predict(decode(value, row), **options)
        frames.append(
            pd.DataFrame(
                {
                    "image": np.full(len(boxes), row, dtype=np.int64),
                    "class": [names[c] for c in boxes.cls],
                    "score": boxes.score if boxes.score is not None else np.ones(len(boxes)),
                    "x1": boxes.xyxy[:, 0],
                    "y1": boxes.xyxy[:, 1],
                    "x2": boxes.xyxy[:, 2],
                    "y2": boxes.xyxy[:, 3],
                }
            )
        )
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in _DTYPES.items()})
    return pd.concat(frames, ignore_index=True).astype(_DTYPES)


_DTYPES = {
    "image": "int64",
    "class": "object",
    "score": "float64",
    "x1": "float64",
    "y1": "float64",
    "x2": "float64",
    "y2": "float64",
}


def _example_image() -> str:
    import cv2

    ok, buf = cv2.imencode(".jpg", np.full((96, 128, 3), 127, np.uint8))
    assert ok
    return encode_image(buf.tobytes())


def log_pyfunc_model(
    weights: Path,
    onnx: Path | None,
    class_names: list[str],
    tile: int,
    overlap: int,
    imgsz: int,
    registered_model_name: str | None = None,
    extra_meta: dict[str, Any] | None = None,
) -> str | None:
    """Log the model into the active run (and register a version); returns the version or None.

    `extra_meta` goes into rookery_model.json beside the geometry: the model family, its count calibration
    and ground resolution (rookery.inference.loading reads them back)."""
    import rookery

    with tempfile.TemporaryDirectory() as tmp:
        meta = Path(tmp) / "rookery_model.json"
        meta.write_text(
            json.dumps(
                {"class_names": class_names, "tile": tile, "overlap": overlap, "imgsz": imgsz, **(extra_meta or {})},
                indent=2,
            )
        )
        artifacts = {"weights": str(weights), "meta": str(meta)}
        if onnx is not None:
            artifacts["onnx"] = str(onnx)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=RookeryModel(),
            artifacts=artifacts,
            signature=signature(tile, overlap),
            input_example=pd.DataFrame({"image": [_example_image()]}),
            code_paths=[str(Path(rookery.__file__).parent)],
            pip_requirements=_requirements(),
            registered_model_name=registered_model_name,
        )
    version = info.registered_model_version
    _record_hashes(artifacts, registered_model_name, version)
    return None if version is None else str(version)


HASH_TAG = "rookery.sha256.{key}"  # e.g. rookery.sha256.weights: the sha256 of the file logged as that artifact


def _record_hashes(artifacts: dict[str, str], name: str | None, version: object) -> None:
    """Tag the run (and the registered version) with each weights file's sha256. Tags live in the tracking store,
    artifacts in the artifact store: whoever can replace a file in the artifact store cannot also change what it
    must hash to unless they can write the tracking store too, and rookery.inference.loading refuses a mismatch."""
    import hashlib

    tags = {}
    for key in ("weights", "onnx"):
        if key in artifacts:
            tags[HASH_TAG.format(key=key)] = hashlib.sha256(Path(artifacts[key]).read_bytes()).hexdigest()
    mlflow.set_tags(tags)
    if name and version is not None:
        client = mlflow.MlflowClient()
        for tag, value in tags.items():
            client.set_model_version_tag(name, str(version), tag, value)


def _requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for dist in (
        "mlflow",
        "ultralytics",
        "torch",
        "torchvision",
        "onnxruntime",
        "opencv-python",
        "pandas",
        "numpy",
        "pydantic",
        "pydantic-settings",
        "pyyaml",
        "rich",
        "typer",
        "pillow",
    ):
        try:
            pins.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            continue
    return pins
