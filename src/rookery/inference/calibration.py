"""Calibrated counts: per-class score thresholds and a count interval, fitted on photos a model never saw.

A detector's raw count is biased in ways that depend on the class and the data (a pup is missed more often
than an adult male; a rock is taken for a juvenile). The calibration is fitted on held-out photos only —
cross-fitted folds of the training photos (training/recipe.py) or the leave-one-out folds of a benchmark —
never on photos the model trained on, where it is overconfident. It holds, per class:

- `thresholds`: the score above which a detection counts, chosen to minimise the held-out squared count
  error (a grid search over the held-out scores; ties go to the threshold nearest the default).
- an error model for the interval: on held-out photos, r = log((true + 1) / (predicted + 1)) has mean `bias`
  and spread `sigma` (pooled over classes, then per class where a class has enough photos). For a new count n
  the interval at `level` (90 % by default) is

      (n + 1) · exp(bias ± z · sqrt(sigma² + 1 / (n + 1))) − 1,   rounded outwards, never below 0

  The 1 / (n + 1) term is the Poisson noise of a count on the log scale, so a photo with 3 animals gets a
  wide interval even when the model was exact on the calibration photos, and the log scale makes the width
  grow with the count (errors of detectors are relative: a dense colony misses tens, a sparse photo one).
  Why a parametric model rather than empirical quantiles: a benchmark has 5-15 held-out photos; quantiles
  of so few residuals are the extreme points themselves.

An uncalibrated model (no held-out photos) uses bias 0 and sigma 0.25: an honest "about ±40 %" default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

DEFAULT_SIGMA = 0.25
MIN_SIGMA = 0.05  # never claim a tighter spread than this, whatever the calibration photos say
UNCALIBRATED_CONF = 0.5  # the score threshold of every class when no held-out photo chose one
THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.025), 3)


@dataclass(frozen=True)
class CountCalibration:
    level: float
    thresholds: tuple[float, ...] | None  # per class; None: the predictor's own conf
    bias: tuple[float, ...]  # per class, log scale
    sigma: tuple[float, ...]  # per class, log scale
    photos: int = 0  # held-out photos it was fitted on (0: the uncalibrated default)

    @classmethod
    def default(cls, num_classes: int, level: float = 0.9) -> CountCalibration:
        return cls(level, None, (0.0,) * num_classes, (DEFAULT_SIGMA,) * num_classes, 0)

    def intervals(self, counts: Sequence[int] | np.ndarray) -> np.ndarray:
        """(num_classes, 2) int64: the low and high end of each class's count interval."""
        n = np.asarray(counts, dtype=np.float64).reshape(-1)
        if len(n) != len(self.sigma):
            raise ValueError(f"expected {len(self.sigma)} class counts, got {len(n)}")
        z = NormalDist().inv_cdf(0.5 + self.level / 2)
        spread = z * np.sqrt(np.asarray(self.sigma) ** 2 + 1.0 / (n + 1.0))
        centre = np.log(n + 1.0) + np.asarray(self.bias)
        lo = np.floor(np.exp(centre - spread) - 1.0)
        hi = np.ceil(np.exp(centre + spread) - 1.0)
        lo = np.clip(np.minimum(lo, n), 0, None)  # the interval always holds the count itself
        hi = np.maximum(hi, n)
        return np.stack([lo, hi], axis=1).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "thresholds": None if self.thresholds is None else list(self.thresholds),
            "bias": list(self.bias),
            "sigma": list(self.sigma),
            "photos": self.photos,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], num_classes: int) -> CountCalibration:
        """From rookery_model.json's "calibration"; a missing or malformed one gives the default."""
        try:
            thresholds = d.get("thresholds")
            out = cls(
                float(d.get("level", 0.9)),
                None if thresholds is None else tuple(float(t) for t in thresholds),
                tuple(float(b) for b in d["bias"]),
                tuple(float(s) for s in d["sigma"]),
                int(d.get("photos", 0)),
            )
        except (AttributeError, KeyError, TypeError, ValueError):
            return cls.default(num_classes)
        sizes = {len(out.bias), len(out.sigma), num_classes} | ({len(out.thresholds)} if out.thresholds else set())
        return out if len(sizes) == 1 else cls.default(num_classes)


@dataclass(frozen=True)
class HeldOut:
    """One held-out photo: its true counts per class and every detection's class and score (at a low
    threshold), so that counts at any higher threshold can be recomputed without running the model again."""

    true: np.ndarray  # (num_classes,)
    cls: np.ndarray  # (K,)
    score: np.ndarray  # (K,)

    def counts(self, thresholds: np.ndarray) -> np.ndarray:
        """(num_classes,) counts with a per-class threshold."""
        nc = len(self.true)
        keep = self.score >= np.asarray(thresholds)[self.cls] if len(self.cls) else np.zeros(0, bool)
        return np.bincount(self.cls[keep], minlength=nc)[:nc]


def fit_calibration(
    photos: Sequence[HeldOut], level: float = 0.9, default_conf: float = 0.25, tune_thresholds: bool = True
) -> CountCalibration:
    """Per-class thresholds and the interval's error model from held-out photos (see the module docstring)."""
    nc = len(photos[0].true) if photos else 0
    if not photos:
        raise ValueError("calibration needs at least one held-out photo")
    true = np.array([p.true for p in photos], dtype=np.float64)  # (P, nc)
    thresholds = np.full(nc, default_conf)
    if tune_thresholds:
        for c in range(nc):
            if true[:, c].sum() == 0:  # nothing to learn from: keep the default
                continue
            errors = []
            for t in THRESHOLD_GRID:
                th = thresholds.copy()
                th[c] = t
                pred_c = np.array([p.counts(th)[c] for p in photos], dtype=np.float64)
                errors.append(float(((pred_c - true[:, c]) ** 2).sum()))
            best = np.flatnonzero(np.isclose(errors, min(errors)))
            thresholds[c] = THRESHOLD_GRID[best[np.argmin(np.abs(THRESHOLD_GRID[best] - default_conf))]]
    pred = np.array([p.counts(thresholds) for p in photos], dtype=np.float64)
    resid = np.log(true + 1.0) - np.log(pred + 1.0)  # (P, nc)
    # Poisson noise is part of the interval already: take it out of the observed spread.
    excess = resid**2 - 1.0 / (pred + 1.0)
    present = (true + pred) > 0
    pooled_bias = float(resid[present].mean()) if present.any() else 0.0
    pooled_var = float(np.mean(excess[present])) if present.any() else DEFAULT_SIGMA**2
    bias, sigma = [], []
    for c in range(nc):
        rows = present[:, c]
        k = int(rows.sum())
        # Shrink a class towards the pooled figures by how few photos it has (3 photos weigh as much as the pool).
        w = k / (k + 3.0)
        b = w * (float(resid[rows, c].mean()) if k else 0.0) + (1 - w) * pooled_bias
        v = w * (float(np.mean(excess[rows, c])) if k else 0.0) + (1 - w) * pooled_var
        bias.append(0.0 if abs(b) < 1e-12 else b)
        sigma.append(float(np.sqrt(max(v, MIN_SIGMA**2))))
    return CountCalibration(level, tuple(float(t) for t in thresholds), tuple(bias), tuple(sigma), len(photos))


def interval_coverage(
    true: np.ndarray, pred: np.ndarray, intervals: np.ndarray
) -> tuple[float | None, list[float | None]]:
    """The share of (photo, class) pairs whose true count lies inside its interval, over all classes and per class;
    None where no pair counts. Only pairs with a true or a predicted count above 0 count: a class absent from a
    photo and not predicted there says nothing about the interval (its [0, 0] would always hold), and so many of
    those pairs would flatter any model. `true`, `pred`: (photos, classes); `intervals`: (photos, classes, 2)."""
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

    return share(counted, inside), [share(counted[:, c], inside[:, c]) for c in range(t.shape[1])]


def held_out_counts(photos: Sequence[HeldOut], calibration: CountCalibration) -> np.ndarray:
    """(photos, classes) counts of held-out photos at the calibration's thresholds (the recipe's 0.5 when it has
    none: what training/recipe.py gives a model without calibration folds)."""
    nc = len(calibration.sigma)
    thresholds = np.asarray(calibration.thresholds or (UNCALIBRATED_CONF,) * nc)
    return np.array([p.counts(thresholds) for p in photos]).reshape(len(photos), nc)


def coverage(photos: Sequence[HeldOut], calibration: CountCalibration) -> float | None:
    """interval_coverage over held-out photos counted at the calibration's thresholds."""
    pred = held_out_counts(photos, calibration)
    intervals = np.array([calibration.intervals(c) for c in pred]).reshape(*pred.shape, 2)
    return interval_coverage(np.array([p.true for p in photos]).reshape(pred.shape), pred, intervals)[0]
