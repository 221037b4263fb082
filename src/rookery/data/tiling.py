"""Tile geometry: tile grids over large photos, cutting labels into tiles, and ignore masks per tile.

The one module of tile geometry, used both to build training sets and for sliced inference (merging tile
results back is rookery.inference.merge). A `Tile` holds integer pixel
indices, half-open: columns x0..x1-1 and rows y0..y1-1. In rookery's pixel-centre coordinates (centre of
the top-left pixel = (0, 0)) a tile spans [x0 - 0.5, x1 - 0.5] x [y0 - 0.5, y1 - 0.5]; tile coordinates
are photo coordinates minus (x0, y0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np

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


def _steps(length: int, tile: int, stride: int) -> int:
    """How many tiles cover `length` along one axis with steps of at most `stride`."""
    return 1 if length <= tile else -(-(length - tile) // stride) + 1  # ceil division


def _positions(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets along one axis: as few as cover `length` with steps of at most `stride`, evenly spread.

    The first tile starts at 0 and the last ends at the border. Spreading the slack over all steps (rather
    than shifting only the last tile back) avoids a last tile that repeats almost all of its neighbour.
    """
    if length <= tile:
        return [0]
    return [int(v) for v in np.round(np.linspace(0, length - tile, _steps(length, tile, stride)))]


def tile_count(width: int, height: int, tile: int, overlap: int) -> int:
    """len(tile_grid(width, height, tile, overlap)), without building the tiles (a server's work budget)."""
    return _steps(width, tile, tile - overlap) * _steps(height, tile, tile - overlap)


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
    return cast(np.ndarray, np.clip(xyxy[:, 2] - xyxy[:, 0], 0, None) * np.clip(xyxy[:, 3] - xyxy[:, 1], 0, None))


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
