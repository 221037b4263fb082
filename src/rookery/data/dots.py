"""Painted dots -> points: the coloured dots biologists painted on survey photos, one point per animal.

Two modes:

- **pair mode** (the clean photo is given): what differs between the clean photo and its painted twin,
  outside the blacked-out regions, is the dots. At full resolution they are found by colour among the
  changed pixels (dots_colour); in a downscaled JPEG pair, where a dot is ~2 px and has lost most of its
  colour, by fitting the change to the class colours (dots_smeared). The two cases are told apart by the
  size of the changed blobs.
- **painted-only mode**: dots found by colour and shape in the painted photo alone (dots_colour), then
  settled as the reference points of the real sample were made: each moves to the centroid of its own
  colour component and is dropped when its centre lacks the class colour (shading on an animal). Exact
  at full resolution, where dots keep their colour and a radius of ~4-5 px. With `clean_out`, the dots
  are also removed from the photo (inpaint), so that painted-only photos can be trained on.

A pair whose difference is not a set of small dots (a different region, a copy rotated 180 degrees) is
skipped with a reason; so is an unreadable photo or a painted photo without its clean twin. A dot of a
colour that matches no class is reported as an UnknownDot, not guessed and not counted.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from rookery.data.classes import Classes
from rookery.data.dots_colour import (
    Blobs,
    dot_like,
    find_blobs,
    find_colour_dots,
    find_vivid_blobs,
    label_pixels,
    nonzero,
    settle_dots,
)
from rookery.data.dots_smeared import find_smeared_dots
from rookery.data.inpaint import clean_suffix, remove_dots, rim_margin
from rookery.errors import InputError, RookeryError
from rookery.imaging import IMAGE_SUFFIXES, find_image, list_images, read_image, write_image
from rookery.parallel import map_items
from rookery.types import ImageLabels, Points, Skipped

BLACK = 20  # max channel of a blacked-out pixel (JPEG leaves it a little above 0)
MIN_BLACKOUT = 400  # px: painted-only mode; smaller near-black specks are shadows, not blacked out
IGNORE_MARGIN = 3  # px left out around the blacked-out regions (JPEG rings along their edges)
CHANGED = 30  # per-channel difference that marks a pixel as painted over
MAX_CHANGED = 0.03  # share of changed pixels dots can explain (a dense colony at 1/4 scale: ~0.5 %)
LARGE_BLOB = (400, 40)  # px, and times the median blob: a changed blob this large is no dot ...
MAX_LARGE = 0.5  # ... and most changed pixels in such blobs mean the photos are not a pair
SHARP_AREA = 10  # median area (px) of changed blobs from which dots are sharp enough to find by colour
UNKNOWN_DIFF = 60  # pair mode: per-channel difference of the core of a dot of an unknown colour
SEARCH_MARGIN = 3  # px around the changed pixels where a dot's pixels are looked for


@dataclass(frozen=True)
class UnknownDot:
    """A dot whose colour matches no class of classes.yaml."""

    image: str
    x: float
    y: float
    rgb: tuple[int, int, int]

    def __str__(self) -> str:
        where = f"{self.image}: the dot" if self.image else "The dot"
        return (
            f"{where} at x={self.x:.0f}, y={self.y:.0f} has colour RGB{self.rgb}, which matches no class "
            "in classes.yaml, so it was not counted"
        )


@dataclass
class DotsReport:
    labels: list[ImageLabels] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    unknown: list[UnknownDot] = field(default_factory=list)

    def counts(self, num_classes: int) -> np.ndarray:
        """Dots per class over all processed photos."""
        return sum((lab.points.counts(num_classes) for lab in self.labels), np.zeros(num_classes, np.int64))


def find_dots_painted(
    dotted_bgr: np.ndarray, classes: Classes, image: str = ""
) -> tuple[Points, np.ndarray, list[UnknownDot]]:
    """Dots of a full-resolution painted photo: (points, ignore (bool, True = blacked out), unknown)."""
    _check_photo(dotted_bgr, "painted")
    ignore = _large_black(dotted_bgr)
    valid = cv2.bitwise_not(_grow(ignore, IGNORE_MARGIN))
    xy, cls, blobs = find_colour_dots(dotted_bgr, classes, valid=valid)
    xy, keep = settle_dots(dotted_bgr, xy, cls, classes)
    xy, cls = xy[keep], cls[keep]
    vivid = find_vivid_blobs(dotted_bgr, classes, valid, _near(blobs, dotted_bgr.shape))
    return Points(xy, cls), ignore > 0, _unknown(image, vivid)


def find_dots_pair(
    image_bgr: np.ndarray, dotted_bgr: np.ndarray, classes: Classes, image: str = ""
) -> tuple[Points, np.ndarray, list[UnknownDot]]:
    """Dots of a clean photo and its painted twin: (points, ignore (bool, True = blacked out), unknown).

    Raises InputError when the two are not a pair: different sizes, or a difference that is not a set
    of small dots."""
    _check_photo(image_bgr, "clean")
    _check_photo(dotted_bgr, "painted")
    if image_bgr.shape != dotted_bgr.shape:
        (h1, w1), (h2, w2) = image_bgr.shape[:2], dotted_bgr.shape[:2]
        raise InputError(f"the painted photo is {w2}x{h2} but the clean photo is {w1}x{h1}; they must be the same size")
    # Masks are uint8 0/255 and combined with OpenCV: numpy is several times slower on 16 MP photos.
    # Blacked out: black in the painted photo where the clean photo is not.
    black = cv2.bitwise_and(_black(dotted_bgr), cv2.bitwise_not(_black(image_bgr)))
    ignore = cv2.morphologyEx(black, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    valid = cv2.bitwise_not(_grow(ignore, IGNORE_MARGIN))
    diff = cv2.absdiff(image_bgr, dotted_bgr)
    changed = cv2.bitwise_and(_exceeds(diff, CHANGED), valid)
    median_area = _check_pair(changed, valid)
    if median_area < SHARP_AREA:
        xy, cls = find_smeared_dots(image_bgr, dotted_bgr, valid == 0, classes)
        return Points(xy, cls), ignore > 0, []  # colours too smeared to tell an unknown one from JPEG noise
    search = _grow(changed, SEARCH_MARGIN)  # whole dots, with their pixels too close to the clean photo
    xy, cls, blobs = find_colour_dots(dotted_bgr, classes, valid=valid, changed=changed, search=search)
    strong = cv2.bitwise_and(_exceeds(diff, UNKNOWN_DIFF - 1), valid)
    strong[_near(blobs, diff.shape) > 0] = 0
    xs, ys = nonzero(strong)
    return Points(xy, cls), ignore > 0, _unknown(image, dot_like(find_blobs(xs, ys, None, None, dotted_bgr)))


def find_dots(
    dotted_dir: Path,
    classes: Classes,
    images_dir: Path | None = None,
    masks_out: Path | None = None,
    workers: int | None = None,
    clean_out: Path | None = None,
) -> DotsReport:
    """Points of every painted photo in `dotted_dir` (pair mode when `images_dir` holds the clean
    photos under the same names). With `masks_out`, writes `<image>.png` per photo: 255 = annotated,
    0 = ignore (blacked out in the painted photo). With `clean_out` (painted-only mode), writes each
    photo with its dots inpainted as `<image>.jpg` (`.png` for a lossless photo)."""
    dotted_dir = Path(dotted_dir)
    if clean_out is not None and images_dir is not None:
        raise InputError(
            "removing the dots is for painted photos without a clean twin; in pair mode the clean photos "
            f"are already in {images_dir}"
        )
    if clean_out is not None:
        for other, what in ((dotted_dir, "the painted photos"), (masks_out, "the masks")):
            if other is not None and Path(clean_out).resolve() == Path(other).resolve():
                raise InputError(f"the cleaned photos need a folder of their own, not {clean_out} ({what})")
    painted = list_images(dotted_dir)
    if not painted:
        raise RookeryError(f"{dotted_dir} holds no images (looked for {', '.join(IMAGE_SUFFIXES)})")
    if images_dir is not None and not Path(images_dir).is_dir():
        raise InputError(f"{images_dir} (the clean photos) is not a folder")
    for folder in (masks_out, clean_out):
        if folder is not None:
            Path(folder).mkdir(parents=True, exist_ok=True)
    report = DotsReport()
    jobs: list[_Job] = []
    for path in painted:
        clean = None
        if images_dir is not None:
            clean = find_image(Path(images_dir), path.stem)
            if clean is None:
                report.skipped.append(Skipped(path.stem, f"no clean photo named {path.stem}.* in {images_dir}"))
                continue
        jobs.append(_Job(path.stem, path, clean))
    work = functools.partial(_process, classes=classes, masks_out=masks_out, clean_out=clean_out)
    what = "finding and removing dots" if clean_out is not None else "finding dots"
    for _, result in map_items(work, jobs, [j.name for j in jobs], what, workers):
        if isinstance(result, Skipped):
            report.skipped.append(result)
        else:
            report.labels.append(result[0])
            report.unknown.extend(result[1])
    return report


@dataclass(frozen=True)
class _Job:
    name: str
    dotted: Path
    clean: Path | None

    def __str__(self) -> str:  # map_items names a skipped item by str(item)
        return self.name


def _process(
    job: _Job, classes: Classes, masks_out: Path | None, clean_out: Path | None = None
) -> tuple[ImageLabels, list[UnknownDot]]:
    dotted = read_image(job.dotted)
    if job.clean is None:
        points, ignore, unknown = find_dots_painted(dotted, classes, job.name)
    else:
        points, ignore, unknown = find_dots_pair(read_image(job.clean), dotted, classes, job.name)
    if masks_out is not None:  # written here, so that big arrays never travel between processes
        write_image(Path(masks_out) / f"{job.name}.png", np.where(ignore, 0, 255).astype(np.uint8))
    if clean_out is not None:  # the dots of unknown colour are paint too
        paint = Points(
            np.concatenate([points.xy, np.array([(u.x, u.y) for u in unknown]).reshape(-1, 2)]),
            np.concatenate([points.cls, np.full(len(unknown), -1, np.int64)]),
        )
        clean, _ = remove_dots(dotted, paint, classes, rim_margin(job.dotted.suffix))
        write_image(Path(clean_out) / f"{job.name}{clean_suffix(job.dotted.suffix)}", clean)
    h, w = dotted.shape[:2]
    return ImageLabels(job.name, points, size=(w, h)), unknown


def _check_photo(bgr: np.ndarray, what: str) -> None:
    if not isinstance(bgr, np.ndarray) or bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
        got = f"{bgr.dtype} array of shape {bgr.shape}" if isinstance(bgr, np.ndarray) else type(bgr).__name__
        raise InputError(f"the {what} photo must be a colour (H, W, 3) uint8 image, got a {got}")


def _check_pair(changed: np.ndarray, valid: np.ndarray) -> float:
    """Refuse a pair whose difference is not a set of small dots; return the median changed blob area."""
    share = cv2.countNonZero(changed) / max(cv2.countNonZero(valid), 1)
    if share > MAX_CHANGED:
        raise InputError(
            f"the painted and clean photos differ in {100 * share:.0f}% of the pixels outside the "
            "blacked-out regions, far more than painted dots; they are not the same photo (a different "
            "region or a rotated copy?)"
        )
    xs, ys = nonzero(changed)
    areas = np.bincount(label_pixels(xs, ys)) if len(xs) else np.zeros(0, np.int64)
    areas = areas[areas >= 3]
    if not len(areas):
        return float(SHARP_AREA)  # nothing painted: either way finds nothing
    median = float(np.median(areas))
    large = areas[(areas > LARGE_BLOB[0]) & (areas > LARGE_BLOB[1] * median)].sum()
    if large > MAX_LARGE * areas.sum():
        raise InputError(
            f"{100 * large / areas.sum():.0f}% of the difference between the painted and clean photos is "
            "in large patches, not small dots; they are not the same photo"
        )
    return median


def _black(bgr: np.ndarray) -> np.ndarray:
    return cv2.inRange(bgr, (0, 0, 0), (BLACK, BLACK, BLACK))


def _exceeds(diff: np.ndarray, level: int) -> np.ndarray:
    """Pixels where any channel of `diff` is above `level` (uint8 0/255)."""
    return cv2.bitwise_not(cv2.inRange(diff, (0, 0, 0), (level, level, level)))


def _large_black(bgr: np.ndarray) -> np.ndarray:
    """Blacked-out regions of a painted photo alone: near-black areas of at least MIN_BLACKOUT px
    (found on a 1/4 copy, which is 16 times cheaper, and cut back to the black pixels)."""
    black = _black(bgr)
    h, w = bgr.shape[:2]
    small = cv2.resize(black, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    _, labels = cv2.connectedComponents((small > 127).astype(np.uint8), connectivity=8)
    areas = np.bincount(labels.ravel())
    large = ((areas >= MIN_BLACKOUT / 16) & (np.arange(len(areas)) > 0))[labels]
    region = cv2.resize(large.astype(np.uint8) * 255, (w, h), interpolation=cv2.INTER_NEAREST)
    return cv2.bitwise_and(_grow(region, 4), black)


def _grow(mask: np.ndarray, px: int) -> np.ndarray:
    """uint8 mask dilated by px."""
    return cv2.dilate(mask, np.ones((2 * px + 1, 2 * px + 1), np.uint8))


def _near(blobs: Blobs, shape: tuple[int, ...]) -> np.ndarray:
    """Pixels of the accepted dots and a margin around them (their anti-aliased rims), uint8."""
    mask = np.zeros(shape[:2], np.uint8)
    mask[blobs.px[:, 1], blobs.px[:, 0]] = 255
    return _grow(mask, 4)


def _unknown(image: str, blobs: Blobs) -> list[UnknownDot]:
    return [
        UnknownDot(image, round(float(x), 2), round(float(y), 2), (int(r), int(g), int(b)))
        for (x, y), (r, g, b) in zip(blobs.xy, blobs.rgb, strict=True)
    ]
