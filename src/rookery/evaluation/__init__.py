"""Evaluation of a counting model: per-class counting error on whole photos, box mAP on tiles, reports.

    from rookery.evaluation import counting_metrics
    m = counting_metrics(true, pred, classes)    # (photos, classes) arrays -> MAE, RMSE, competition RMSE

Importing this package imports neither torch, ultralytics nor mlflow; box mAP and run logging do.
"""

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
from rookery.evaluation.truth import EvalPhoto, EvalSet, from_dataset, from_points

__all__ = [
    "CountingMetrics",
    "CountingResult",
    "EvalPhoto",
    "EvalSet",
    "Evaluation",
    "competition_rmse",
    "count_photos",
    "counting_metrics",
    "evaluate",
    "from_dataset",
    "from_points",
    "mae",
    "rmse",
    "scaled_options",
]
