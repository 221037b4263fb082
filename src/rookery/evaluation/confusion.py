"""Which animals were found, missed, invented, or given the wrong class: detections matched to true points.

A count can be right for the wrong reasons (a pup counted as a juvenile and a rock as a pup give the right
pup count), and per-class count errors cannot tell a missed animal from a misclassified one. So, on each
photo, the detections' box centres are matched one-to-one to the annotated points, regardless of class:

- a pair may match when its distance is at most the larger of the two classes' half box sides (the true
  point's class and the detection's class), in photo pixels: the point lies on the detected animal's box or
  the detection's centre on the true animal's box. Half a side rather than a side because neighbours in a
  colony lie about one body length apart, so a looser radius would let a detection claim a neighbour;
  half a side of the *larger* class because a misclassification (a pup taken for an adult female) is just
  the case where the two sides differ, and it must still be seen as a match.
- among the allowed pairs, the matching pairs as many points as possible and, among those matchings, the
  one with the smallest total distance (the Hungarian algorithm, scipy's linear_sum_assignment, on each
  group of points and detections that can reach each other).

The (nc + 1) × (nc + 1) matrix counts, at [true c, predicted d], the matched pairs; the last column
("missed") the unmatched points of each true class; the last row ("extra") the unmatched detections of each
predicted class; its corner is always 0. Row sums over the first nc columns plus "missed" are the true
counts; column sums plus "extra" are the predicted counts.

    pairs = match_points(true_xy, pred_xy, true_radius=12.0)          # (true indices, predicted indices)
    m = confusion_matrix(true_cls, pred_cls, pairs, num_classes=5)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rookery.evaluation.counting import metric_key
from rookery.types import Boxes, Points

MISSED, EXTRA = "missed", "extra"


def match_points(
    true_xy: np.ndarray,
    pred_xy: np.ndarray,
    true_radius: float | np.ndarray,
    pred_radius: float | np.ndarray = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one pairs of true points and predicted points, as (true indices, predicted indices), sorted.

    True point i and predicted point j may pair when their distance is at most max(true_radius[i],
    pred_radius[j]) (a scalar applies to every point). Of the allowed pairs, as many as possible are matched,
    then the total distance is the smallest. Points that can reach no one stay unmatched.
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    t = _xy(true_xy)
    p = _xy(pred_xy)
    rt = _radius(true_radius, len(t), "true_radius")
    rp = _radius(pred_radius, len(p), "pred_radius")
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    if len(t) == 0 or len(p) == 0:
        return empty
    reach = float(max(rt.max(), rp.max()))
    near = cKDTree(t).query_ball_tree(cKDTree(p), reach)
    ti = np.repeat(np.arange(len(t)), [len(js) for js in near])
    pj = np.fromiter((j for js in near for j in js), dtype=np.int64, count=len(ti))
    dist = np.hypot(*(t[ti] - p[pj]).T) if len(ti) else np.zeros(0)
    ok = dist <= np.maximum(rt[ti], rp[pj])
    ti, pj, dist = ti[ok], pj[ok], dist[ok]
    if not len(ti):
        return empty
    # Points that can reach each other form groups; each group is one small assignment problem.
    n = len(t) + len(p)
    graph = coo_matrix((np.ones(len(ti)), (ti, len(t) + pj)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    order = np.argsort(label[ti], kind="stable")
    ti, pj, dist = ti[order], pj[order], dist[order]
    starts = np.flatnonzero(np.r_[True, np.diff(label[ti]) != 0])
    out_t, out_p = [], []
    for gt, gp, gd in zip(np.split(ti, starts[1:]), np.split(pj, starts[1:]), np.split(dist, starts[1:]), strict=True):
        if len(gt) == 1:  # the common case: a point and a detection that reach no one else
            out_t.append(gt)
            out_p.append(gp)
            continue
        rows, cols = np.unique(gt), np.unique(gp)
        # A forbidden pair costs more than any matching of allowed pairs in the group, so the solver first
        # maximises the number of allowed pairs, then minimises their total distance.
        forbidden = (float(gd.max()) + 1.0) * (min(len(rows), len(cols)) + 1)
        cost = np.full((len(rows), len(cols)), forbidden)
        cost[np.searchsorted(rows, gt), np.searchsorted(cols, gp)] = gd
        r, c = linear_sum_assignment(cost)
        keep = cost[r, c] < forbidden
        out_t.append(rows[r[keep]])
        out_p.append(cols[c[keep]])
    true_idx, pred_idx = np.concatenate(out_t), np.concatenate(out_p)
    order = np.argsort(true_idx, kind="stable")
    return true_idx[order].astype(np.int64), pred_idx[order].astype(np.int64)


def confusion_matrix(
    true_cls: np.ndarray, pred_cls: np.ndarray, pairs: tuple[np.ndarray, np.ndarray], num_classes: int
) -> np.ndarray:
    """(nc + 1, nc + 1) int64: matched pairs at [true, predicted], unmatched truths in the last column
    ("missed"), unmatched predictions in the last row ("extra"); see the module docstring."""
    tc = np.asarray(true_cls, dtype=np.int64).reshape(-1)
    pc = np.asarray(pred_cls, dtype=np.int64).reshape(-1)
    ti, pj = (np.asarray(a, dtype=np.int64).reshape(-1) for a in pairs)
    if len(ti) != len(pj):
        raise ValueError(f"pairs of unequal length: {len(ti)} true and {len(pj)} predicted indices")
    for name, cls in (("true", tc), ("predicted", pc)):
        if len(cls) and (cls.min() < 0 or cls.max() >= num_classes):
            raise ValueError(f"{name} classes must be in [0, {num_classes}), got {sorted(set(cls.tolist()))}")
    nc = num_classes
    m = np.zeros((nc + 1, nc + 1), dtype=np.int64)
    np.add.at(m, (tc[ti], pc[pj]), 1)
    missed = np.ones(len(tc), bool)
    missed[ti] = False
    extra = np.ones(len(pc), bool)
    extra[pj] = False
    m[:nc, nc] = np.bincount(tc[missed], minlength=nc)[:nc]
    m[nc, :nc] = np.bincount(pc[extra], minlength=nc)[:nc]
    return m


def class_sides(boxes: Boxes, num_classes: int, fallback: Sequence[float | None] | None = None) -> np.ndarray:
    """(nc,) float: each class's box side in this photo's pixels, for the match radius.

    The median of max(width, height) of the photo's detections of the class (what the model takes the
    animals' size to be at this photo's resolution: a heatmap model gives every detection its class's side,
    a box detector regresses it); for a class without detections on the photo, `fallback` (classes.yaml's
    `box`) when given, else the median over all the photo's detections. 0 where none of these exists, which
    only happens on a photo without detections, where nothing can match anyway.
    """
    wh = boxes.xyxy[:, 2:] - boxes.xyxy[:, :2]
    side = np.maximum(wh[:, 0], wh[:, 1]) if len(boxes) else np.zeros(0)
    overall = float(np.median(side)) if len(side) else 0.0
    out = np.zeros(num_classes)
    for c in range(num_classes):
        mine = side[boxes.cls == c]
        given = fallback[c] if fallback is not None and c < len(fallback) else None
        out[c] = float(np.median(mine)) if len(mine) else (float(given) if given else overall)
    return out


def photo_confusion(
    truth: Points, boxes: Boxes, num_classes: int, box_sides: Sequence[float | None] | None = None
) -> np.ndarray:
    """The confusion matrix of one photo: its true points against its detections' box centres, matched
    within half the larger of the two classes' box sides (class_sides; see the module docstring)."""
    half = class_sides(boxes, num_classes, box_sides) / 2.0
    pairs = match_points(truth.xy, boxes.centers(), half[truth.cls], half[boxes.cls])
    return confusion_matrix(truth.cls, boxes.cls, pairs, num_classes)


@dataclass(frozen=True)
class Confusion:
    """A confusion matrix summed over photos, with its class names (see the module docstring)."""

    classes: tuple[str, ...]
    matrix: np.ndarray  # (nc + 1, nc + 1) int64
    photos: int

    @property
    def matched(self) -> int:
        return int(self.matrix[:-1, :-1].sum())

    @property
    def true_points(self) -> int:
        return int(self.matrix[:-1, :].sum())

    @property
    def predicted(self) -> int:
        return int(self.matrix[:, :-1].sum())

    @property
    def same_class(self) -> int:
        return int(np.trace(self.matrix[:-1, :-1]))

    def fractions(self) -> dict[str, float | None]:
        """matched_fraction: true points with a detection on them (any class); extra_fraction: detections on
        no true point; class_agreement: matched pairs whose classes agree. None where the base is 0."""

        def share(part: int, whole: int) -> float | None:
            return part / whole if whole else None

        return {
            "matched_fraction": share(self.matched, self.true_points),
            "extra_fraction": share(self.predicted - self.matched, self.predicted),
            "class_agreement": share(self.same_class, self.matched),
        }

    def labels(self) -> tuple[list[str], list[str]]:
        """Row labels (true classes, then "extra") and column labels (predicted classes, then "missed")."""
        return [*self.classes, EXTRA], [*self.classes, MISSED]

    def to_dict(self) -> dict[str, Any]:
        rows, cols = self.labels()
        return {
            "rows": rows,
            "columns": cols,
            "matrix": self.matrix.tolist(),
            "photos": self.photos,
            "true": self.true_points,
            "predicted": self.predicted,
            "matched": self.matched,
            "missed": self.true_points - self.matched,
            "extra": self.predicted - self.matched,
            **self.fractions(),
            "match_radius": "half the larger of the two classes' box sides",
        }

    def mlflow_metrics(self) -> dict[str, float]:
        """eval/matched_fraction, eval/extra_fraction, eval/class_agreement (where defined) and, per class,
        eval/missed/<class> and eval/extra/<class>."""
        out = {f"eval/{k}": float(v) for k, v in self.fractions().items() if v is not None}
        for k, c in enumerate(self.classes):
            out[f"eval/missed/{metric_key(c)}"] = float(self.matrix[k, -1])
            out[f"eval/extra/{metric_key(c)}"] = float(self.matrix[-1, k])
        return out


def _xy(a: np.ndarray) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 2))
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"expected an (N, 2) array of points, got shape {arr.shape}")
    return arr


def _radius(r: float | np.ndarray, n: int, name: str) -> np.ndarray:
    arr = np.asarray(r, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"{name} must be a number or one per point ({n}), got shape {arr.shape}")
    if n and (not np.isfinite(arr).all() or arr.min() < 0):
        raise ValueError(f"{name} must be finite and not negative")
    return arr
