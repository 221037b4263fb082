"""The settings of one prediction: tiling, thresholds, batch size and how tile results are merged."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from rookery.errors import ConfigError

MergeMode = Literal["nms", "greedy"]


@dataclass(frozen=True)
class PredictOptions:
    """`tile` and `overlap` in photo pixels; `conf` keeps class scores above it; `iou` is the overlap
    threshold of per-tile NMS and of the merge across seams; `batch` tiles go through the network at once.
    """

    tile: int = 640
    overlap: int = 64
    conf: float = 0.25
    iou: float = 0.5
    batch: int = 8
    merge: MergeMode = "nms"
    # The network's input side: tiles of `tile` photo pixels are resized to it when it differs, so the
    # network sees objects at the scale it was trained on (Ultralytics resizes each tile to `imgsz`).
    imgsz: int | None = None
    # The typical length of an adult animal in the photos' pixels, for a model trained at a canonical ground
    # resolution (rookery.data.scale): None = estimated from each photo's size by the frame rule.
    animal_px: float | None = None

    def __post_init__(self) -> None:
        for name in ("tile", "overlap", "batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name} must be an integer, got {value!r}")
        if self.tile < 1:
            raise ConfigError(f"tile must be a positive number of pixels, got {self.tile}")
        if not 0 <= self.overlap < self.tile:
            raise ConfigError(f"overlap must be at least 0 and smaller than the tile ({self.tile}), got {self.overlap}")
        if self.imgsz is not None and (
            isinstance(self.imgsz, bool) or not isinstance(self.imgsz, int) or self.imgsz < 1
        ):
            raise ConfigError(f"imgsz must be a positive number of pixels, got {self.imgsz!r}")
        if self.animal_px is not None and (isinstance(self.animal_px, bool) or not self.animal_px > 0):
            raise ConfigError(f"animal_px must be a positive number of pixels, got {self.animal_px!r}")
        if self.batch < 1:
            raise ConfigError(f"batch must be at least 1, got {self.batch}")
        if not 0.0 <= self.conf < 1.0:
            raise ConfigError(f"conf must be in [0, 1), got {self.conf}")
        if not 0.0 < self.iou <= 1.0:
            raise ConfigError(f"iou must be in (0, 1], got {self.iou}")
        if self.merge not in ("nms", "greedy"):
            raise ConfigError(f"merge must be 'nms' or 'greedy', got {self.merge!r}")

    @property
    def scale(self) -> float:
        """Network pixels per photo pixel."""
        return 1.0 if self.imgsz is None else self.imgsz / self.tile

    def with_overrides(self, **overrides: Any) -> PredictOptions:
        """A copy with some fields replaced; an unknown name is a ConfigError naming the known ones."""
        if not overrides:
            return self
        unknown = sorted(set(overrides) - set(asdict(self)))
        if unknown:
            raise ConfigError(f"unknown prediction option(s) {unknown}; known: {sorted(asdict(self))}")
        return replace(self, **overrides)
