"""/api/v1: count photos, browse and export the history, see and reload the model."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import FileResponse, Response, StreamingResponse
from starlette.concurrency import iterate_in_threadpool
from starlette.exceptions import HTTPException

from rookery.serving import service
from rookery.serving.budget import check_file_count
from rookery.serving.csv_export import counts_csv, detections_csv
from rookery.serving.deps import HolderDep, LimitsDep, MetricsDep, ModelDep, StoreDep, require_api_key
from rookery.serving.redact import redact
from rookery.serving.schemas import (
    ErrorBody,
    ModelDescription,
    Prediction,
    PredictionPage,
    PredictionSummary,
    PredictResponse,
    ReloadResponse,
)

_errors: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "The server has an API key and the request did not carry it."},
    422: {"model": ErrorBody, "description": "A parameter is out of range or missing."},
}
_not_found: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "No prediction has this id."}}
_not_ready: dict[int | str, dict[str, Any]] = {503: {"model": ErrorBody, "description": "The model is still loading."}}

predictions = APIRouter(tags=["predictions"])
model_router = APIRouter(tags=["model"])


@predictions.post(
    "/predict",
    response_model=PredictResponse,
    summary="Count objects on one or more photos",
    responses={
        400: {"model": ErrorBody, "description": "No file could be read as an image."},
        413: {"model": ErrorBody, "description": "The request or a photo is too large (bytes or pixels)."},
        415: {"model": ErrorBody, "description": "No file is a JPEG, PNG, TIFF, BMP or WebP image."},
        **_not_ready,
    },
)
def predict(
    files: Annotated[
        list[UploadFile], File(min_length=1, description="One or more photos (JPEG, PNG, TIFF, BMP, WebP).")
    ],
    model: ModelDep,
    store: StoreDep,
    limits: LimitsDep,
    metrics: MetricsDep,
    conf: Annotated[float | None, Form(ge=0.0, lt=1.0, description="Keep detections scoring at least this.")] = None,
    tile: Annotated[int | None, Form(ge=32, le=4096, description="Tile side in photo pixels (model's).")] = None,
    overlap: Annotated[int | None, Form(ge=0, le=2048, description="Overlap of tiles in pixels (model's).")] = None,
    return_image: Annotated[bool, Form(description="Include the annotated photo as base64 JPEG.")] = False,
) -> Any:
    """Each photo is counted, stored in the history and answered with its counts per class (each with its 90 %
    interval), boxes and timings. A file that is not a readable image is listed in `errors` and the others are
    counted; when no file can be counted the answer is a 4xx with the reason."""
    check_file_count(len(files))
    params = service.PredictParams(conf=conf, tile=tile, overlap=overlap, return_image=return_image)
    uploads = ((f.filename, f.file) for f in files)
    return service.predict_files(uploads, params, model, store, limits, metrics)


@predictions.get("/predictions", response_model=PredictionPage, summary="The history, newest first")
def list_predictions(
    store: StoreDep,
    holder: HolderDep,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Any:
    records, total = store.page(page, per_page)
    model = holder.current
    items = [PredictionSummary.of(r, run_id=service.run_id_for(r, model)) for r in records]
    return PredictionPage(items=items, total=total, page=page, per_page=per_page)


@predictions.get(
    "/predictions.csv",
    summary="The whole history as CSV",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/csv": {}},
            "description": "id,created_at,file_name,model_version,<classes>,total, then each count's interval: "
            "<class>_lo,<class>_hi,...,total_lo,total_hi (empty for predictions stored without one)",
        }
    },
)
def export_csv(store: StoreDep, holder: HolderDep) -> StreamingResponse:
    current = holder.current
    names = current.class_names if current is not None else ()
    rows = iterate_in_threadpool(service.history_csv(store, names))
    headers = {"Content-Disposition": 'attachment; filename="rookery-predictions.csv"'}
    return StreamingResponse(rows, media_type="text/csv; charset=utf-8", headers=headers)


@predictions.get(
    "/predictions/{prediction_id}", response_model=Prediction, summary="One prediction", responses=_not_found
)
def get_prediction(prediction_id: str, store: StoreDep, holder: HolderDep) -> Any:
    record = store.get(prediction_id)
    if record is None:
        raise HTTPException(404, f"no prediction has the id {prediction_id[:64]!r}")
    return Prediction.of(record, run_id=service.run_id_for(record, holder.current))


@predictions.get(
    "/predictions/{prediction_id}/{kind}.csv",
    summary="One prediction's counts (with intervals) or detections as CSV",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}, **_not_found},
)
def get_prediction_csv(prediction_id: str, kind: Literal["counts", "detections"], store: StoreDep) -> Response:
    """The columns of `rookery predict`'s counts.csv and detections.csv; text cells never start a formula."""
    record = store.get(prediction_id)
    if record is None:
        raise HTTPException(404, f"no prediction has the id {prediction_id[:64]!r}")
    text = counts_csv(record) if kind == "counts" else detections_csv(record)
    name = f"rookery-{record.id[:8]}-{kind}.csv"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return Response(text, media_type="text/csv; charset=utf-8", headers=headers)


@predictions.get(
    "/predictions/{prediction_id}/image",
    summary="The annotated photo of a prediction",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}, **_not_found},
)
def get_prediction_image(prediction_id: str, store: StoreDep) -> Response:
    missing = f"no annotated image for the prediction {prediction_id[:64]!r}"
    return _stored_file(store.file_path(prediction_id, "annotated"), "image/jpeg", missing)


_CHUNK_BYTES = 256 * 1024
_UPLOAD_TYPES = {
    ".jpg": "image/jpeg",
    ".png": "image/png",
    ".tif": "image/tiff",
    ".bmp": "image/bmp",
    ".webp": "image/webp",
}


@predictions.get(
    "/predictions/{prediction_id}/upload",
    summary="The uploaded photo of a prediction, as it was sent",
    response_class=FileResponse,
    responses={200: {"content": {t: {} for t in _UPLOAD_TYPES.values()}}, **_not_found},
)
def get_prediction_upload(prediction_id: str, store: StoreDep) -> Response:
    path = store.file_path(prediction_id, "upload")
    media_type = _UPLOAD_TYPES.get(path.suffix, "application/octet-stream") if path is not None else ""
    return _stored_file(path, media_type, f"no uploaded photo for the prediction {prediction_id[:64]!r}")


def _stored_file(path: Path | None, media_type: str, missing: str) -> Response:
    """The file, opened here: a prediction deleted after its path was looked up is a 404, never a 500 (once open,
    the file is read to its end even if it is deleted meanwhile)."""
    if path is None:
        raise HTTPException(404, missing)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise HTTPException(404, missing) from None
    size = os.fstat(handle.fileno()).st_size

    def chunks() -> Iterator[bytes]:
        with handle:
            while chunk := handle.read(_CHUNK_BYTES):
                yield chunk

    headers = {"Cache-Control": "private, max-age=86400", "Content-Length": str(size)}
    return StreamingResponse(chunks(), media_type=media_type, headers=headers)


@predictions.delete(
    "/predictions/{prediction_id}", status_code=204, summary="Delete a prediction and its images", responses=_not_found
)
def delete_prediction(prediction_id: str, store: StoreDep) -> Response:
    if not store.delete(prediction_id):
        raise HTTPException(404, f"no prediction has the id {prediction_id[:64]!r}")
    return Response(status_code=204)


@model_router.get("/model", response_model=ModelDescription, summary="The model that answers", responses=_not_ready)
def get_model(model: ModelDep, holder: HolderDep) -> Any:
    return holder.describe(model)


@model_router.post(
    "/model/reload",
    response_model=ReloadResponse,
    summary="Check the registry now and swap in the alias's new version",
    responses=_not_ready,
)
def reload_model(holder: HolderDep) -> Any:
    """Returns when the check is done: `changed` is true when a new version was loaded, warmed and swapped in.
    A version that fails to load leaves the current one serving (503 with the reason)."""
    from rookery.errors import RookeryError

    try:
        changed = holder.check()
    except RookeryError as e:
        raise HTTPException(503, redact(str(e))) from e
    model = holder.current
    if model is None:  # pragma: no cover - check() either loads a model or raises
        raise HTTPException(503, "the model is not loaded")
    return {"changed": changed, "model": holder.describe(model)}


router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_api_key)], responses=_errors)
router.include_router(predictions)
router.include_router(model_router)
