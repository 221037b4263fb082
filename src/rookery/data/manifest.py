"""manifest.json: what a built data set was made from, how, and what it holds.

The `fingerprint` is a sha256 over the content of the inputs (each photo's and mask's bytes, the points)
and the build parameters, so it is the same on every machine and every run for the same inputs, and
changes when any input byte, point or parameter changes. Paths, times, the worker count and the rookery
version do not enter it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
from pydantic import BaseModel, ValidationError

from rookery.errors import InputError
from rookery.types import Points

MANIFEST_NAME = "manifest.json"
FORMAT: Final = "rookery-dataset/1"
SPLITS = ("train", "val", "test")


class PhotoEntry(BaseModel):
    """One source photo that went into the data set."""

    image: str  # name without extension, the key of points.csv
    file: str  # file name in the images folder
    sha256: str
    bytes: int
    width: int  # at the photo's own scale
    height: int
    split: Literal["train", "val", "test"]
    mask: str | None  # mask file name, None = the whole photo is annotated
    mask_sha256: str | None
    points: int  # rows of points.csv for this photo
    counts_in_mask: dict[str, int]  # per class: points inside the photo and its mask (counting ground truth)
    tiles: int  # tiles written (with labels + negatives)
    negatives: int  # of which without labels
    scale: float = 1.0  # the resize factor from the photo to its tiles


class SkippedEntry(BaseModel):
    item: str
    reason: str


class BoxSizeEntry(BaseModel):
    size: float  # side in pixels of the tiles (after each photo's resize)
    estimated: bool


class Manifest(BaseModel):
    format: Literal["rookery-dataset/1"] = FORMAT
    rookery_version: str
    created: str  # ISO 8601, UTC
    fingerprint: str
    classes: list[str]
    params: dict[str, Any]
    box_sizes: dict[str, BoxSizeEntry]
    box_size_method: str  # how estimated sizes were obtained
    photos: list[PhotoEntry]
    tiles: dict[str, int]  # per split
    negatives: dict[str, int]  # per split
    objects: dict[str, dict[str, int]]  # per split, per class: boxes in the tile label files
    skipped: list[SkippedEntry]
    warnings: list[str]
    # Absolute folders of the source photos and masks at build time, so that `rookery evaluate --data`
    # can find the full photos. Not in the fingerprint (paths differ between machines); None in
    # manifests written before they were recorded.
    images_dir: str | None = None
    masks_dir: str | None = None

    @classmethod
    def load(cls, dataset_dir: Path) -> Manifest:
        path = Path(dataset_dir) / MANIFEST_NAME
        if not path.is_file():
            raise InputError(f"{dataset_dir} is not a rookery data set: it has no {MANIFEST_NAME}")
        try:
            return cls.model_validate_json(path.read_text())
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InputError(f"{path} is not a valid rookery manifest ({where}: {first['msg']})") from e

    def save(self, dataset_dir: Path) -> None:
        (Path(dataset_dir) / MANIFEST_NAME).write_text(self.model_dump_json(indent=2) + "\n")

    def ground_truth(self) -> dict[str, np.ndarray]:
        """Per photo, the per-class counts of points inside its mask, in class order."""
        return {p.image: np.array([p.counts_in_mask[c] for c in self.classes]) for p in self.photos}

    def split_of(self) -> dict[str, str]:
        return {p.image: p.split for p in self.photos}


def is_dataset(folder: Path) -> bool:
    """Whether `folder` holds a manifest.json written by rookery (of any version of the format)."""
    path = Path(folder) / MANIFEST_NAME
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(raw, dict) and str(raw.get("format", "")).startswith("rookery-dataset/")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def points_digest(points: Points) -> str:
    """A sha256 of the points (rounded to 1/10,000 px so that a CSV round trip does not change it)."""
    xy = np.round(points.xy, 4) + 0.0  # + 0.0 turns -0.0 into 0.0
    rows = np.column_stack([xy, points.cls.astype(np.float64)])
    order = np.lexsort(rows.T[::-1])
    return hashlib.sha256(json.dumps(rows[order].tolist()).encode()).hexdigest()


def fingerprint(
    params: Mapping[str, Any],
    classes: Sequence[str],
    box_sizes: Sequence[float],
    photos: Mapping[str, Mapping[str, str | None]],
) -> str:
    """sha256 of the parameters, classes, box sizes and, per photo, the digests of photo, mask and points.

    `photos` maps each photo name to {"sha256": ..., "mask_sha256": ..., "points": ...} (None where absent).
    """
    content = {
        "format": FORMAT,
        "params": dict(params),
        "classes": list(classes),
        "box_sizes": [round(float(s), 6) for s in box_sizes],
        "photos": {name: dict(photos[name]) for name in sorted(photos)},
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
