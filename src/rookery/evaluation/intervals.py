"""Count intervals on evaluated photos: where they come from, and how often they hold the true count.

The interval of a count is the predictor's (Predictor.count_intervals, from the model's calibration; an
uncalibrated model gets the default error model of rookery.inference.calibration, about ±40 % at 90 %).
Its **coverage** is the share of (photo, class) pairs whose true count lies inside the interval, counted
over the pairs where the true or the predicted count is not 0: a class absent from a photo and not
predicted on it says nothing about the interval (its interval is [0, 0] and would always hold), and so many
of those pairs would flatter any model. A calibrated 90 % interval should cover about 0.9.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from rookery.inference.predictor import Predictor

IntervalFn = Callable[[np.ndarray], np.ndarray]


def interval_function(predictor: Predictor) -> tuple[IntervalFn, float]:
    """The predictor's count interval (counts -> (nc, 2) [lo, hi]) and its level."""
    from rookery.inference.calibration import CountCalibration

    nc = len(predictor.class_names)
    calibration = getattr(predictor, "calibration", None) or CountCalibration.default(nc)
    method = getattr(predictor, "count_intervals", None)
    fn: IntervalFn = method if callable(method) else calibration.intervals
    return fn, float(calibration.level)


def interval_coverage(true: np.ndarray, pred: np.ndarray, intervals: np.ndarray) -> tuple[float | None, list]:
    """Coverage over all classes and per class (see the module docstring); None where no pair counts.

    `true`, `pred`: (photos, classes); `intervals`: (photos, classes, 2).
    """
    t = np.asarray(true, dtype=np.int64)
    p = np.asarray(pred, dtype=np.int64)
    iv = np.asarray(intervals, dtype=np.int64)
    if t.shape != p.shape or iv.shape != (*t.shape, 2):
        raise ValueError(f"expected (photos, classes) counts and (photos, classes, 2) intervals, got {t.shape}, "
                         f"{p.shape} and {iv.shape}")  # fmt: skip
    counted = (t > 0) | (p > 0)
    inside = (iv[..., 0] <= t) & (t <= iv[..., 1])

    def share(rows: np.ndarray, hits: np.ndarray) -> float | None:
        n = int(rows.sum())
        return float((hits & rows).sum() / n) if n else None

    per_class = [share(counted[:, c], inside[:, c]) for c in range(t.shape[1])]
    return share(counted, inside), per_class


def total_error_pct(true: np.ndarray, pred: np.ndarray) -> list[float | None]:
    """Per photo, 100 · (predicted total − true total) / true total; None for a photo without animals."""
    tt = np.asarray(true, dtype=np.int64).sum(axis=1)
    pt = np.asarray(pred, dtype=np.int64).sum(axis=1)
    return [None if t == 0 else float(100.0 * (q - t) / t) for t, q in zip(tt.tolist(), pt.tolist(), strict=True)]


def intervals_dict(
    classes: Sequence[str], true: np.ndarray, pred: np.ndarray, intervals: np.ndarray, level: float | None
) -> dict[str, Any]:
    """metrics.json's "intervals": the level, the overall coverage and each class's."""
    overall, per_class = interval_coverage(true, pred, intervals)
    return {
        "level": level,
        "coverage": overall,
        "classes": dict(zip(classes, per_class, strict=True)),
        "counted_pairs": "(photo, class) pairs with a true or a predicted count above 0",
    }
