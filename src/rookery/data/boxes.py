"""Points -> boxes: one square box per annotated point, centred on it, with a side per class.

The side of a class comes from classes.yaml (`box:`, pixels at the photo's scale) when given, else it is
estimated from the points themselves (see `estimate_box_sizes`). Boxes are square because the animals lie
at every angle; they are clipped at the image border, whose outer edge is at -0.5 and size - 0.5 in
rookery's pixel-centre coordinates (centre of the top-left pixel = (0, 0)).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

import numpy as np
from scipy.spatial import cKDTree

from rookery.data.classes import Classes
from rookery.errors import ConfigError
from rookery.types import Boxes, ImageLabels, Points

# Estimated sides are kept within [CLAMP_LOW, CLAMP_HIGH] x the median nearest-neighbour distance of all
# points, and never below MIN_BOX px: a class of few, scattered animals (territorial adult males, a lone
# animal on a rock) would otherwise get a box as large as the gaps between them.
CLAMP_LOW, CLAMP_HIGH = 0.5, 2.0
MIN_BOX = 4.0
# When no photo has two points there is no spacing to measure.
DEFAULT_BOX = 32.0

ESTIMATE_NOTE = (
    "median distance from each point of the class to its nearest neighbour of any class in the same "
    "photo (animals in a colony touch, so it approximates a body length), clamped to "
    f"{CLAMP_LOW:g}-{CLAMP_HIGH:g}x the median over all points and to at least {MIN_BOX:g} px; "
    f"{DEFAULT_BOX:g} px when no photo has two distinct points"
)


def points_to_boxes(points: Points, sizes: Sequence[float], image_size: tuple[int, int] | None = None) -> Boxes:
    """Square boxes of side `sizes[cls]` centred on the points, clipped to the image when its size is given.

    `image_size` is (width, height). A class index without a size is a ConfigError.
    """
    side_of = np.asarray(sizes, dtype=np.float64).reshape(-1)
    if len(points) == 0:
        return Boxes.empty()
    if points.cls.min() < 0 or points.cls.max() >= len(side_of):
        raise ConfigError(
            f"points use class indices {int(points.cls.min())}..{int(points.cls.max())} "
            f"but box sizes are given for {len(side_of)} class(es)"
        )
    if np.any(side_of <= 0) or not np.all(np.isfinite(side_of)):
        raise ConfigError(f"box sizes must be positive numbers, got {side_of.tolist()}")
    half = side_of[points.cls][:, None] / 2.0
    xyxy = np.hstack([points.xy - half, points.xy + half])
    if image_size is not None:
        w, h = image_size
        xyxy = np.clip(xyxy, -0.5, [w - 0.5, h - 0.5, w - 0.5, h - 0.5])
    return Boxes(xyxy, points.cls.copy())


def nearest_neighbour_distances(xy: np.ndarray) -> np.ndarray:
    """Distance from each point to its nearest point at another position (inf when there is none).

    Points at the same position (a dot entered twice) share their neighbour instead of measuring 0.
    """
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    unique, back = np.unique(xy, axis=0, return_inverse=True)
    if len(unique) < 2:
        return np.full(len(xy), np.inf)
    d, _ = cKDTree(unique).query(unique, k=2)
    return cast(np.ndarray, d[:, 1][back.reshape(-1)])


def estimate_box_sizes(labels: Iterable[ImageLabels], classes: Classes) -> list[float]:
    """A box side per class, in pixels at the photo's scale, from the spacing of the points.

    For each point, the distance to its nearest neighbour of any class in the same photo; a class's side
    is the median of these over its points in all photos. Since animals in a colony touch, that is about
    one body length. Sides are clamped to CLAMP_LOW..CLAMP_HIGH x the median over all points and to at
    least MIN_BOX px; a class with no measurable point gets the median over all points. Returns
    DEFAULT_BOX for every class when no photo has two distinct points.
    """
    per_class: list[list[np.ndarray]] = [[] for _ in classes]
    for lab in labels:
        d = nearest_neighbour_distances(lab.points.xy)
        ok = np.isfinite(d)
        for c in range(len(classes)):
            per_class[c].append(d[ok & (lab.points.cls == c)])
    pooled = [np.concatenate(p) if p else np.zeros(0) for p in per_class]
    everything = np.concatenate(pooled) if pooled else np.zeros(0)
    if everything.size == 0:
        return [DEFAULT_BOX] * len(classes)
    overall = float(np.median(everything))
    low, high = max(MIN_BOX, CLAMP_LOW * overall), max(MIN_BOX, CLAMP_HIGH * overall)
    return [float(np.clip(np.median(p) if p.size else overall, low, high)) for p in pooled]


def resolve_box_sizes(classes: Classes, labels: Iterable[ImageLabels]) -> list[float]:
    """The side of each class: `box` from classes.yaml where given, else the estimate from the points."""
    if all(s.box is not None for s in classes):
        return [float(s.box) for s in classes]  # type: ignore[arg-type]
    estimated = estimate_box_sizes(labels, classes)
    return [float(s.box) if s.box is not None else e for s, e in zip(classes, estimated, strict=True)]
