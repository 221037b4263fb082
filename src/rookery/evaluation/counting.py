"""Counting error: per-class MAE and RMSE over photos, and the competition metric.

The competition metric is the one of the Kaggle NOAA Steller sea lion count: the RMSE of each class's
count over the photos, averaged over the classes ("RMSE averaged over columns"). Every class of the
model counts in the mean, including a class that neither the ground truth nor the model has on any
evaluated photo: its RMSE is 0 and it still takes its share of the mean. That keeps the metric
comparable between evaluations of the same classes (the denominator never changes with the data) and
is what the competition's column average does; it also means that a class absent from the test photos
lowers the mean, so compare values only across evaluations with the same classes.

    result = count_photos(predictor, photos)       # photos: EvalPhoto list from rookery.evaluation.truth
    m = result.metrics()                            # CountingMetrics: mae, rmse, competition_rmse, ...
    result.intervals, result.confusion()            # per photo [lo, hi] per class; matched detections

Each photo's count also gets the predictor's count interval per class (intervals.py), and, where the photo's
true points are known, its detections are matched to them (confusion.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from rookery.errors import InputError, RookeryError
from rookery.types import Boxes, Skipped

if TYPE_CHECKING:
    from rookery.evaluation.confusion import Confusion
    from rookery.evaluation.truth import EvalPhoto
    from rookery.inference.predictor import Predictor


def _check(true: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t, p = np.asarray(true, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    if t.ndim != 2 or t.shape != p.shape:
        raise ValueError(f"expected two (photos, classes) arrays of one shape, got {t.shape} and {p.shape}")
    if t.shape[0] == 0:
        raise InputError("no photo was evaluated, so there is no counting error to compute")
    return t, p


def mae(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per class (column): the mean over photos (rows) of |predicted - true|."""
    t, p = _check(true, pred)
    return cast(np.ndarray, np.abs(p - t).mean(axis=0))


def rmse(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per class (column): the root of the mean over photos (rows) of (predicted - true)²."""
    t, p = _check(true, pred)
    return cast(np.ndarray, np.sqrt(((p - t) ** 2).mean(axis=0)))


def competition_rmse(true: np.ndarray, pred: np.ndarray) -> float:
    """The mean over classes of the per-class RMSE (every class counts, see the module docstring)."""
    return float(rmse(true, pred).mean())


@dataclass(frozen=True)
class CountingMetrics:
    classes: tuple[str, ...]
    photos: int
    true_total: tuple[int, ...]  # per class, summed over photos
    pred_total: tuple[int, ...]
    mae: tuple[float, ...]  # per class
    rmse: tuple[float, ...]
    competition_rmse: float
    # The error of all classes together: per photo, |sum of predicted - sum of true| (a model that
    # confuses two classes but finds every animal has per-class errors and a total error of 0).
    total_mae: float
    total_rmse: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "photos": self.photos,
            "competition_rmse": self.competition_rmse,
            "total_mae": self.total_mae,
            "total_rmse": self.total_rmse,
            "classes": {
                c: {"true": t, "predicted": p, "mae": a, "rmse": r}
                for c, t, p, a, r in zip(
                    self.classes, self.true_total, self.pred_total, self.mae, self.rmse, strict=True
                )
            },
        }

    def mlflow_metrics(self) -> dict[str, float]:
        """`eval/competition_rmse`, `eval/mae/<class>`, `eval/rmse/<class>`, `eval/total_mae`, ..."""
        out = {
            "eval/competition_rmse": self.competition_rmse,
            "eval/total_mae": self.total_mae,
            "eval/total_rmse": self.total_rmse,
            "eval/photos": float(self.photos),
        }
        for c, a, r in zip(self.classes, self.mae, self.rmse, strict=True):
            out[f"eval/mae/{metric_key(c)}"] = a
            out[f"eval/rmse/{metric_key(c)}"] = r
        return out


def metric_key(name: str) -> str:
    """A class name as MLflow accepts it in a metric name (letters, digits, _ - . space /)."""
    return re.sub(r"[^0-9A-Za-z_\-. ]", "_", name) or "_"


def counting_metrics(true: np.ndarray, pred: np.ndarray, classes: Sequence[str]) -> CountingMetrics:
    """Metrics of (photos, classes) count arrays; columns in the order of `classes`."""
    t, p = _check(true, pred)
    if t.shape[1] != len(classes):
        raise ValueError(f"{t.shape[1]} count columns for {len(classes)} classes")
    per_rmse = rmse(t, p)
    total_err = p.sum(axis=1) - t.sum(axis=1)
    return CountingMetrics(
        classes=tuple(classes),
        photos=int(t.shape[0]),
        true_total=tuple(int(v) for v in t.sum(axis=0)),
        pred_total=tuple(int(v) for v in p.sum(axis=0)),
        mae=tuple(float(v) for v in mae(t, p)),
        rmse=tuple(float(v) for v in per_rmse),
        competition_rmse=float(per_rmse.mean()),
        total_mae=float(np.abs(total_err).mean()),
        total_rmse=float(np.sqrt((total_err**2).mean())),
    )


@dataclass
class CountingResult:
    """True and predicted counts of each evaluated photo, and the photos that could not be evaluated."""

    classes: tuple[str, ...]
    images: list[str] = field(default_factory=list)
    splits: list[str | None] = field(default_factory=list)
    true: list[np.ndarray] = field(default_factory=list)  # per photo, (classes,) int
    pred: list[np.ndarray] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    intervals: list[np.ndarray | None] = field(default_factory=list)  # per photo, (classes, 2) int [lo, hi]
    confusions: list[np.ndarray | None] = field(default_factory=list)  # per photo, (nc+1, nc+1); None: no points
    level: float | None = None  # the intervals' level (0.9: 90 %)

    def add(
        self,
        name: str,
        split: str | None,
        true: Sequence[int] | np.ndarray,
        pred: np.ndarray,
        interval: np.ndarray | None = None,
        confusion: np.ndarray | None = None,
    ) -> None:
        self.images.append(name)
        self.splits.append(split)
        self.true.append(np.asarray(true, dtype=np.int64))
        self.pred.append(np.asarray(pred, dtype=np.int64))
        self.intervals.append(None if interval is None else np.asarray(interval, dtype=np.int64).reshape(-1, 2))
        self.confusions.append(None if confusion is None else np.asarray(confusion, dtype=np.int64))

    @property
    def has_intervals(self) -> bool:
        return bool(self.intervals) and all(iv is not None for iv in self.intervals)

    def interval_array(self) -> np.ndarray:
        """(photos, classes, 2) int64: each photo's [lo, hi] per class (every photo must have them)."""
        if not self.has_intervals:
            raise ValueError("not every photo has count intervals")
        return np.array(self.intervals, dtype=np.int64).reshape(-1, len(self.classes), 2)

    def confusion(self) -> Confusion | None:
        """The confusion matrix summed over the photos whose true points are known; None when none are."""
        from rookery.evaluation.confusion import Confusion

        known = [m for m in self.confusions if m is not None]
        if not known:
            return None
        return Confusion(self.classes, np.sum(known, axis=0), len(known))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(photos, classes) int64 arrays of true and predicted counts."""
        n = len(self.classes)
        true = np.array(self.true, dtype=np.int64).reshape(-1, n)
        pred = np.array(self.pred, dtype=np.int64).reshape(-1, n)
        return true, pred

    def metrics(self) -> CountingMetrics:
        return counting_metrics(*self.arrays(), self.classes)

    def rows(self) -> list[dict[str, Any]]:
        """One row per photo: image, split, then per class true / predicted / error (predicted - true)."""
        out = []
        for k, (name, split, t, p) in enumerate(zip(self.images, self.splits, self.true, self.pred, strict=True)):
            row: dict[str, Any] = {"image": name, "split": split or ""}
            for c, tv, pv in zip(self.classes, t.tolist(), p.tolist(), strict=True):
                row[f"{c}_true"], row[f"{c}_pred"], row[f"{c}_error"] = tv, pv, pv - tv
            row["total_true"], row["total_pred"] = int(t.sum()), int(p.sum())
            row["total_error"] = row["total_pred"] - row["total_true"]
            if (iv := self.intervals[k] if k < len(self.intervals) else None) is not None:
                for c, (lo, hi) in zip(self.classes, iv.tolist(), strict=True):
                    row[f"{c}_interval_lo"], row[f"{c}_interval_hi"] = lo, hi
                row["total_interval_lo"], row["total_interval_hi"] = total_interval(iv)
            if (m := self.confusions[k] if k < len(self.confusions) else None) is not None:
                row["matched"], row["wrong_class"] = int(m[:-1, :-1].sum()), int(m[:-1, :-1].sum() - np.trace(m))
                row["missed"], row["extra"] = int(m[:-1, -1].sum()), int(m[-1, :-1].sum())
            out.append(row)
        return out


def total_interval(interval: np.ndarray) -> tuple[int, int]:
    """The interval of a photo's total count: the sum of the class lows and the sum of the class highs.

    Conservative: it would be the interval of the total only if every class erred the same way at once;
    with errors that partly cancel, the total's true interval at the same level is narrower.
    """
    iv = np.asarray(interval, dtype=np.int64).reshape(-1, 2)
    return int(iv[:, 0].sum()), int(iv[:, 1].sum())


def count_photos(
    predictor: Predictor, photos: Sequence[EvalPhoto], box_sides: Sequence[float | None] | None = None
) -> CountingResult:
    """Predict each whole photo (sliced, inside its mask) and pair its counts with the ground truth.

    A photo that cannot be read (or whose mask does not fit it) is a Skipped; the others are counted, each
    with the predictor's count interval per class and, when its true points are known, its confusion matrix
    (detections matched to the points; `box_sides`: classes.yaml's box sides, a fallback of the match
    radius, see confusion.class_sides). The predictor's classes must be the photos' classes, in the same
    order (the caller checks names).
    """
    from rookery.evaluation.confusion import photo_confusion
    from rookery.evaluation.intervals import interval_function

    result = CountingResult(tuple(predictor.class_names))
    intervals, result.level = interval_function(predictor)
    if not photos:
        return result
    n = len(result.classes)
    if any(len(p.truth) != n for p in photos):
        raise RookeryError(f"the ground truth has a different number of classes than the model's {n}")
    stream = predictor.iter_predict([p.image for p in photos], [p.mask for p in photos], names=[p.name for p in photos])
    for index, boxes in stream:
        photo = photos[index]
        if isinstance(boxes, Skipped):
            result.skipped.append(Skipped(photo.name, boxes.reason))
            continue
        assert isinstance(boxes, Boxes)
        counts = predictor.counts(boxes)
        confusion = None if photo.points is None else photo_confusion(photo.points, boxes, n, box_sides)
        result.add(photo.name, photo.split, photo.truth, counts, intervals(counts), confusion)
    return result
