"""The per-photo work of a data set build: scale, boxes, tile plan, blanking, writing tiles and labels.

Runs in worker processes (see dataset.py); everything a worker needs travels in a picklable `PhotoJob`
and comes back in a `PhotoResult`. A photo that cannot be used is reported in its result, never raised.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import cv2
import numpy as np

from rookery.data.boxes import points_to_boxes
from rookery.data.manifest import points_digest, sha256_file
from rookery.data.tiling import Tile, blank_ignored, cut_boxes, ignored_fractions, tile_grid
from rookery.errors import ConfigError, InputError, RookeryError
from rookery.imaging import read_image, write_image
from rookery.types import Boxes, Points

# A tile at least this much in the ignore region is never kept as a negative: it would be a black square.
MAX_IGNORED_NEGATIVE = 0.9


@dataclass(frozen=True)
class BuildParams:
    split: tuple[float, float, float] = (0.7, 0.2, 0.1)  # fractions of photos for train, val, test
    seed: int = 0
    tile: int = 640  # tile side in pixels, after `scale`
    overlap: int = 64  # pixels shared by neighbouring tiles
    scale: float = 1.0  # resize photos (and masks, points, boxes) by this factor before tiling
    # Ground resolution (see rookery.data.scale): with `resolution`, each photo is resized to this fraction of
    # full resolution instead of by `scale`; a photo's own fraction is its long side / `frame_px` (None: the
    # longest side among the photos), so 1/4-scale copies and full-resolution photos end up alike.
    resolution: float | None = None
    frame_px: int | None = None
    min_visible: float = 0.5  # keep a box in a tile when at least this fraction of it is inside
    empty_fraction: float = 0.1  # fraction of the tiles without labels kept as negatives
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        split = tuple(float(s) for s in self.split)
        object.__setattr__(self, "split", split)
        if len(split) != 3 or any(s < 0 for s in split) or abs(sum(split) - 1) > 1e-6 or split[0] <= 0:
            raise ConfigError(f"split must be three non-negative fractions summing to 1 with train > 0, got {split}")
        if self.tile <= 0 or not 0 <= self.overlap < self.tile:
            raise ConfigError(
                f"tile must be positive and overlap between 0 and tile - 1, got tile={self.tile}, "
                f"overlap={self.overlap}"
            )
        if not 0 < self.scale <= 8:
            raise ConfigError(f"scale must be above 0 and at most 8, got {self.scale}")
        if self.resolution is not None and not 0 < self.resolution <= 8:
            raise ConfigError(f"resolution must be above 0 and at most 8, got {self.resolution}")
        if self.frame_px is not None and self.frame_px < 1:
            raise ConfigError(f"frame_px must be a positive number of pixels, got {self.frame_px}")
        if not 0 < self.min_visible <= 1:
            raise ConfigError(f"min_visible must be above 0 and at most 1, got {self.min_visible}")
        if not 0 <= self.empty_fraction <= 1:
            raise ConfigError(f"empty_fraction must be between 0 and 1, got {self.empty_fraction}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"jpeg_quality must be between 1 and 100, got {self.jpeg_quality}")

    def to_dict(self) -> dict[str, object]:
        d = dataclasses.asdict(self)
        d["split"] = list(self.split)
        return d


@dataclass(frozen=True)
class TilePlan:
    """What to write for one tile: its position and its boxes in tile coordinates (empty = negative)."""

    tile: Tile
    boxes: Boxes

    def name(self, stem: str) -> str:
        return f"{stem}_{self.tile.x0}_{self.tile.y0}"


def plan_tiles(
    size: tuple[int, int], boxes: Boxes, mask: np.ndarray | None, params: BuildParams, stem: str
) -> list[TilePlan]:
    """The tiles to keep for one photo: every tile with labels, and negatives drawn by a seeded hash.

    A tile that a box touches without being kept in it is neither: it would teach that a cut animal is
    background. Of the remaining empty tiles that are not mostly ignore region, `empty_fraction` is kept
    (rounded stochastically, so small photos are not all rounded down to zero).
    """
    grid = tile_grid(size[0], size[1], params.tile, params.overlap)
    ignored = ignored_fractions(mask, grid)
    kept: list[TilePlan] = []
    candidates: list[Tile] = []
    for tile, ign in zip(grid, ignored, strict=True):
        cut = cut_boxes(boxes, tile, params.min_visible)
        if len(cut):
            kept.append(TilePlan(tile, cut))
        elif ign < MAX_IGNORED_NEGATIVE and len(cut_boxes(boxes, tile, min_visible=0.0)) == 0:
            candidates.append(tile)
    u = _unit_hash(params.seed, stem, "count")
    k = int(np.floor(params.empty_fraction * len(candidates) + u))
    candidates.sort(key=lambda t: _unit_hash(params.seed, stem, t.x0, t.y0))
    kept += [TilePlan(t, Boxes.empty()) for t in candidates[:k]]
    return sorted(kept, key=lambda p: (p.tile.y0, p.tile.x0))


def yolo_lines(boxes: Boxes, tile: Tile) -> str:
    """YOLO label text for boxes in tile coordinates: `cls cx cy w h`, normalised, 6 decimals."""
    if len(boxes) == 0:
        return ""
    wh = np.array([tile.width, tile.height, tile.width, tile.height], dtype=np.float64)
    xyxy = boxes.xyxy + 0.5  # pixel-centre coordinates -> pixel-edge coordinates (0 = left edge)
    cxcywh = np.column_stack([(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]])
    norm = np.clip(cxcywh / wh, 0.0, 1.0)
    return "".join(
        f"{c} {a:.6f} {b:.6f} {w:.6f} {h:.6f}\n"
        for c, (a, b, w, h) in zip(boxes.cls.tolist(), norm.tolist(), strict=True)
    )


def in_mask(xy: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Whether each point (inside the image) lies on an annotated pixel (mask >= 128, nearest pixel)."""
    if mask is None:
        return np.ones(len(xy), dtype=bool)
    col = np.clip(np.rint(xy[:, 0]).astype(np.int64), 0, mask.shape[1] - 1)
    row = np.clip(np.rint(xy[:, 1]).astype(np.int64), 0, mask.shape[0] - 1)
    return cast(np.ndarray, mask[row, col] >= 128)


@dataclass(frozen=True)
class PhotoJob:
    stem: str
    image: Path | None
    mask: Path | None
    points: Points
    sizes: tuple[float, ...]
    classes: tuple[str, ...]
    params: BuildParams
    staging: Path
    scale: float = 1.0  # this photo's resize factor (BuildParams.scale, or from its ground resolution)

    def __str__(self) -> str:
        return self.stem


@dataclass
class PhotoResult:
    stem: str
    digests: dict[str, str | None]  # sha256 / mask_sha256 / points, for the fingerprint
    error: str | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    file: str = ""
    bytes: int = 0
    size: tuple[int, int] = (0, 0)
    counts_in_mask: list[int] = field(default_factory=list)
    tiles: list[tuple[str, bool]] = field(default_factory=list)  # (name, is negative)
    objects: list[int] = field(default_factory=list)  # per class, over the written tiles


def input_digests(job: PhotoJob) -> dict[str, str | None]:
    return {
        "sha256": None if job.image is None else sha256_file(job.image),
        "mask_sha256": None if job.mask is None else sha256_file(job.mask),
        "points": points_digest(job.points),
    }


def process_photo(job: PhotoJob) -> PhotoResult:
    result = PhotoResult(job.stem, input_digests(job))
    if job.image is None:
        result.error = "listed in points.csv but no image of that name is in the images folder"
        result.skipped.append((job.stem, result.error))
        return result
    try:
        _tile_photo(job, result)
    except RookeryError as e:
        result.error = str(e)
        result.skipped.append((job.stem, result.error))
    return result


def _tile_photo(job: PhotoJob, result: PhotoResult) -> None:
    assert job.image is not None
    image = read_image(job.image)
    h, w = image.shape[:2]
    mask = None
    if job.mask is not None:
        mask = read_image(job.mask, cv2.IMREAD_GRAYSCALE)
        if mask.shape != (h, w):
            raise InputError(f"mask {job.mask.name} is {mask.shape[1]}x{mask.shape[0]} but its photo is {w}x{h}")
    pts = job.points
    inside = np.all((pts.xy >= -0.5) & (pts.xy <= [w - 0.5, h - 0.5]), axis=1)
    if not inside.all():
        x, y = pts.xy[~inside][0]
        result.skipped.append(
            (
                f"{job.stem}: {int((~inside).sum())} point(s)",
                f"outside the {w}x{h} photo, e.g. ({x:g}, {y:g})",
            )
        )
    pts = pts.select(inside)
    pts = pts.select(in_mask(pts.xy, mask))  # points in the ignore region would label a black patch
    n_classes = len(job.classes)
    result.file, result.bytes, result.size = job.image.name, job.image.stat().st_size, (w, h)
    result.counts_in_mask = pts.counts(n_classes).tolist()

    s = job.scale
    if s != 1.0:
        sw, sh = max(1, round(w * s)), max(1, round(h * s))
        interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, (sw, sh), interpolation=interp)
        if mask is not None:
            mask = cv2.resize(mask, (sw, sh), interpolation=cv2.INTER_NEAREST)
        pts = Points((pts.xy + 0.5) * [sw / w, sh / h] - 0.5, pts.cls)
        w, h = sw, sh
    boxes = points_to_boxes(pts, job.sizes, (w, h))  # sides already at the tiles' resolution
    if mask is not None:
        image = blank_ignored(image, mask)

    objects = np.zeros(n_classes, dtype=np.int64)
    for plan in plan_tiles((w, h), boxes, mask, job.params, job.stem):
        name = plan.name(job.stem)
        write_image(job.staging / "images" / f"{name}.jpg", plan.tile.crop(image), quality=job.params.jpeg_quality)
        (job.staging / "labels" / f"{name}.txt").write_text(yolo_lines(plan.boxes, plan.tile))
        objects += plan.boxes.counts(n_classes)
        result.tiles.append((name, len(plan.boxes) == 0))
    result.objects = objects.tolist()


def _unit_hash(*parts: object) -> float:
    """A number in [0, 1) from a sha256 of the parts: the same on every machine and numpy version."""
    digest = hashlib.sha256("\0".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
