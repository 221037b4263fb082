"""Ground resolution: bring every photo to one canonical animal size before tiling, in training and counting.

Survey photos come at different scales: 1/4-scale copies (an adult sea lion ~12 px long), full-resolution
frames (~50 px), and frames of other cameras or altitudes. A network learns animals at the size it saw them,
so rookery resizes each photo to one *resolution* first: a fraction of the survey's full resolution.

How a photo's scale is known, in order:
1. given: `--animal-px N` (the typical length of an adult animal in the photo's pixels) on `predict` and
   `evaluate`; the model knows the animal length at its own resolution (`animal_px` in rookery_model.json),
   and the photo is resized by model animal_px / N;
2. estimated from the photo itself, by the *frame rule*: photos of one survey cover about the same ground
   per frame, so a photo's fraction of full resolution is its long side / `frame_px`, the long side of a
   full-resolution frame. `rookery data build --resolution R` takes `frame_px` from the data (the longest
   photo side it was given, or `--frame-px`), records it in the data set and the model, and resizes each
   photo by R x frame_px / its long side. A 1248 px copy of a 4992 px frame is then taken as 1/4 scale —
   exactly how the shared sea lion sample was made.
The frame rule is wrong for a crop of a frame and for a camera with another footprint: pass --animal-px there.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from rookery.types import ImageLabels, Points


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file's header, without decoding the pixels; None when unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return int(im.width), int(im.height)
    except (OSError, UnidentifiedImageError, ValueError):
        return None


def frame_scale(width: int, height: int, frame_px: int, resolution: float) -> float:
    """The resize factor that brings a photo of this size to `resolution` of full resolution (frame rule)."""
    return resolution * frame_px / max(width, height, 1)


def photo_scales(files: Mapping[str, Path | None], params: object) -> dict[str, float]:
    """Per photo stem, its resize factor for a build: BuildParams.scale for all, or by the frame rule when
    `params.resolution` is set (then `params.frame_px` or the longest side among the photos is full size)."""
    resolution = getattr(params, "resolution", None)
    if resolution is None:
        return {}
    sizes = {s: image_size(p) for s, p in files.items() if p is not None}
    known = {s: wh for s, wh in sizes.items() if wh is not None}
    frame_px = getattr(params, "frame_px", None) or max((max(wh) for wh in known.values()), default=0)
    if not frame_px:
        return {}
    return {s: frame_scale(w, h, frame_px, resolution) for s, (w, h) in known.items()}


def frame_px_of(files: Mapping[str, Path | None], params: object) -> int | None:
    """The full-resolution long side a build used (None when it did not resize by resolution)."""
    if getattr(params, "resolution", None) is None:
        return None
    given = getattr(params, "frame_px", None)
    if given:
        return int(given)
    sizes = [image_size(p) for p in files.values() if p is not None]
    return max((max(wh) for wh in sizes if wh is not None), default=None)


def scale_labels(labels: ImageLabels, scale: float) -> ImageLabels:
    """The labels of a photo resized by `scale` (pixel-centre convention: edges scale, centres follow)."""
    if scale == 1.0:
        return labels
    pts = labels.points
    return ImageLabels(labels.image, Points((pts.xy + 0.5) * scale - 0.5, pts.cls))
