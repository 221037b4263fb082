"""The photos of bench/sealions.py: the 13 shared photos with truth in one folder, and folds of them."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass
class Photos:
    root: Path  # train/<stem>.jpg, masks/<stem>.png, points.csv
    stems: list[str]
    totals: dict[str, int]  # animals inside the mask per photo


def gather_photos(quarter: Path, full: Path, out: Path, q: tuple, pairs: tuple, painted: tuple) -> Photos:
    """Links to the clean photos and masks, the painted-only photos with their paint removed (written once),
    and one points.csv (each photo's points in its own pixels)."""
    from rookery.data.classes import Classes
    from rookery.data.points_csv import read_points_csv

    for sub in ("train", "masks"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    rows: list[list[str]] = []
    for src, stems in ((quarter, q), (full, pairs + painted)):
        with (src / "points.csv").open() as f:
            reader = csv.reader(f)
            header = next(reader)
            rows += [r for r in reader if r[0] in stems]
        for stem in stems:
            _link(src / "masks" / f"{stem}.png", out / "masks" / f"{stem}.png")
            if stem in painted:
                target = out / "train" / f"{stem}.jpg"
                if not target.is_file():
                    _remove_paint(src / "dotted_only" / f"{stem}.jpg", src / "points.csv", stem, target)
            else:
                _link(src / "train" / f"{stem}.jpg", out / "train" / f"{stem}.jpg")
    with (out / "points.csv").open("w", newline="") as g:
        writer = csv.writer(g)
        writer.writerow(header)
        writer.writerows(rows)
    classes = Classes.load(Path(__file__).resolve().parents[1] / "examples" / "sealions" / "classes.yaml")
    labels = read_points_csv(out / "points.csv", classes)
    stems = list(q) + list(pairs) + list(painted)
    totals = {}
    for s in stems:
        mask = cv2.imread(str(out / "masks" / f"{s}.png"), cv2.IMREAD_GRAYSCALE)
        xy = labels[s].points.xy if s in labels else np.zeros((0, 2))
        r = np.clip(np.rint(xy[:, 1]).astype(int), 0, mask.shape[0] - 1)
        c = np.clip(np.rint(xy[:, 0]).astype(int), 0, mask.shape[1] - 1)
        totals[s] = int((mask[r, c] >= 128).sum())
    return Photos(out, stems, totals)


def _remove_paint(painted: Path, points: Path, stem: str, target: Path, radius: int = 8) -> None:
    """The painted photo with a disc around each of its (known) dots inpainted (OpenCV's Telea method): the
    bench knows where the dots are; `rookery data dots` finds them itself on photos without truth."""
    from rookery.data.classes import SEALION_CLASSES
    from rookery.data.points_csv import read_points_csv

    image = cv2.imread(str(painted), cv2.IMREAD_COLOR)
    holes = np.zeros(image.shape[:2], np.uint8)
    for x, y in read_points_csv(points, SEALION_CLASSES)[stem].points.xy:
        cv2.circle(holes, (round(x), round(y)), radius, 255, -1)
    clean = cv2.inpaint(image, holes, 5, cv2.INPAINT_TELEA)
    cv2.imwrite(str(target), clean, [cv2.IMWRITE_JPEG_QUALITY, 95])


def _link(src: Path, dst: Path) -> None:
    if not dst.exists():
        dst.symlink_to(src.resolve())


def assign_folds(photos: Photos, names: list[str], folds: int) -> list[list[str]]:
    """Photos dealt into folds by their animal count, largest first (so the dense photos spread out)."""
    order = sorted(names, key=lambda s: (-photos.totals[s], s))
    out: list[list[str]] = [[] for _ in range(min(folds, len(order)))]
    for k, s in enumerate(order):
        out[k % len(out)].append(s)
    return out


def subset(root: Path, stems: list[str], out: Path) -> None:
    """A folder with only these photos (links), their masks and their rows of points.csv."""
    for sub in ("train", "masks"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for stem in stems:
        for sub, suffix in (("train", ".jpg"), ("masks", ".png")):
            _link(root / sub / f"{stem}{suffix}", out / sub / f"{stem}{suffix}")
    with (root / "points.csv").open() as f, (out / "points.csv").open("w", newline="") as g:
        reader, writer = csv.reader(f), csv.writer(g)
        writer.writerow(next(reader))
        writer.writerows(row for row in reader if row[0] in stems)
