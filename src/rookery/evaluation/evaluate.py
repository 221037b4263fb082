"""One evaluation of a model: counts and intervals on whole photos, the class confusion of its detections,
box mAP on tiles, files, and the MLflow run.

    evalset = truth.from_dataset(dataset, "test")[1]            # or truth.from_points(...)
    ev = evaluate(predictor, info, evalset, out, dataset=dataset, split="test")
    ev.metrics.competition_rmse, ev.detection.map50_95, ev.confusion, ev.files

The library takes a ready Predictor (and the ModelInfo that says where it came from); the CLI loads it.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rookery import __version__
from rookery.errors import InputError, RookeryError
from rookery.evaluation.confusion import Confusion
from rookery.evaluation.counting import CountingMetrics, CountingResult, count_photos
from rookery.evaluation.detection import DetectionMetrics
from rookery.evaluation.intervals import intervals_dict
from rookery.evaluation.report import write_report
from rookery.evaluation.truth import EvalSet, class_mismatch
from rookery.inference.options import PredictOptions

if TYPE_CHECKING:
    from rookery.inference.loading import ModelInfo
    from rookery.inference.predictor import Predictor

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    counting: CountingResult
    metrics: CountingMetrics
    detection: DetectionMetrics | None
    files: list[Path]
    payload: dict[str, Any]  # the content of metrics.json
    detection_note: str | None = None  # why there is no box mAP, when there is none
    run_id: str | None = None  # the MLflow run it was logged into
    log_problems: list[str] = field(default_factory=list)
    confusion: Confusion | None = None  # detections matched to true points, summed over photos
    confusion_note: str | None = None  # why there is no confusion matrix, when there is none
    intervals: dict[str, Any] | None = None  # level and coverage of the count intervals (intervals.py)
    info: ModelInfo | None = None


def scaled_options(options: PredictOptions, scale: float) -> PredictOptions:
    """Options for photos at their own resolution when the model was trained on photos resized by `scale`.

    A tile of `tile / scale` photo pixels resized to the network's input shows the animals at the size
    the network was trained on (the same ratio of network pixels per animal).
    """
    if scale == 1.0:
        return options
    imgsz = options.imgsz or options.tile
    tile = max(1, round(options.tile / scale))
    return options.with_overrides(tile=tile, overlap=min(tile - 1, round(options.overlap / scale)), imgsz=imgsz)


def evaluate(
    predictor: Predictor,
    info: ModelInfo | None,
    evalset: EvalSet,
    out: Path,
    dataset: Path | None = None,
    split: str = "test",
    box_map: bool = True,
    map_device: str | None = None,
    log_run: bool = True,
    tracking_uri: str | None = None,
    data_info: dict[str, Any] | None = None,
) -> Evaluation:
    """Count every photo of `evalset`, compare with its ground truth, and write the report into `out`.

    With `dataset` and .pt weights, also the box mAP on the split's tiles. With `log_run` and a model
    that came from an MLflow run (info.run_id), the metrics and files are logged into that run.
    """
    if why := class_mismatch(predictor.class_names, evalset.classes):
        raise InputError(f"{why}; evaluate a model trained on these classes")
    counting = count_photos(predictor, evalset.photos, evalset.box_sides)
    counting.skipped[:0] = evalset.skipped  # those that never reached the predictor first
    if not counting.images:
        first = f" (first: {counting.skipped[0]})" if counting.skipped else ""
        raise InputError(f"none of the {len(counting.skipped)} photo(s) could be evaluated{first}")
    metrics = counting.metrics()
    confusion = counting.confusion()
    confusion_note = None
    if confusion is None:
        confusion_note = (
            "needs the photos' true points (--points); a data set records per-photo counts only"
            if dataset is not None
            else "no evaluated photo has its true points"
        )
    elif confusion.photos < len(counting.images):
        confusion_note = f"over the {confusion.photos} of {len(counting.images)} photos whose true points are known"
    true, pred = counting.arrays()
    intervals = (
        intervals_dict(counting.classes, true, pred, counting.interval_array(), counting.level)
        if counting.has_intervals
        else None
    )

    detection, note = None, None
    if not box_map:
        note = "not asked for"
    elif dataset is None:
        note = "needs --data (the tiles and box labels of a built data set)"
    elif info is None or info.weights.suffix != ".pt":
        note = "needs the model's .pt weights"
    else:
        detection, note = _box_map(info, dataset, evalset.classes, split, map_device)

    payload: dict[str, Any] = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "rookery_version": __version__,
        "model": _model_dict(predictor, info),
        "data": {**(data_info or {}), "split": split if dataset is not None else None},
        "counting": metrics.to_dict(),
        "detection": None if detection is None else detection.to_dict(),
        "detection_note": note,
        "intervals": intervals,
        "confusion": None if confusion is None else confusion.to_dict(),
        "confusion_note": confusion_note,
        "skipped": [{"item": s.item, "reason": s.reason} for s in counting.skipped],
        "warnings": list(evalset.warnings),
    }
    files = write_report(out, counting, payload)
    ev = Evaluation(
        counting,
        metrics,
        detection,
        files,
        payload,
        detection_note=note,
        confusion=confusion,
        confusion_note=confusion_note,
        intervals=intervals,
        info=info,
    )

    if log_run and info is not None and info.run_id:
        from rookery.config import get_settings
        from rookery.packaging.evaluation_log import log_evaluation

        values = {**metrics.mlflow_metrics(), **({} if detection is None else detection.mlflow_metrics())}
        if confusion is not None:
            values.update(confusion.mlflow_metrics())
        if intervals is not None and intervals["coverage"] is not None:
            values["eval/interval_coverage"] = intervals["coverage"]
        tags = {
            "rookery.eval.created": payload["created"],
            "rookery.eval.split": payload["data"]["split"] or "",
            "rookery.eval.data": (data_info or {}).get("dataset") or (data_info or {}).get("images") or "",
            "rookery.eval.dataset_fingerprint": (data_info or {}).get("fingerprint") or "",
            "rookery.eval.model_uri": info.uri,
            "rookery.eval.conf": predictor.options.conf,
        }
        uri = tracking_uri or get_settings().tracking_uri
        ev.log_problems = log_evaluation(uri, info.run_id, values, tags, files)
        ev.run_id = info.run_id
    return ev


def _box_map(
    info: ModelInfo, dataset: Path, classes: list[str], split: str, device: str | None
) -> tuple[DetectionMetrics | None, str | None]:
    """The box mAP, or None and why not: a failure here costs the mAP, not the counting evaluation."""
    from rookery.evaluation.detection import box_map

    try:
        imgsz = info.imgsz or info.tile
        return box_map(info.weights, dataset, classes, split=split, imgsz=imgsz, device=device), None
    except RookeryError as e:
        log.warning("no box mAP: %s", e)
        return None, str(e)


def _model_dict(predictor: Predictor, info: ModelInfo | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "class_names": list(predictor.class_names),
        "backend": predictor.backend_name,
        "device": predictor.device,
        "options": asdict(predictor.options),
    }
    if info is not None:
        out.update(
            uri=info.uri,
            name=info.name,
            version=info.version,
            alias=info.alias,
            run_id=info.run_id,
            weights=str(info.weights),
        )
    return out
