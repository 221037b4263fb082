"""POST /invocations: MLflow's scoring protocol, so MLflow clients and tools work against `rookery serve` unchanged.

The request is parsed, checked against the pyfunc model's signature and answered by MLflow's own scoring-server
functions (dataframe_split, dataframe_records, inputs, instances; JSON or CSV), and the rows are made by the same
`predict_frame` as the packaged pyfunc model (rookery.packaging.pyfunc): for the same input, the answer is what
`mlflow models serve` returns for the registered model, {"predictions": [{"image", "class", "score", "x1", ...}]}.
Unlike `mlflow models serve`, images go through the server's upload limits, one inference runs at a time and the
model follows its registry alias.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from rookery.errors import ConfigError, RookeryError
from rookery.imaging import sniff_image_type
from rookery.serving.budget import check_file_count
from rookery.serving.deps import LimitsDep, MetricsDep, ModelDep, require_api_key
from rookery.serving.metrics import Metrics
from rookery.serving.model_holder import LoadedModel
from rookery.serving.schemas import ErrorBody, Invocations
from rookery.serving.service import Limits
from rookery.serving.uploads import UploadError, decode_upload, header_size

_B64 = {"type": "string", "description": "base64 of the image file's bytes (JPEG, PNG, TIFF, BMP, WebP)"}
_ROW = {"type": "object", "properties": {"image": _B64}, "required": ["image"]}
_REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "description": "Exactly one of dataframe_split, dataframe_records, inputs or instances; "
                "each row is one photo. `params` are optional.",
                "properties": {
                    "dataframe_split": {
                        "type": "object",
                        "properties": {
                            "columns": {"type": "array", "items": {"type": "string"}},
                            "data": {"type": "array", "items": {"type": "array", "items": _B64}},
                        },
                    },
                    "dataframe_records": {"type": "array", "items": _ROW},
                    "inputs": {"type": "object", "properties": {"image": {"type": "array", "items": _B64}}},
                    "instances": {"type": "array", "items": _ROW},
                    "params": {
                        "type": "object",
                        "properties": {
                            "conf": {"type": "number"},
                            "iou": {"type": "number"},
                            "tile": {"type": "integer"},
                            "overlap": {"type": "integer"},
                        },
                    },
                },
                "example": {
                    "dataframe_split": {"columns": ["image"], "data": [["<base64>"]]},
                    "params": {"conf": 0.25},
                },
            }
        },
        "text/csv": {"schema": {"type": "string", "description": "A CSV with a column 'image' of base64 text."}},
    },
}

router = APIRouter(tags=["mlflow"], dependencies=[Depends(require_api_key)])


@router.post(
    "/invocations",
    response_model=Invocations,
    summary="MLflow scoring protocol (same input and output as the registered pyfunc model)",
    openapi_extra={"requestBody": _REQUEST_BODY},
    responses={
        400: {"model": ErrorBody, "description": "The body is not a valid scoring request or an image is bad."},
        413: {"model": ErrorBody, "description": "The body or an image is too large."},
        415: {"model": ErrorBody, "description": "Not JSON or CSV, or an image is not an image."},
        503: {"model": ErrorBody, "description": "The model is still loading."},
    },
)
async def invocations(request: Request, model: ModelDep, limits: LimitsDep, metrics: MetricsDep) -> Response:
    body = await request.body()  # at most the request limit (uploads.BodySizeLimit)
    content_type = request.headers.get("content-type", "")
    try:
        text = await run_in_threadpool(score, body, content_type, model, limits, metrics)
    except RookeryError as e:  # ScoringRejected among them: MLflow's status and error code
        metrics.error(getattr(e, "kind", "config" if isinstance(e, ConfigError) else "bad_input"))
        status = getattr(e, "status_code", 422 if isinstance(e, ConfigError) else 400)
        return _error(status, getattr(e, "error_code", "BAD_REQUEST"), str(e))
    return Response(text, media_type="application/json")


class UnsupportedMediaType(UploadError):
    status_code = 415
    kind = "unsupported_type"


def score(body: bytes, content_type: str, model: LoadedModel, limits: Limits, metrics: Metrics | None = None) -> str:
    """The scoring server's steps with rookery's model: parse, enforce the signature, predict, format."""
    from rookery.packaging.pyfunc import image_bytes, predict_frame
    from rookery.packaging.scoring import mlflow_errors, parse_request, predictions_json

    mime = content_type.split(";")[0].strip().lower()
    if mime == "text/csv":
        try:
            text: bytes | str = body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise UnsupportedMediaType("the CSV body is not UTF-8 text") from e
    elif mime == "application/json":
        text = body
    else:
        raise UnsupportedMediaType(
            f"send the scoring request as application/json (or text/csv), not {mime or 'no content type'}"
        )
    frame, params = parse_request(text, mime, model.info.tile, model.info.overlap)
    with mlflow_errors():  # a row that is not base64 is MLflow's INVALID_PARAMETER_VALUE, as in its server
        _check_work(frame, params, model, limits)

    def decode(value: object, row: int) -> Any:  # one photo at a time: rows are decoded as the model takes them
        raw = image_bytes(value, row)
        return decode_upload(f"row {row}", raw, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels).image

    with limits.slots, mlflow_errors():  # counts as one photo in flight (the rows go through one by one)
        predictions = predict_frame(model, frame, params, decode=decode)
    if metrics is not None:
        _count(metrics, model, len(frame), predictions)
    return predictions_json(predictions)


def _check_work(frame: Any, params: dict[str, Any] | None, model: LoadedModel, limits: Limits) -> None:
    """The limits of /api/v1/predict before any row is decoded: files per request, tile and overlap, and the
    request's work budget (from each image's header)."""
    from rookery.packaging.pyfunc import image_bytes

    check_file_count(len(frame))
    options = {k: params[k] for k in ("conf", "iou", "tile", "overlap") if params and params.get(k) is not None}
    model.check_options(**options)
    budget = limits.budget(model, options)
    if "image" not in getattr(frame, "columns", ()):
        return  # predict_frame says what is missing
    for row, value in enumerate(frame["image"].tolist()):
        raw = image_bytes(value, row)
        name = f"row {row}"
        if raw and len(raw) <= limits.max_bytes and sniff_image_type(raw) is not None:
            budget.add(name, *header_size(name, raw, limits.max_pixels))


def _count(metrics: Metrics, model: LoadedModel, images: int, predictions: Any) -> None:
    """Photos and objects counted through /invocations, in the same metrics as /api/v1/predict."""
    metrics.images.inc(images)
    for name, n in predictions["class"].value_counts().items():
        metrics.objects.labels(str(name)).inc(int(n))


def _error(status: int, code: str, message: str) -> JSONResponse:
    # `detail` like every rookery error; `error_code` and `message` like MLflow's scoring server.
    return JSONResponse({"detail": message, "error_code": code, "message": message}, status_code=status)
