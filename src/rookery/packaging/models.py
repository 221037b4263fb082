"""Load a model from any URI: `models:/NAME@ALIAS`, `models:/NAME/VERSION`, `runs:/RUN_ID/model`, or a file.

    predictor, info = load_predictor("models:/rookery@champion")   # or "runs:/<id>/model", "best.onnx"

An MLflow model is downloaded once into `<home>/cache/models/` (rookery.packaging.resolve) and reused on later
calls; a file is read where it is (rookery.inference.loading). mlflow is imported only for MLflow URIs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rookery.errors import ConfigError
from rookery.inference.loading import ModelInfo, build_predictor, model_from_folder, resolve_file
from rookery.packaging.resolve import URI_FORMS, fetch_model, is_mlflow_uri

if TYPE_CHECKING:
    from rookery.inference.predictor import Predictor


def resolve_model(uri: str, tracking_uri: str | None = None) -> ModelInfo:
    """Find (and for MLflow URIs download, once) the model behind `uri`, without loading the network."""
    uri = str(uri).strip()
    if is_mlflow_uri(uri):
        from rookery.config import get_settings

        settings = get_settings()
        fetched = fetch_model(uri, tracking_uri or settings.tracking_uri, settings.home / "cache" / "models")
        return model_from_folder(
            uri, fetched.folder, name=fetched.name, version=fetched.version, alias=fetched.alias,
            run_id=fetched.run_id, sha256=fetched.sha256,
        )  # fmt: skip
    if "://" in uri or uri.startswith(("models:", "runs:")):
        raise ConfigError(f"model URI {uri!r} is not one of {URI_FORMS}")
    return resolve_file(Path(uri).expanduser())


def load_predictor(
    uri: str,
    backend: str = "auto",
    device: str = "auto",
    tracking_uri: str | None = None,
    **options: Any,
) -> tuple[Predictor, ModelInfo]:
    """The Predictor for `uri`, built with the model's tile/overlap/imgsz unless `options` say otherwise.

    `options` are PredictOptions fields (tile, overlap, conf, iou, batch, merge, imgsz); None values are
    ignored, so a CLI can pass its options straight through.
    """
    return build_predictor(resolve_model(uri, tracking_uri), backend, device, **options)
