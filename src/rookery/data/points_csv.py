"""points.csv (`image,x,y,class`, one row per object) and counts.csv (one row per image).

This is the exchange format between every step: the synthetic generator and the dots finder write it,
the data set builder and the counting evaluation read it.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from rookery.data.classes import Classes
from rookery.errors import InputError
from rookery.types import ImageLabels, Points

POINT_COLUMNS = ("image", "x", "y", "class")


def write_points_csv(path: Path, labels: Iterable[ImageLabels], classes: Classes, decimals: int = 2) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(POINT_COLUMNS)
        for lab in labels:
            for (x, y), c in zip(lab.points.xy, lab.points.cls, strict=True):
                w.writerow((lab.image, round(float(x), decimals), round(float(y), decimals), classes.names[c]))


def read_points_csv(path: Path, classes: Classes) -> dict[str, ImageLabels]:
    """Read points.csv into ImageLabels keyed by image name (file name without extension)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"points file {path} does not exist")
    rows: dict[str, tuple[list[tuple[float, float]], list[int]]] = {}
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = set(POINT_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise InputError(
                f"{path.name} lacks the column(s) {', '.join(sorted(missing))}; expected {','.join(POINT_COLUMNS)}"
            )
        for line, row in enumerate(reader, start=2):
            try:
                xy = (float(row["x"]), float(row["y"]))
                if not (math.isfinite(xy[0]) and math.isfinite(xy[1])):
                    raise ValueError("not finite")
            except (TypeError, ValueError) as e:
                raise InputError(
                    f"{path.name} line {line}: x and y must be finite numbers, got {row['x']!r}, {row['y']!r}"
                ) from e
            name = row["class"]
            if name not in classes.names:
                raise InputError(
                    f"{path.name} line {line}: class {name!r} is not in classes.yaml ({', '.join(classes.names)})"
                )
            xys, cls = rows.setdefault(str(row["image"]), ([], []))
            xys.append(xy)
            cls.append(classes.names.index(name))
    return {
        image: ImageLabels(image, Points(np.array(xys, dtype=np.float64).reshape(-1, 2), np.array(cls, dtype=np.int64)))
        for image, (xys, cls) in rows.items()
    }


def write_counts_csv(path: Path, counts: Mapping[str, np.ndarray], classes: Classes) -> None:
    """One row per image: `image,<class>...,total`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(("image", *classes.names, "total"))
        for image, c in counts.items():
            w.writerow((image, *(int(v) for v in c), int(np.sum(c))))


def read_counts_csv(path: Path, classes: Classes) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"counts file {path} does not exist")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = {"image", *classes.names} - set(reader.fieldnames or ())
        if missing:
            raise InputError(f"{path.name} lacks the column(s) {', '.join(sorted(missing))}")
        return {str(row["image"]): np.array([int(row[n]) for n in classes.names], dtype=np.int64) for row in reader}
