"""Pieces shared by the format readers and writers: problems, numbers, names, sizes, label building."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from rookery.data.classes import Classes
from rookery.errors import InputError
from rookery.types import Boxes, ImageLabels, Points, Skipped

# Continuous (corner-origin) minus rookery (pixel-centre-origin) coordinates; see the package docstring.
SHIFT = 0.5

# Tolerance for "this point is the centre of that box" when deciding which points a box already carries.
CENTRE_TOL = 1e-6


class Bad(Exception):
    """A problem confined to one image (or one annotation): that image is skipped, the rest go on."""


@dataclass
class Problems:
    """Collects per-image problems; in strict mode the first one raises InputError instead."""

    strict: bool
    skipped: list[Skipped] = field(default_factory=list)

    def add(self, item: str, reason: str, cause: BaseException | None = None) -> None:
        if self.strict:
            raise InputError(reason) from cause
        self.skipped.append(Skipped(item, reason))


def number(value: object, what: str) -> float:
    """A finite number from JSON or XML (numeric strings are accepted); Bad otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Bad(f"{what} must be a number, got {value!r}")
    try:
        out = float(value)
    except ValueError as e:
        raise Bad(f"{what} must be a number, got {value!r}") from e
    if not math.isfinite(out):
        raise Bad(f"{what} must be a finite number, got {value!r}")
    return out


def numbers(values: object, n: int, what: str) -> list[float]:
    if not isinstance(values, list | tuple) or len(values) != n:
        raise Bad(f"{what} must be a list of {n} numbers, got {values!r}")
    return [number(v, f"each {what} value") for v in values]


def size_of(width: object, height: object, what: str) -> tuple[int, int] | None:
    """(width, height) when both are given, None when both are absent; Bad when not positive whole numbers."""
    if width is None and height is None:
        return None
    w, h = number(width, f"{what} width"), number(height, f"{what} height")
    if w <= 0 or h <= 0 or w != int(w) or h != int(h):
        raise Bad(f"{what} width and height must be positive whole numbers, got {width!r} x {height!r}")
    return int(w), int(h)


def stem_of(name: str) -> str:
    """File name without folders and extension; tolerates Windows separators in exported paths."""
    return PurePosixPath(name.replace("\\", "/")).stem


def load_json(path: Path) -> object:
    try:
        return json.loads(path.read_bytes())
    except json.JSONDecodeError as e:
        raise InputError(f"{path.name} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from e
    except UnicodeDecodeError as e:
        raise InputError(f"{path.name} is not valid JSON (not UTF-8 text)") from e
    except OSError as e:
        raise InputError(f"{path} could not be read: {e.strerror or e}") from e


class LabelMap:
    """Class name -> index; a name outside classes.yaml is a whole-file error (the class lists disagree)."""

    def __init__(self, classes: Classes, source: Path) -> None:
        self._index = {name: i for i, name in enumerate(classes.names)}
        self._known = ", ".join(classes.names)
        self._source = source

    def __call__(self, name: object, where: str) -> int:
        if isinstance(name, str) and name in self._index:
            return self._index[name]
        raise InputError(f"{self._source.name} {where}: label {name!r} is not in classes.yaml (known: {self._known})")


@dataclass
class Collector:
    """The points and boxes of one image as they are read, in file order."""

    size: tuple[int, int] | None = None
    points: list[tuple[float, float]] = field(default_factory=list)
    point_cls: list[int] = field(default_factory=list)
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    box_cls: list[int] = field(default_factory=list)

    def point(self, x: float, y: float, cls: int) -> None:
        """A point in continuous coordinates."""
        self.points.append((x - SHIFT, y - SHIFT))
        self.point_cls.append(cls)

    def box(self, x1: float, y1: float, x2: float, y2: float, cls: int, centre: bool = True) -> None:
        """A box in continuous coordinates; `centre` also records its centre as the object's point."""
        if x2 < x1 or y2 < y1:
            raise Bad(f"box ({x1}, {y1}, {x2}, {y2}) has its corners swapped or a negative size")
        self.boxes.append((x1 - SHIFT, y1 - SHIFT, x2 - SHIFT, y2 - SHIFT))
        self.box_cls.append(cls)
        if centre:
            self.points.append(((x1 + x2) / 2 - SHIFT, (y1 + y2) / 2 - SHIFT))
            self.point_cls.append(cls)

    def build(self, image: str, always_boxes: bool = False) -> ImageLabels:
        """Boxes are None when the image has none, unless the format is a box format (YOLO)."""
        points = Points(np.array(self.points, dtype=np.float64).reshape(-1, 2), np.array(self.point_cls))
        boxes = None
        if self.boxes or always_boxes:
            boxes = Boxes(np.array(self.boxes, dtype=np.float64).reshape(-1, 4), np.array(self.box_cls))
        return ImageLabels(image, points, boxes, self.size)


def uncovered_points(labels: ImageLabels) -> Points:
    """The points that are not the centre of a box of the same class: objects known only as points."""
    points, boxes = labels.points, labels.boxes
    if boxes is None or len(boxes) == 0 or len(points) == 0:
        return points
    # Match by sorted x (searchsorted), then check y and class: O(n log n), where an all-pairs table
    # would be O(n^2) and slow on colonies of thousands of animals.
    centres = boxes.centers()
    order = np.argsort(centres[:, 0], kind="stable")
    xs = centres[order, 0]
    lo = np.searchsorted(xs, points.xy[:, 0] - CENTRE_TOL, side="left")
    hi = np.searchsorted(xs, points.xy[:, 0] + CENTRE_TOL, side="right")
    covered = np.zeros(len(points), dtype=bool)
    for k in range(int((hi - lo).max())):  # usually 1: one candidate box per point
        j = order[np.minimum(lo + k, len(order) - 1)]
        same = (np.abs(centres[j, 1] - points.xy[:, 1]) <= CENTRE_TOL) & (boxes.cls[j] == points.cls)
        covered |= (lo + k < hi) & same
    return points.select(~covered)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header, as OpenCV will see it (EXIF rotation applied)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise Bad(f"{path.name} is not a readable image ({e})") from e
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def find_size(images_dir: Path, image: str) -> tuple[int, int]:
    from rookery.imaging import find_image

    found = find_image(images_dir, image)
    if found is None:
        raise Bad(f"no image named {image}.* in {images_dir}, so its size is unknown")
    return image_size(found)


def size_for_writing(lab: ImageLabels, images_dir: Path | None, problems: Problems, why: str) -> tuple[int, int] | None:
    """An image's (width, height) for a writer that needs it: from the labels, else from its file in
    `images_dir`. An unreadable file is a per-image problem (None); no way to know the size raises."""
    try:
        size = lab.size or (find_size(images_dir, lab.image) if images_dir is not None else None)
    except Bad as e:
        problems.add(lab.image, f"image {lab.image!r}: {e}", e)
        return None
    if size is None:
        raise InputError(
            f"image {lab.image!r} has no known size and {why}; pass the folder of images (images_dir / --images)"
        )
    return size


def check_unique(labels: Sequence[ImageLabels]) -> None:
    seen: set[str] = set()
    for lab in labels:
        if lab.image in seen:
            raise InputError(f"image {lab.image!r} appears twice in the labels to write; merge its labels first")
        seen.add(lab.image)
