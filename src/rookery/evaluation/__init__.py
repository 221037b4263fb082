"""Evaluation of a counting model: per-class counting error on whole photos, count intervals and their
coverage, the class confusion of detections matched to true points, box mAP on tiles, reports.

    from rookery.evaluation import counting_metrics
    m = counting_metrics(true, pred, classes)    # (photos, classes) arrays -> MAE, RMSE, competition RMSE
    pairs = match_points(true_xy, pred_xy, 12.0)  # one-to-one within a radius; confusion_matrix(...) counts them

Importing this package imports neither torch, ultralytics nor mlflow; box mAP and run logging do.
"""

from rookery.evaluation.confusion import Confusion, confusion_matrix, match_points
from rookery.evaluation.counting import (
    CountingMetrics,
    CountingResult,
    competition_rmse,
    count_photos,
    counting_metrics,
    mae,
    rmse,
)
from rookery.evaluation.evaluate import Evaluation, evaluate, scaled_options
from rookery.evaluation.intervals import interval_coverage
from rookery.evaluation.summary import summary, write_summary
from rookery.evaluation.truth import EvalPhoto, EvalSet, from_dataset, from_points

__all__ = [
    "Confusion",
    "CountingMetrics",
    "CountingResult",
    "EvalPhoto",
    "EvalSet",
    "Evaluation",
    "competition_rmse",
    "confusion_matrix",
    "count_photos",
    "counting_metrics",
    "evaluate",
    "from_dataset",
    "from_points",
    "interval_coverage",
    "mae",
    "match_points",
    "rmse",
    "scaled_options",
    "summary",
    "write_summary",
]
