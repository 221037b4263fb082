"""Count intervals on evaluated photos: where they come from, and how often they hold the true count.

The interval of a count is the predictor's (Predictor.count_intervals, from the model's calibration; an
uncalibrated model gets the default error model of rookery.inference.calibration, about ±40 % at 90 %).
Its **coverage** (rookery.inference.calibration.interval_coverage, the one rule the recipe and the benchmark use
too) is the share of (photo, class) pairs with a true or predicted animal whose true count lies inside the
interval. A calibrated 90 % interval should cover about 0.9.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from rookery.inference.predictor import Predictor

from rookery.inference.calibration import interval_coverage as interval_coverage  # one coverage rule (see there)

IntervalFn = Callable[[np.ndarray], np.ndarray]


def interval_function(predictor: Predictor) -> tuple[IntervalFn, float]:
    """The predictor's count interval (counts -> (nc, 2) [lo, hi]) and its level."""
    return predictor.count_intervals, predictor.interval_level


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
