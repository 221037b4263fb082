"""rookery's own types at module boundaries: no framework object crosses them.

Coordinates are pixels of the image they belong to: x = column, y = row, and the centre of the
top-left pixel is (0, 0) (the convention of ../shared/data/sealions/points.csv).
Class identity is an index into a `Classes` list (see data/classes.py); names appear only in files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def _as_float(a: object, width: int) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, width), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != width:
        raise ValueError(f"expected an (N, {width}) array, got shape {arr.shape}")
    return arr


def _as_int(a: object, n: int) -> np.ndarray:
    arr = np.asarray(a, dtype=np.int64).reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"expected {n} class indices, got {arr.shape[0]}")
    return arr


@dataclass(frozen=True)
class Points:
    """Centres of annotated objects in one image."""

    xy: np.ndarray  # (N, 2) float64
    cls: np.ndarray  # (N,) int64

    def __post_init__(self) -> None:
        object.__setattr__(self, "xy", _as_float(self.xy, 2))
        object.__setattr__(self, "cls", _as_int(self.cls, len(self.xy)))

    @classmethod
    def empty(cls) -> Points:
        return cls(np.zeros((0, 2)), np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.xy)

    def select(self, keep: np.ndarray) -> Points:
        return Points(self.xy[keep], self.cls[keep])

    def counts(self, num_classes: int) -> np.ndarray:
        return np.bincount(self.cls, minlength=num_classes)[:num_classes]


@dataclass(frozen=True)
class Boxes:
    """Axis-aligned boxes (x1, y1, x2, y2) in one image, with optional scores (detections)."""

    xyxy: np.ndarray  # (N, 4) float64
    cls: np.ndarray  # (N,) int64
    score: np.ndarray | None = None  # (N,) float64, None for ground truth

    def __post_init__(self) -> None:
        object.__setattr__(self, "xyxy", _as_float(self.xyxy, 4))
        object.__setattr__(self, "cls", _as_int(self.cls, len(self.xyxy)))
        if self.score is not None:
            score = np.asarray(self.score, dtype=np.float64).reshape(-1)
            if score.shape[0] != len(self.xyxy):
                raise ValueError(f"expected {len(self.xyxy)} scores, got {score.shape[0]}")
            object.__setattr__(self, "score", score)

    @classmethod
    def empty(cls) -> Boxes:
        return cls(np.zeros((0, 4)), np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.xyxy)

    def select(self, keep: np.ndarray) -> Boxes:
        return Boxes(self.xyxy[keep], self.cls[keep], None if self.score is None else self.score[keep])

    def centers(self) -> np.ndarray:
        return (self.xyxy[:, :2] + self.xyxy[:, 2:]) / 2.0

    def counts(self, num_classes: int) -> np.ndarray:
        return np.bincount(self.cls, minlength=num_classes)[:num_classes]


@dataclass
class ImageLabels:
    """What is known about one image: its points, optionally boxes, and its size when known.

    `image` is the file name without extension (the key used in points.csv).
    """

    image: str
    points: Points = field(default_factory=Points.empty)
    boxes: Boxes | None = None
    size: tuple[int, int] | None = None  # (width, height)


@dataclass(frozen=True)
class Skipped:
    """An item of a batch that was reported and skipped, with the one-sentence reason."""

    item: str
    reason: str

    def __str__(self) -> str:
        return f"{self.item}: {self.reason}"
