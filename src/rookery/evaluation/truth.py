"""The photos to evaluate and their ground-truth counts: from a built data set or from points.csv.

The ground truth of a photo is, per class, the number of its points inside the photo and inside its
mask (mask >= 128, nearest pixel), exactly what `rookery data build` records as `counts_in_mask`. Photos
from points.csv also keep those points (for the class confusion); a data set's photos have counts only.
Predictions are counted the same way (a detection counts where its centre is).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from rookery.data.classes import Classes
from rookery.data.manifest import Manifest
from rookery.data.photo_tiles import in_mask
from rookery.data.points_csv import read_points_csv
from rookery.errors import InputError
from rookery.imaging import find_image, list_images, read_image
from rookery.parallel import map_items
from rookery.types import Points, Skipped

SPLIT_CHOICES = ("test", "val", "train", "all")


@dataclass(frozen=True)
class EvalPhoto:
    name: str  # the photo's name without extension (points.csv's key)
    image: Path
    mask: Path | None  # None: the whole photo is annotated
    truth: tuple[int, ...]  # per class, points inside the photo and its mask
    split: str | None = None  # the data set split it belongs to, when it comes from a data set
    # The true points inside the photo and its mask (from points.csv), for matching detections to animals
    # (confusion.py); None where only counts are known (a built data set records counts, not points).
    points: Points | None = field(default=None, compare=False, repr=False)


@dataclass
class EvalSet:
    """What to evaluate: the photos, their classes, the ones that cannot be, and warnings."""

    classes: list[str]
    photos: list[EvalPhoto]
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    scale: float = 1.0  # the data set's resize factor: the model saw photos at this scale
    # Per class, classes.yaml's box side in photo pixels (None: not given), a fallback of the match radius.
    box_sides: tuple[float | None, ...] | None = None


def from_dataset(
    dataset: Path, split: str = "test", images: Path | None = None, masks: Path | None = None
) -> tuple[Manifest, EvalSet]:
    """The full photos of one split (or "all") of a built data set, with the manifest's counts_in_mask.

    Photos are looked up in `images` / `masks` when given (the source folders moved), else in the folders
    recorded in the manifest at build time.
    """
    manifest = Manifest.load(Path(dataset))
    if split not in SPLIT_CHOICES:
        raise InputError(f"split must be one of {', '.join(SPLIT_CHOICES)}, got {split!r}")
    entries = [p for p in manifest.photos if split == "all" or p.split == split]
    if not entries:
        held = sorted({p.split for p in manifest.photos})
        raise InputError(
            f"data set {dataset} has no photo in the {split!r} split (it has {', '.join(held) or 'none'}); "
            "choose another --split"
        )
    image_dir = Path(images) if images is not None else _recorded(manifest.images_dir)
    if image_dir is None:
        raise InputError(
            f"the manifest of {dataset} does not record where its photos are (built by an older rookery); "
            "pass --images (and --masks) with the source folders"
        )
    mask_dir = Path(masks) if masks is not None else _recorded(manifest.masks_dir)
    if any(p.mask for p in entries) and mask_dir is None:
        raise InputError(f"the photos of {dataset} were built with masks; pass --masks with their folder")
    if not image_dir.is_dir():
        raise InputError(f"the photos folder {image_dir} does not exist; pass --images with the source folder")
    out = EvalSet(classes=list(manifest.classes), photos=[], scale=float(manifest.params.get("scale", 1.0)))
    changed = []
    for p in entries:
        path = image_dir / p.file if (image_dir / p.file).is_file() else find_image(image_dir, p.image)
        if path is None:
            out.skipped.append(Skipped(p.image, f"no photo {p.file} in {image_dir}"))
            continue
        mask = None
        if p.mask:
            assert mask_dir is not None
            mask = mask_dir / p.mask
            if not mask.is_file():
                out.skipped.append(Skipped(p.image, f"its mask {p.mask} is not in {mask_dir}"))
                continue
        if path.stat().st_size != p.bytes:  # cheap: catches another folder (e.g. the painted photos)
            changed.append(p.image)
        truth = tuple(int(p.counts_in_mask.get(c, 0)) for c in manifest.classes)
        out.photos.append(EvalPhoto(p.image, path, mask, truth, p.split))
    if changed:
        out.warnings.append(
            f"{len(changed)} photo(s) differ from those the data set was built from ({', '.join(changed[:5])}"
            f"{', ...' if len(changed) > 5 else ''}); their ground truth may not match them"
        )
    return manifest, out


def from_points(
    points: Path, images: Path, classes: Classes, masks: Path | None = None, workers: int | None = None
) -> EvalSet:
    """The photos of `images` and those named in points.csv, with their points inside photo and mask.

    A photo without points counts 0 of every class; one named in points.csv but absent, or whose mask
    or size cannot be read, is skipped with its reason. A photo without a mask in `masks` is taken as
    annotated everywhere (as `rookery data build` does).
    """
    labels = read_points_csv(Path(points), classes)
    images = Path(images)
    if masks is not None and not Path(masks).is_dir():
        raise InputError(f"masks folder {masks} does not exist")
    stems = sorted({p.stem for p in list_images(images)} | set(labels))
    if not stems:
        raise InputError(f"no photos: {images} holds no image and {Path(points).name} names none")
    out = EvalSet(classes=list(classes.names), photos=[], box_sides=tuple(s.box for s in classes))
    jobs = []
    for stem in stems:
        image = find_image(images, stem)
        if image is None:
            out.skipped.append(Skipped(stem, f"listed in {Path(points).name} but no image of that name is in {images}"))
            continue
        mask = Path(masks) / f"{stem}.png" if masks is not None else None
        pts = labels[stem].points if stem in labels else Points.empty()
        jobs.append((stem, image, mask if mask is not None and mask.is_file() else None, pts))
    work = partial(_truth_of, num_classes=len(classes))
    for (stem, image, mask, _), found in zip(
        jobs, (r for _, r in map_items(work, jobs, [j[0] for j in jobs], "ground truth", workers)), strict=True
    ):
        if isinstance(found, Skipped):
            out.skipped.append(Skipped(stem, found.reason))
        else:
            truth, inside = found
            out.photos.append(EvalPhoto(stem, image, mask, truth, points=inside))
    return out


def _truth_of(job: tuple[str, Path, Path | None, Points], num_classes: int) -> tuple[tuple[int, ...], Points]:
    """Per class, the points inside the photo and its mask, and those points. The mask gives the photo's size
    (the predictor checks that it fits the photo); without one the photo is decoded for it, as the predictor
    will see it (EXIF rotation applied), which also reports a corrupt photo before any inference runs."""
    _, image, mask_path, pts = job
    if mask_path is not None:
        mask = read_image(mask_path, cv2.IMREAD_GRAYSCALE)
        h, w = mask.shape
    else:
        mask = None
        h, w = read_image(image).shape[:2]
    inside = np.all((pts.xy >= -0.5) & (pts.xy <= [w - 0.5, h - 0.5]), axis=1)
    pts = pts.select(inside)
    pts = pts.select(in_mask(pts.xy, mask))
    return tuple(int(v) for v in pts.counts(num_classes)), pts


def _recorded(folder: str | None) -> Path | None:
    return None if folder is None else Path(folder)


def class_mismatch(model: Sequence[str], data: Sequence[str]) -> str | None:
    """A sentence saying how the model's classes differ from the data's, or None when they match."""
    if list(model) == list(data):
        return None
    if sorted(model) == sorted(data):
        return f"the model's classes {list(model)} are the data's {list(data)} in another order"
    return f"the model's classes {list(model)} differ from the data's {list(data)}"
