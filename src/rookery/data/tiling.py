"""Tile grids over large photos, cutting labels into tiles and merging tile results back.

Pure functions, used both to build training sets and for sliced inference. A `Tile` holds integer pixel
indices, half-open: columns x0..x1-1 and rows y0..y1-1. In rookery's pixel-centre coordinates (centre of
the top-left pixel = (0, 0)) a tile spans [x0 - 0.5, x1 - 0.5] x [y0 - 0.5, y1 - 0.5]; tile coordinates
are photo coordinates minus (x0, y0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from scipy.spatial import cKDTree

from rookery.types import Boxes, Points


@dataclass(frozen=True, order=True)
class Tile:
    x0: int
    y0: int
    x1: int
    y1: int

    def __post_init__(self) -> None:
        if not (self.x1 > self.x0 >= 0 and self.y1 > self.y0 >= 0):
            raise ValueError(f"a tile needs 0 <= x0 < x1 and 0 <= y0 < y1, got {self}")

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def offset(self) -> np.ndarray:
        return np.array([self.x0, self.y0], dtype=np.float64)

    def crop(self, image: np.ndarray) -> np.ndarray:
        """This tile of an (H, W[, C]) array (a view, not a copy)."""
        return image[self.y0 : self.y1, self.x0 : self.x1]


def _positions(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets along one axis: as few as cover `length` with steps of at most `stride`, evenly spread.

    The first tile starts at 0 and the last ends at the border. Spreading the slack over all steps (rather
    than shifting only the last tile back) avoids a last tile that repeats almost all of its neighbour.
    """
    if length <= tile:
        return [0]
    n = -(-(length - tile) // stride) + 1  # ceil division
    return [int(v) for v in np.round(np.linspace(0, length - tile, n))]


def tile_grid(width: int, height: int, tile: int = 640, overlap: int = 64) -> list[Tile]:
    """Tiles of exactly `tile` x `tile` px covering a `width` x `height` image, row by row.

    Neighbours overlap by at least `overlap` px (the slack is spread evenly, so the last row and column end
    at the border instead of being shrunk); only an image smaller than a tile gives a smaller tile (the
    whole image, along that axis).
    An object no larger than `overlap` is wholly inside at least one tile.
    """
    for name, value in (("width", width), ("height", height), ("tile", tile), ("overlap", overlap)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if tile <= 0:
        raise ValueError(f"tile size must be positive, got {tile}")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be at least 0 and smaller than the tile ({tile}), got {overlap}")
    stride = tile - overlap
    xs, ys = _positions(width, tile, stride), _positions(height, tile, stride)
    tw, th = min(tile, width), min(tile, height)
    return [Tile(x, y, x + tw, y + th) for y in ys for x in xs]


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value}")


def cut_boxes(boxes: Boxes, tile: Tile, min_visible: float = 0.5) -> Boxes:
    """The boxes seen in `tile`, clipped to it, in tile coordinates.

    A box is kept when the visible part is at least `min_visible` of its area (a box of zero area is kept
    when it lies inside the tile). Scores are carried along.
    """
    _check_fraction("min_visible", min_visible)
    if len(boxes) == 0:
        return Boxes.empty()
    lo = np.array([tile.x0, tile.y0, tile.x0, tile.y0], dtype=np.float64) - 0.5
    hi = np.array([tile.x1, tile.y1, tile.x1, tile.y1], dtype=np.float64) - 0.5
    clipped = np.clip(boxes.xyxy, lo, hi)
    area = _area(boxes.xyxy)
    visible = _area(clipped)
    inside = np.all((boxes.xyxy >= lo) & (boxes.xyxy <= hi), axis=1)
    fraction = np.where(area > 0, visible / np.where(area > 0, area, 1.0), inside.astype(np.float64))
    keep = (fraction >= min_visible) & ((visible > 0) | inside)
    kept = boxes.select(keep)
    return Boxes(clipped[keep] - np.tile(tile.offset, 2), kept.cls, kept.score)


def cut_points(points: Points, tile: Tile) -> Points:
    """The points inside `tile`, in tile coordinates (a point on the right or bottom edge is outside)."""
    lo = tile.offset - 0.5
    hi = np.array([tile.x1, tile.y1], dtype=np.float64) - 0.5
    keep = np.all((points.xy >= lo) & (points.xy < hi), axis=1)
    kept = points.select(keep)
    return Points(kept.xy - tile.offset, kept.cls)


def _area(xyxy: np.ndarray) -> np.ndarray:
    return np.clip(xyxy[:, 2] - xyxy[:, 0], 0, None) * np.clip(xyxy[:, 3] - xyxy[:, 1], 0, None)


def merge_tile_boxes(
    pieces: Sequence[tuple[Tile, Boxes]], iou: float = 0.5, metric: Literal["ios", "iou"] = "ios"
) -> Boxes:
    """Boxes from overlapping tiles back in photo coordinates, with duplicates of one object removed.

    Greedy, per class: boxes are taken by score (or, without scores, by area: the view least cut by a tile
    edge comes first), and a later box of the same class whose overlap with a kept one reaches `iou` is
    dropped. The overlap is measured as intersection over the smaller box ("ios", the default: a piece cut
    by a tile edge lies inside the whole view, so it scores 1) or as intersection over union ("iou").
    """
    _check_fraction("iou", iou)
    if metric not in ("ios", "iou"):
        raise ValueError(f"metric must be 'ios' or 'iou', got {metric!r}")
    moved = [Boxes(b.xyxy + np.tile(t.offset, 2), b.cls, b.score) for t, b in pieces if len(b)]
    if not moved:
        return Boxes.empty()
    with_scores = all(b.score is not None for b in moved)
    xyxy = np.concatenate([b.xyxy for b in moved])
    cls = np.concatenate([b.cls for b in moved])
    score = np.concatenate([b.score for b in moved if b.score is not None]) if with_scores else None
    area = _area(xyxy)
    rank = -(score if score is not None else area)
    order = np.lexsort((np.arange(len(xyxy)), rank))  # stable: ties keep input order
    keep = np.zeros(len(xyxy), dtype=bool)
    for c in np.unique(cls):
        idx = order[cls[order] == c]
        keep[idx[_greedy_keep(xyxy[idx], area[idx], iou, metric)]] = True
    final = order[keep[order]]  # kept boxes in rank order
    return Boxes(xyxy[final], cls[final], None if score is None else score[final])


def _greedy_keep(xyxy: np.ndarray, area: np.ndarray, thr: float, metric: str) -> np.ndarray:
    """Indices (into the ranked boxes) that survive greedy suppression; only nearby pairs are compared."""
    n = len(xyxy)
    if n == 1:
        return np.array([0])
    centres = (xyxy[:, :2] + xyxy[:, 2:]) / 2
    half_diag = np.hypot(xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]) / 2
    pairs = cKDTree(centres).query_pairs(r=2 * float(half_diag.max()) + 1e-9, output_type="ndarray")
    neighbours: list[list[int]] = [[] for _ in range(n)]
    if len(pairs):
        a, b = pairs[:, 0], pairs[:, 1]
        iw = np.minimum(xyxy[a, 2], xyxy[b, 2]) - np.maximum(xyxy[a, 0], xyxy[b, 0])
        ih = np.minimum(xyxy[a, 3], xyxy[b, 3]) - np.maximum(xyxy[a, 1], xyxy[b, 1])
        inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
        denom = np.minimum(area[a], area[b]) if metric == "ios" else area[a] + area[b] - inter
        overlap = np.where(denom > 0, inter / np.where(denom > 0, denom, 1.0), 0.0)
        # Two zero-area boxes at the same spot are duplicates too.
        overlap = np.where((denom == 0) & np.all(xyxy[a] == xyxy[b], axis=1), 1.0, overlap)
        for i, j in zip(a[overlap >= thr].tolist(), b[overlap >= thr].tolist(), strict=True):
            lo, hi = (i, j) if i < j else (j, i)
            neighbours[lo].append(hi)
    suppressed = np.zeros(n, dtype=bool)
    kept = []
    for i in range(n):  # in rank order: a box suppresses only the lower-ranked ones it overlaps
        if suppressed[i]:
            continue
        kept.append(i)
        suppressed[neighbours[i]] = True
    return np.array(kept, dtype=np.int64)


def blank_ignored(image: np.ndarray, mask: np.ndarray | None, inplace: bool = False) -> np.ndarray:
    """The image with its ignore region (mask < 128, i.e. 0 in a 0/255 mask) filled black.

    Unannotated animals then never appear as background; the painted survey photos black it out the same
    way. `mask` is an (H, W) array of the image's height and width; None means all annotated.
    """
    if mask is None:
        return image if inplace else image.copy()
    if mask.ndim != 2 or mask.shape[:2] != image.shape[:2]:
        raise ValueError(
            f"mask must be a single-channel {image.shape[1]}x{image.shape[0]} array like its image, "
            f"got shape {mask.shape}"
        )
    keep = (np.asarray(mask) >= 128).view(np.uint8)  # 1 = keep; cv2 masks test for non-zero
    out = cv2.bitwise_and(image, image, mask=keep)  # ~10x faster than boolean indexing on a 16 MP photo
    if inplace:
        np.copyto(image, out)
        return image
    return out


def ignored_fractions(mask: np.ndarray | None, tiles: Sequence[Tile]) -> np.ndarray:
    """The fraction of each tile's pixels in the ignore region (0 for every tile when there is no mask)."""
    if mask is None:
        return np.zeros(len(tiles))
    return np.array([np.count_nonzero(t.crop(mask) < 128) / (t.width * t.height) for t in tiles])
