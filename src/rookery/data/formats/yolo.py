"""YOLO txt: one `<image>.txt` per image, lines `class cx cy w h` as fractions of the image size.

Fractions need each image's size, so reading needs the images folder (a header read, not a decode).
Each txt file stands alone: a broken one skips its image only. `classes.txt` (written by LabelImg) is
not a label file and is ignored. Writing makes `<image>.txt` files and nothing else; an image with no
objects gets an empty file (a background image for training). A point without a box (an object known
only as a point) is written as a square of its class's `box` side from classes.yaml.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rookery.data.classes import Classes
from rookery.data.formats._common import SHIFT, Bad, Problems, find_size, size_for_writing, uncovered_points
from rookery.errors import ConfigError, InputError
from rookery.types import Boxes, ImageLabels, Points

# Slack for fractions written as 1.0000001 by float formatting in other tools.
_FRACTION_TOL = 1e-6


def read_yolo(folder: Path, classes: Classes, images_dir: Path | None, problems: Problems) -> list[ImageLabels]:
    if not folder.is_dir():
        raise InputError(f"YOLO labels are a folder of <image>.txt files, and {folder} is not a folder")
    if images_dir is None:
        raise InputError(
            "reading YOLO labels needs the images folder (images_dir / --images), because YOLO "
            "coordinates are fractions of each image's size"
        )
    if not images_dir.is_dir():
        raise InputError(f"the images folder {images_dir} is not a folder")
    out = []
    for txt in sorted(folder.glob("*.txt")):
        if txt.name == "classes.txt":
            continue
        try:
            out.append(_read_file(txt, len(classes), find_size(images_dir, txt.stem)))
        except Bad as e:
            problems.add(txt.stem, f"{txt.name}: {e}", e)
    return out


def _read_file(txt: Path, num_classes: int, size: tuple[int, int]) -> ImageLabels:
    try:
        text = txt.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise Bad(f"could not be read as text ({e})") from e
    rows: list[tuple[float, ...]] = []
    lines: list[tuple[int, str]] = []  # (line number, text) of each row, for messages
    for lineno, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 5:
            raise Bad(f"line {lineno}: expected 'class cx cy w h', got {line.strip()!r}")
        try:
            rows.append((int(parts[0]), *(float(p) for p in parts[1:])))
        except ValueError as e:
            raise Bad(f"line {lineno}: expected an integer class and four numbers, got {line.strip()!r}") from e
        lines.append((lineno, line.strip()))
    # Checked on the whole table at once: files from dense colonies have thousands of lines.
    table = np.array(rows, dtype=np.float64).reshape(-1, 5)
    cls = table[:, 0].astype(np.int64)
    wrong = np.flatnonzero((cls < 0) | (cls >= num_classes))
    if len(wrong):
        raise Bad(
            f"line {lines[wrong[0]][0]}: class {cls[wrong[0]]} is out of range; classes.yaml has "
            f"{num_classes} classes (0 to {num_classes - 1})"
        )
    frac = table[:, 1:]
    wrong = np.flatnonzero((~np.isfinite(frac) | (frac < -_FRACTION_TOL) | (frac > 1 + _FRACTION_TOL)).any(axis=1))
    if len(wrong):
        lineno, line = lines[wrong[0]]
        raise Bad(f"line {lineno}: coordinates must be fractions of the image size between 0 and 1, got {line!r}")
    (w_img, h_img), (cx, cy, w, h) = size, frac.T
    xyxy = np.stack([(cx - w / 2) * w_img, (cy - h / 2) * h_img, (cx + w / 2) * w_img, (cy + h / 2) * h_img], axis=1)
    boxes = Boxes(xyxy - SHIFT, cls)
    return ImageLabels(txt.stem, Points(boxes.centers(), cls), boxes, size)


def write_yolo(
    labels: Sequence[ImageLabels], out: Path, classes: Classes, images_dir: Path | None, problems: Problems
) -> None:
    texts: dict[str, str] = {}
    for lab in labels:
        size = size_for_writing(lab, images_dir, problems, "YOLO coordinates are fractions of it")
        if size is None:
            continue
        xyxy, cls = _boxes_for(lab, classes)
        # Back to continuous coordinates, then to fractions of the image.
        w_img, h_img = size
        cx = ((xyxy[:, 0] + xyxy[:, 2]) / 2 + SHIFT) / w_img
        cy = ((xyxy[:, 1] + xyxy[:, 3]) / 2 + SHIFT) / h_img
        bw = (xyxy[:, 2] - xyxy[:, 0]) / w_img
        bh = (xyxy[:, 3] - xyxy[:, 1]) / h_img
        # Never write what the reader (and Ultralytics) would refuse: a centre or size outside 0..1.
        values = np.stack([cx, cy, bw, bh])
        outside = np.flatnonzero(((values < -_FRACTION_TOL) | (values > 1 + _FRACTION_TOL)).any(axis=0))
        if len(outside):
            k = int(outside[0])
            problems.add(
                lab.image,
                f"image {lab.image!r}: the box {xyxy[k].round(2).tolist()} has its centre outside the "
                f"{w_img}x{h_img} image or is larger than it, which YOLO cannot hold",
            )
            continue
        rows = zip(cls.tolist(), cx.tolist(), cy.tolist(), bw.tolist(), bh.tolist(), strict=True)
        texts[lab.image] = "".join(f"{c} {_fmt(a)} {_fmt(b)} {_fmt(d)} {_fmt(e)}\n" for c, a, b, d, e in rows)
    if labels and not texts:
        return  # every image was skipped (and reported): leave no empty folder that looks like a result
    out.mkdir(parents=True, exist_ok=True)
    for image, text in texts.items():
        (out / f"{image}.txt").write_text(text)


def _boxes_for(lab: ImageLabels, classes: Classes) -> tuple[np.ndarray, np.ndarray]:
    """The image's boxes plus a class-sized square around each point that has no box."""
    points = uncovered_points(lab)
    boxes = (lab.boxes.xyxy, lab.boxes.cls) if lab.boxes is not None else (np.zeros((0, 4)), np.zeros(0, int))
    if len(points) == 0:
        return boxes
    sides = [spec.box for spec in classes]
    lacking = [c for c in points.cls.tolist() if sides[c] is None]
    if lacking:
        names = ", ".join(sorted({classes.names[c] for c in lacking}))
        raise ConfigError(
            f"image {lab.image!r} has {len(lacking)} point(s) of {names} without a box and YOLO needs boxes, "
            f"so give {names} a box side in classes.yaml (e.g. '{classes.names[lacking[0]]}: "
            "{color: [R, G, B], box: 24}')"
        )
    half = np.array([sides[c] for c in points.cls.tolist()], dtype=np.float64)[:, None] / 2
    squares = np.hstack([points.xy - half, points.xy + half])
    return np.vstack([boxes[0], squares]), np.concatenate([boxes[1], points.cls])


def _fmt(value: float) -> str:
    """12 decimals: exact to well under 1e-6 px even on 20,000 px images; trailing zeros dropped."""
    text = f"{value + 0.0:.12f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text
