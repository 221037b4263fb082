"""Tile detections merged back into one set per photo with rookery's seam merge (inference/merge.py), for tests that
start from (tile, boxes in tile pixels) pieces, as the training-time tiling produces them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rookery.data.tiling import Tile
from rookery.inference.merge import merge_detections
from rookery.types import Boxes


def merge_pieces(pieces: Sequence[tuple[Tile, Boxes]], mode: str = "nms", thr: float = 0.5) -> Boxes:
    """Boxes without scores rank by area (the view least cut by a tile edge first); no box is flagged as cut."""
    moved = [(b.xyxy + np.tile(t.offset, 2), b) for t, b in pieces if len(b)]
    if not moved:
        return Boxes.empty()
    xyxy = np.concatenate([xy for xy, _ in moved])
    cls = np.concatenate([b.cls for _, b in moved])
    area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    score = np.concatenate([b.score if b.score is not None else np.full(len(b), np.nan) for _, b in moved])
    score = np.where(np.isnan(score), area, score)
    return merge_detections(xyxy, cls, score, np.zeros(len(xyxy), bool), mode, thr)
