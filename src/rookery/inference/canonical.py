"""Counting at the model's ground resolution: each photo resized so that its animals look as in training.

A model trained on a data set built with `--resolution` (rookery.data.scale) knows that resolution, the
full-resolution frame size of its survey (`frame_px`) and the animal length at its own resolution
(`animal_px`). For each photo the resize factor is

    model animal_px / the photo's animal_px     when the caller gives the photo's (`--animal-px`), else
    resolution x frame_px / the photo's long side   (the frame rule: a frame covers the same ground)

and the photo is tiled with tiles of (network tile / factor) photo pixels, each resized to the network tile.
Photos are grouped by their options (consecutive photos of one size share batches as before).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rookery.data.scale import frame_scale, image_size
from rookery.inference.options import PredictOptions


@dataclass(frozen=True)
class Canonical:
    resolution: float  # fraction of full resolution the model works at
    frame_px: int  # long side of a full-resolution frame
    animal_px: float  # typical animal length in the model's pixels
    tile: int  # network tile side (model pixels)
    overlap: int  # network tile overlap (model pixels)

    def factor(self, width: int, height: int, animal_px: float | None = None) -> float:
        """Model pixels per photo pixel for a photo of this size (see the module docstring)."""
        if animal_px:
            return self.animal_px / animal_px
        return frame_scale(width, height, self.frame_px, self.resolution)

    def options_for(self, options: PredictOptions, width: int, height: int) -> PredictOptions:
        """The options that tile this photo at the model's resolution."""
        f = self.factor(width, height, options.animal_px)
        net = options.imgsz or self.tile
        tile = max(1, round(net / f))
        overlap = min(tile - 1, max(0, round(options.overlap / f)))
        return options.with_overrides(tile=tile, overlap=overlap, imgsz=net)

    def to_dict(self) -> dict[str, Any]:
        return {
            "resolution": self.resolution,
            "frame_px": self.frame_px,
            "animal_px": self.animal_px,
            "tile": self.tile,
            "overlap": self.overlap,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Canonical | None:
        if not d:
            return None
        try:
            return cls(
                float(d["resolution"]), int(d["frame_px"]), float(d["animal_px"]), int(d["tile"]), int(d["overlap"])
            )
        except (KeyError, TypeError, ValueError):
            return None


def _size(item: Any) -> tuple[int, int] | None:
    if isinstance(item, np.ndarray) and item.ndim >= 2:
        return int(item.shape[1]), int(item.shape[0])
    if isinstance(item, str | Path):
        return image_size(Path(item))
    return None


def scaled_groups(
    canonical: Canonical, options: PredictOptions, items: Iterable[tuple[Any, Any, str]]
) -> Iterator[tuple[PredictOptions, list[tuple[Any, Any, str]]]]:
    """Consecutive photos with the same options, each group with its options. A photo whose size cannot be
    read (a broken file) keeps the options of the group it is in: the pipeline reports it and skips it."""
    group: list[tuple[Any, Any, str]] = []
    current: PredictOptions | None = None
    for item in items:
        size = _size(item[0])
        opts = current if size is None else canonical.options_for(options, *size)
        if opts is None:
            opts = canonical.options_for(options, canonical.frame_px, canonical.frame_px)
        if current is not None and opts != current:
            yield current, group
            group = []
        current = opts
        group.append(item)
    if group and current is not None:
        yield current, group
