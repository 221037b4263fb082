"""rookery's own types at module boundaries: no framework object crosses them.

Coordinates are pixels of the image they belong to: x = column, y = row, and the centre of the
top-left pixel is (0, 0) (the convention of ../shared/data/sealions/points.csv).
Class identity is an index into a `Classes` list (see data/classes.py); names appear only in files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

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
        return cast(np.ndarray, (self.xyxy[:, :2] + self.xyxy[:, 2:]) / 2.0)

    def __eq__(self, other: object) -> bool:  # by value (the generated one would compare arrays ambiguously)
        if not isinstance(other, Boxes):
            return NotImplemented
        same_scores = (self.score is None) == (other.score is None) and (
            self.score is None or np.array_equal(self.score, other.score)  # type: ignore[arg-type]
        )
        return np.array_equal(self.xyxy, other.xyxy) and np.array_equal(self.cls, other.cls) and same_scores

    # Not hashable: the arrays inside are mutable.
    __hash__ = None  # type: ignore[assignment]

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


@dataclass(frozen=True)
class CountIntervals:
    """Each class's count interval at `level`: [lo, hi] with lo <= count <= hi.

    `calibrated` says whether the interval's claim holds: a calibration fitted on held-out photos, used with its
    own per-class score thresholds (rookery.inference.calibration). The total's interval is the sum of the class
    lows and of the class highs: conservative, as the errors of the classes partly cancel.
    """

    level: float  # 0.9: a 90 % interval
    calibrated: bool
    classes: dict[str, tuple[int, int]]  # the prediction's classes, in the order of its counts

    @property
    def total(self) -> tuple[int, int]:
        return sum(lo for lo, _ in self.classes.values()), sum(hi for _, hi in self.classes.values())

    def bounds(self) -> np.ndarray:
        """(classes, 2) int64: the low and high end of each class's interval, in class order."""
        return np.array(list(self.classes.values()), dtype=np.int64).reshape(-1, 2)

    def to_json(self) -> dict[str, object]:
        return {
            "level": float(self.level),
            "calibrated": bool(self.calibrated),
            "classes": {str(k): [int(lo), int(hi)] for k, (lo, hi) in self.classes.items()},
            "total": list(self.total),  # derived; kept for whoever reads a stored copy directly
        }

    @classmethod
    def from_json(cls, value: object, default_level: float = 0.9) -> CountIntervals | None:
        """From `to_json`'s form; None for anything else (e.g. a stored prediction made before intervals existed)."""
        if not isinstance(value, dict) or not isinstance(value.get("classes"), dict):
            return None
        classes = {str(k): (int(lo), int(hi)) for k, (lo, hi) in value["classes"].items()}
        return cls(float(value.get("level", default_level)), bool(value.get("calibrated", False)), classes)


@dataclass(frozen=True)
class ModelRef:
    """The model that made a prediction: its URI and, for a registered model, name, version and alias."""

    uri: str
    name: str | None = None
    version: str | None = None
    alias: str | None = None

    @property
    def label(self) -> str:
        """Short human name: 'rookery v3 (champion)' for a registered version, else the file or URI's last part."""
        if self.name and self.version:
            return f"{self.name} v{self.version}" + (f" ({self.alias})" if self.alias else "")
        return self.uri.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or self.uri


@dataclass(frozen=True)
class Prediction:
    """One counted photo: the one shape of a prediction in rookery (batch counting, the Ray path, the server and
    its history). Files, database rows and API bodies are made from it at their own boundary.

    `image` is the photo's name: the file name without extension in `rookery predict` (the key of its output
    files), the client's file name on the server. Boxes are in pixels of the photo as it was read.
    """

    image: str
    class_names: tuple[str, ...]
    boxes: Boxes
    intervals: CountIntervals | None = None  # None: no intervals (history rows made before they existed)
    width: int = 0
    height: int = 0
    image_sha256: str = ""
    model: ModelRef = field(default_factory=lambda: ModelRef(""))
    timings_ms: dict[str, float] = field(default_factory=dict)

    def count_array(self) -> np.ndarray:
        """(classes,) int64 in class order."""
        return self.boxes.counts(len(self.class_names))

    @property
    def counts(self) -> dict[str, int]:
        """Objects per class: every class of the model, zeros included, in class order."""
        return dict(zip(self.class_names, (int(v) for v in self.count_array()), strict=True))

    @property
    def total(self) -> int:
        return len(self.boxes)

    def interval_bounds(self) -> np.ndarray:
        """(classes, 2) int64: each class's interval, or the counts themselves when there are none."""
        if self.intervals is None:
            counts = self.count_array()
            return np.column_stack([counts, counts])
        return self.intervals.bounds()

    def detections(self, digits: int = 2) -> list[dict[str, object]]:
        """One dict per box: class_name, class_id, score and the corners x1, y1, x2, y2 (rounded to `digits`)."""
        boxes = self.boxes
        scores = boxes.score.tolist() if boxes.score is not None else [1.0] * len(boxes)
        return [
            {
                "class_name": self.class_names[c],
                "class_id": int(c),
                "score": round(float(s), 5),
                **{k: round(float(v), digits) for k, v in zip(("x1", "y1", "x2", "y2"), xyxy, strict=True)},
            }
            for xyxy, c, s in zip(boxes.xyxy.tolist(), boxes.cls.tolist(), scores, strict=True)
        ]

    @classmethod
    def from_detections(
        cls, image: str, class_names: tuple[str, ...], detections: list[dict[str, object]], **fields: object
    ) -> Prediction:
        """The inverse of `detections` (for stored predictions)."""
        xyxy = [[float(d[k]) for k in ("x1", "y1", "x2", "y2")] for d in detections]  # type: ignore[arg-type]
        cls_ids = [int(d["class_id"]) for d in detections]  # type: ignore[call-overload]
        score = [float(d["score"]) for d in detections]  # type: ignore[arg-type]
        return cls(image, class_names, Boxes(xyxy, cls_ids, np.asarray(score)), **fields)  # type: ignore[arg-type]
