"""The sliced, batched run over a stream of photos, with tiling and decoding overlapped with inference.

A producer thread reads (or takes) each photo, checks it, lays its tile grid, skips tiles wholly in the
ignore region, and packs tiles (of one or several photos) into batches ready for the network; it stays at
most QUEUE_DEPTH batches ahead. The calling thread runs the network (ONNX Runtime and torch release the
GIL), decodes each batch, and finishes a photo (merge across seams, ignore mask) once its last tile is
back. Results come out in input order; a bad photo becomes a Skipped and the others go on.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from rookery.data.tiling import Tile, ignored_fractions, tile_grid
from rookery.errors import ConfigError, InputError, RookeryError
from rookery.imaging import read_image
from rookery.inference.backends import Backend
from rookery.inference.decode import decode, padded_size, stack_tiles
from rookery.inference.merge import cut_flags, drop_ignored, merge_detections
from rookery.inference.options import PredictOptions
from rookery.types import Boxes, Skipped

QUEUE_DEPTH = 2  # batches prepared ahead of the network: enough to hide tiling, bounded in memory

ImageInput = np.ndarray | str | Path
MaskInput = np.ndarray | str | Path | None


@dataclass
class _Photo:
    index: int
    name: str
    width: int
    height: int
    mask: np.ndarray | None
    tiles: int  # tiles run
    todo: int  # tiles not back from the network yet
    parts: list[tuple[np.ndarray, ...]] = field(default_factory=list)
    result: Boxes | None = None


@dataclass
class SkippedPhoto:
    index: int
    skipped: Skipped
    error: RookeryError


@dataclass
class _Batch:
    prepared: Any
    photos: list[_Photo]  # per row of the batch
    tiles: list[Tile]


@dataclass
class _Failed:
    error: BaseException


_DONE = object()


def load_photo(item: ImageInput, mask: MaskInput, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The (H, W, 3) uint8 BGR photo and its 0/255 mask, checked, or an InputError saying what is wrong."""
    image = read_image(Path(item)) if isinstance(item, str | Path) else item
    if not isinstance(image, np.ndarray):
        raise InputError(f"{name} is neither an image array nor a path, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"{name} must be a 3-channel BGR image (height, width, 3), got shape {image.shape}")
    if image.dtype != np.uint8:
        raise InputError(f"{name} must be an 8-bit image (uint8), got {image.dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"{name} is empty (shape {image.shape})")
    if mask is None:
        return image, None
    if isinstance(mask, str | Path):
        mask = read_image(Path(mask), cv2.IMREAD_GRAYSCALE)
    mask = np.asarray(mask)
    if mask.shape != image.shape[:2]:
        raise InputError(
            f"the mask of {name} must be a single-channel {image.shape[1]}x{image.shape[0]} array like its "
            f"photo, got shape {mask.shape}"
        )
    if mask.dtype == bool:
        mask = mask.view(np.uint8) * np.uint8(255)
    return image, mask


def check_fits(backend: Backend, options: PredictOptions) -> None:
    """A ConfigError when the tiles cannot go through this network (an ONNX model of fixed input size)."""
    side = options.imgsz or options.tile
    if backend.input_size is not None and (side > backend.input_size[0] or side > backend.input_size[1]):
        raise ConfigError(
            f"this model takes only {backend.input_size[1]}x{backend.input_size[0]} inputs; use a tile of at "
            "most that size or export it with dynamic=True"
        )


def run_pipeline(
    backend: Backend,
    options: PredictOptions,
    items: Iterable[tuple[ImageInput, MaskInput, str]],
) -> Iterator[tuple[int, Boxes | SkippedPhoto]]:
    """(index, Boxes) per photo in input order, or (index, SkippedPhoto) for a photo that could not be read."""
    check_fits(backend, options)
    q: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_DEPTH)
    stop = threading.Event()
    producer = threading.Thread(
        target=_produce, args=(backend, options, items, q, stop), name="rookery-tiles", daemon=True
    )
    producer.start()
    pending: deque[_Photo | SkippedPhoto] = deque()
    nc = len(backend.class_names)
    try:
        while True:
            msg = q.get()
            if msg is _DONE:
                break
            if isinstance(msg, _Failed):
                raise msg.error
            if isinstance(msg, _Batch):
                _consume(backend, options, msg, nc)
            else:
                pending.append(msg)
                if isinstance(msg, _Photo) and msg.todo == 0:
                    _finish(msg, options)
            while pending and (isinstance(pending[0], SkippedPhoto) or pending[0].result is not None):
                done = pending.popleft()
                yield done.index, done if isinstance(done, SkippedPhoto) else done.result  # type: ignore[misc]
    finally:
        stop.set()
        while producer.is_alive():  # unblock a producer waiting on a full queue, then let it see `stop`
            with contextlib.suppress(queue.Empty):
                q.get(timeout=0.05)
        producer.join()


def _produce(
    backend: Backend,
    options: PredictOptions,
    items: Iterable[tuple[ImageInput, MaskInput, str]],
    q: queue.Queue[Any],
    stop: threading.Event,
) -> None:
    def put(msg: object) -> bool:
        while not stop.is_set():
            try:
                q.put(msg, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    size = options.batch if backend.max_batch is None else backend.max_batch
    rows: list[tuple[_Photo, Tile, np.ndarray]] = []
    try:
        for index, (item, mask_item, name) in enumerate(items):
            try:
                image, mask = load_photo(item, mask_item, name)
            except RookeryError as e:
                if not put(SkippedPhoto(index, Skipped(name, str(e)), e)):
                    return
                continue
            h, w = image.shape[:2]
            tiles = tile_grid(w, h, options.tile, options.overlap)
            if mask is not None:  # a tile wholly in the ignore region cannot hold a counted object
                tiles = [t for t, f in zip(tiles, ignored_fractions(mask, tiles), strict=True) if f < 1.0]
            photo = _Photo(index, name, w, h, mask, tiles=len(tiles), todo=len(tiles))
            if not put(photo):
                return
            for tile in tiles:
                rows.append((photo, tile, image))
                if len(rows) == size:
                    if not put(_make_batch(backend, rows, options.scale)):
                        return
                    rows = []
        if rows and not put(_make_batch(backend, rows, options.scale)):
            return
        put(_DONE)
    except BaseException as e:  # a bug or a failing input iterator: hand it to the caller's thread
        put(_Failed(e))


def _make_batch(backend: Backend, rows: list[tuple[_Photo, Tile, np.ndarray]], scale: float = 1.0) -> _Batch:
    tiles = [t for _, t, _ in rows]
    crops = [t.crop(image) for _, t, image in rows]
    if scale != 1.0:
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        crops = [
            cv2.resize(
                c, (max(1, round(c.shape[1] * scale)), max(1, round(c.shape[0] * scale))), interpolation=interpolation
            )
            for c in crops
        ]
    size = padded_size([c.shape[:2] for c in crops], backend.stride, backend.input_size)
    batch = stack_tiles(crops, size)
    return _Batch(backend.prepare(batch), [p for p, _, _ in rows], tiles)


def _consume(backend: Backend, options: PredictOptions, batch: _Batch, nc: int) -> None:
    """Run one batch and hand each photo its detections in photo coordinates, with cut flags."""
    tiles = batch.tiles
    wh = np.array([[t.width, t.height] for t in tiles], dtype=np.float64)
    raw = backend.run(batch.prepared)
    det = decode(raw, wh * options.scale, nc, options.conf, options.iou)
    if options.scale != 1.0:  # network pixels -> photo pixels (continuous coordinates, edges at 0)
        det.xyxy[:] = det.xyxy / options.scale
    photos = batch.photos
    offset = np.array([[t.x0, t.y0] for t in tiles], dtype=np.float64) - 0.5  # pixel edges -> centres
    inner = np.array(
        [[t.x0 > 0, t.y0 > 0, t.x1 < p.width, t.y1 < p.height] for t, p in zip(tiles, photos, strict=True)]
    ).reshape(-1, 4)
    cut = cut_flags(det.xyxy, wh[det.tile], inner[det.tile])
    xyxy = det.xyxy + np.tile(offset[det.tile], 2)
    owner = np.array([id(p) for p in photos])
    for photo in {id(p): p for p in photos}.values():
        rows = np.flatnonzero(owner == id(photo))
        sel = np.isin(det.tile, rows)
        photo.parts.append((xyxy[sel], det.cls[sel], det.score[sel], cut[sel]))
        photo.todo -= len(rows)
        if photo.todo == 0:
            _finish(photo, options)


def _finish(photo: _Photo, options: PredictOptions) -> None:
    if photo.parts:
        xyxy, cls, score, cut = (np.concatenate(p) for p in zip(*photo.parts, strict=True))
    else:
        xyxy, cls, score, cut = np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, bool)
    if photo.tiles > 1:
        merged = merge_detections(xyxy, cls, score, cut, options.merge, options.iou)
    else:  # one tile: NMS already ran on it, so a small photo gives exactly what Ultralytics' predict gives
        order = np.argsort(-score, kind="stable")
        merged = Boxes(xyxy[order], cls[order], score[order])
    photo.result = drop_ignored(merged, photo.mask)  # after merging: an object counts where its whole box is
    photo.parts.clear()
