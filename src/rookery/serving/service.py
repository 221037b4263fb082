"""What the API routes do, in the four steps of a model server: decode the request, predict, store, encode.

Routes stay a few lines: they parse HTTP, call these functions (in FastAPI's thread pool, as everything here
blocks: decoding, inference, drawing, the history database) and return the result.
"""

from __future__ import annotations

import base64
import csv
import io
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import cv2

from rookery.config import Settings
from rookery.errors import RookeryError
from rookery.imaging import sniff_image_type
from rookery.serving import schemas
from rookery.serving.budget import Budget, Tiling, WorkTooLarge, check_tiling
from rookery.serving.csv_export import safe_cell
from rookery.serving.metrics import Metrics
from rookery.serving.model_holder import LoadedModel
from rookery.serving.store import PredictionStore, StoredPrediction
from rookery.serving.uploads import UploadError, decode_upload, display_name, header_size, max_upload_bytes

_JPEG_QUALITY = 85
_LISTED_FAILURES = 5  # failures named in the message when every file of a request failed


@dataclass(frozen=True)
class PredictParams:
    conf: float | None = None
    tile: int | None = None
    overlap: int | None = None
    return_image: bool = False


PHOTOS_IN_FLIGHT = 2  # decoded photos per process: one in the model, the next one decoded and waiting


@dataclass(frozen=True)
class Limits:
    """An app's limits: bytes and pixels per photo, work per request, and how many decoded photos may wait for the
    model.

    Requests run in a pool of threads (40); without `slots`, each could decode a 60 MB survey photo and queue
    it for the one inference at a time. With it, at most PHOTOS_IN_FLIGHT photos are decoded and not yet
    counted; drawing and storing a result happen outside, overlapping the next photo's inference.
    """

    max_bytes: int
    max_pixels: int
    min_tile: int = 64
    max_request_pixels: int = 1_000_000_000
    max_request_work: int = 2_000_000_000
    max_per_photo: int = 20_000
    slots: threading.Semaphore = field(default_factory=lambda: threading.BoundedSemaphore(PHOTOS_IN_FLIGHT))

    @classmethod
    def of(cls, max_upload_mb: float, max_pixels: int) -> Limits:
        return cls(max_upload_bytes(max_upload_mb), max_pixels)

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_upload_bytes(settings.max_upload_mb),
            settings.max_pixels,
            min_tile=settings.min_tile,
            max_request_pixels=int(settings.max_request_megapixels * 1e6),
            max_request_work=int(settings.max_request_work_megapixels * 1e6),
            max_per_photo=settings.max_detections_per_photo,
        )

    def budget(self, model: LoadedModel, overrides: dict[str, Any]) -> Budget:
        """The work budget of one request with these options (checked: tile and overlap within bounds)."""
        options = model.predictor.options.with_overrides(**overrides)
        if "tile" in overrides or "overlap" in overrides:
            check_tiling(options.tile, options.overlap, self.min_tile)
        tiling = Tiling(options.tile, options.overlap, options.imgsz or options.tile)
        return Budget(tiling, self.max_request_pixels, self.max_request_work)


def overrides_for(model: LoadedModel, params: PredictParams) -> dict[str, Any]:
    """Per-request options for the Predictor, checked at once (a ConfigError -> 422 before any decoding).

    A tile other than the model's keeps the network's view of the objects: the network input is scaled by the
    ratio the model was trained with, as `rookery predict --tile` does.
    """
    overrides: dict[str, Any] = {}
    if params.conf is not None:
        overrides["conf"] = params.conf
    if params.tile is not None:
        overrides["tile"] = params.tile
        info = model.info
        if info.imgsz is not None and info.tile:
            overrides["imgsz"] = max(1, round(params.tile * info.imgsz / info.tile))
    if params.overlap is not None:
        overrides["overlap"] = params.overlap
    model.check_options(**overrides)
    return overrides


def predict_files(
    files: Iterable[tuple[str | None, BinaryIO]],
    params: PredictParams,
    model: LoadedModel,
    store: PredictionStore,
    limits: Limits,
    metrics: Metrics,
) -> schemas.PredictResponse:
    """Count each uploaded photo; a bad file is reported by name and the others are counted.

    Returns the results and the files that failed; raises the files' UploadError when none could be counted.
    """
    overrides = overrides_for(model, params)
    budget = limits.budget(model, overrides)
    failures: list[tuple[str, UploadError | RookeryError]] = []
    # First the headers of every file (no pixel decoded): the whole request's work is refused before any starts.
    checked: list[tuple[str | None, bytes]] = []
    for file_name, stream in files:
        data = stream.read(limits.max_bytes + 1)  # never more than the limit (the body limit applies too)
        name = display_name(file_name)
        try:
            if data and len(data) <= limits.max_bytes and sniff_image_type(data) is not None:
                budget.add(name, *header_size(name, data, limits.max_pixels))
        except WorkTooLarge:
            raise
        except RookeryError as e:
            failures.append((name, e))
            metrics.error(getattr(e, "kind", "bad_image"))
            continue
        checked.append((file_name, data))
    results: list[schemas.Prediction] = []
    for file_name, data in checked:
        try:
            results.append(_predict_one(file_name, data, overrides, params.return_image, model, store, limits, metrics))
        except RookeryError as e:  # UploadError, or the Predictor refusing this photo
            failures.append((display_name(file_name), e))
            metrics.error(getattr(e, "kind", "bad_image"))
    if failures and not results:
        raise _all_failed(failures)
    errors = [schemas.FileError(file_name=name, detail=str(e)) for name, e in failures]
    return schemas.PredictResponse(results=results, errors=errors)


def _predict_one(
    file_name: str | None,
    data: bytes,
    overrides: dict[str, Any],
    return_image: bool,
    model: LoadedModel,
    store: PredictionStore,
    limits: Limits,
    metrics: Metrics,
) -> schemas.Prediction:
    started = time.perf_counter()
    with limits.slots:
        decoded = decode_upload(file_name, data, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels)
        t0 = time.perf_counter()
        boxes, capped = model.predict_capped(decoded.image, **overrides)
        inference_s = time.perf_counter() - t0
    names = model.class_names
    t0 = time.perf_counter()
    annotated = _annotated_jpeg(decoded.image, boxes, names)
    render_ms = (time.perf_counter() - t0) * 1000.0
    timings = {
        "decode": round(decoded.decode_ms, 2),
        "inference": round(inference_s * 1000.0, 2),
        "render": round(render_ms, 2),
        "total": round((time.perf_counter() - started) * 1000.0, 2),
    }
    prediction = model.predictor.prediction(
        file_name or "",  # the store keeps a sanitised last part, for display only
        boxes,
        conf_overridden="conf" in overrides,
        width=decoded.width,
        height=decoded.height,
        image_sha256=decoded.sha256,
        model=model.info.ref,
        timings_ms=timings,
    )
    stored = store.add(prediction, upload=data, annotated_jpeg=annotated)
    counts = [int(n) for n in prediction.count_array()]
    metrics.counted(names, counts, inference_s)
    annotated_b64 = base64.b64encode(annotated).decode("ascii") if return_image and annotated else None
    note = model.empty_result_note() if prediction.total == 0 else None
    return schemas.Prediction.of(
        stored, run_id=model.info.run_id, annotated_image=annotated_b64, capped=capped, note=note
    )


def _annotated_jpeg(image: Any, boxes: Any, names: tuple[str, ...]) -> bytes | None:
    from rookery.inference.render import render

    ok, buf = cv2.imencode(".jpg", render(image, boxes, names), [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
    return buf.tobytes() if ok else None


def _all_failed(failures: list[tuple[str, UploadError | RookeryError]]) -> RookeryError:
    """One error for a request whose files all failed, with the status of the first failure."""
    first = failures[0][1]
    if len(failures) == 1:
        setattr(first, "counted", True)  # noqa: B010  (counted per file above; not again by the error handler)
        return first
    listed = "; ".join(f"{e}" for _, e in failures[:_LISTED_FAILURES])
    more = f"; and {len(failures) - _LISTED_FAILURES} more" if len(failures) > _LISTED_FAILURES else ""
    error = UploadError(f"none of the {len(failures)} files could be counted: {listed}{more}")
    error.status_code = getattr(first, "status_code", UploadError.status_code)
    error.counted = True
    return error


# --- records -> API bodies ----------------------------------------------------------------------------------------


def run_id_for(stored: StoredPrediction, model: LoadedModel | None) -> str | None:
    """The run of the version that made a record, when it is the version loaded now (the history keeps no run id)."""
    made_by = stored.prediction.model
    if model is None or made_by.version is None:
        return None
    info = model.info
    same = (made_by.name, made_by.version) == (info.name, info.version)
    return info.run_id if same else None


def history_csv(store: PredictionStore, class_names: Iterable[str] = ()) -> Iterator[str]:
    """id,created_at,file_name,model_version,<class columns>,total, then the intervals' block <class>_lo,<class>_hi
    ...,total_lo,total_hi (the block of `rookery predict`'s counts.csv; empty cells where a record has no interval
    for a class). The current model's classes first, then any other class found in the history (two passes over
    the history; nothing is held in memory but the names)."""
    columns = list(dict.fromkeys(class_names))
    seen = set(columns)
    for stored in store.iter_all():
        for name in stored.prediction.class_names:
            if name not in seen:
                seen.add(name)
                columns.append(name)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    ends = [f"{c}_{end}" for c in (*columns, "total") for end in ("lo", "hi")]
    writer.writerow(["id", "created_at", "file_name", "model_version", *columns, "total", *ends])
    yield flush()
    for stored in store.iter_all():
        record = stored.prediction
        have = record.counts
        counts = [have.get(c, 0) for c in columns]
        name = safe_cell(record.image)
        row = [stored.id, stored.created_at.isoformat(), name, record.model.version or "", *counts, record.total]
        iv = record.intervals
        if iv is None:
            bounds: list[Any] = [""] * len(ends)
        else:
            bounds = [v for c in columns for v in iv.classes.get(c, ("", ""))] + list(iv.total)
        writer.writerow([*row, *bounds])
        yield flush()
