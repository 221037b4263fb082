"""generate_survey: a whole synthetic survey on disk, in the layout of the real sea lion data.

out/train/<n>.jpg    clean photos            out/points.csv    image,x,y,class (annotated animals)
out/dotted/<n>.jpg   painted twins           out/counts.csv    per image, per class, total
out/masks/<n>.png    255 = annotated         out/classes.yaml  name -> dot colour and box size
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rookery.data.classes import Classes
from rookery.data.points_csv import write_counts_csv, write_points_csv
from rookery.data.synthetic.profiles import MAX_CLASSES, survey_classes
from rookery.data.synthetic.scene import make_scene
from rookery.errors import ConfigError, InputError
from rookery.imaging import IMAGE_SUFFIXES, MAX_PIXELS, write_image
from rookery.parallel import map_items
from rookery.types import ImageLabels, Skipped

FORMATS = ("jpg", "png")
JPEG_QUALITY = 95
MIN_SIDE = 32
SCALE_RANGE = (0.1, 4.0)


@dataclass
class SurveySummary:
    out: Path
    images: list[str]  # names of the photos written (file names without extension)
    counts: dict[str, np.ndarray]  # image -> annotated animals per class (as counts.csv)
    classes: Classes
    skipped: list[Skipped] = field(default_factory=list)  # photos that could not be written

    @property
    def total(self) -> np.ndarray:
        """Annotated animals per class over the whole survey."""
        return sum(self.counts.values(), np.zeros(len(self.classes), np.int64))


def generate_survey(
    out: Path,
    images: int = 8,
    size: tuple[int, int] = (4992, 3328),
    num_classes: int = 3,
    seed: int = 0,
    workers: int | None = None,
    object_scale: float = 1.0,
    image_format: str = "jpg",
) -> SurveySummary:
    """Write a synthetic survey of `images` photos of `size` (width, height) into `out`.

    The same arguments give the same bytes whatever `workers` is: photo n is seeded from (seed, n).
    Numbered photos left in train/, dotted/ or masks/ by an earlier run are removed, so that the folder
    always holds one consistent survey.
    """
    out = Path(out)
    _validate(images, size, num_classes, seed, object_scale, image_format)
    classes = survey_classes(num_classes, object_scale)
    _prepare(out, images, image_format)

    job = functools.partial(
        _write_scene, out=out, size=(int(size[0]), int(size[1])), num_classes=num_classes, seed=seed,
        object_scale=object_scale, image_format=image_format,
    )  # fmt: skip
    names = [str(i) for i in range(images)]
    labels: list[ImageLabels] = []
    skipped: list[Skipped] = []
    for _, result in map_items(job, list(range(images)), names, "synthesising photos", workers):
        if isinstance(result, Skipped):
            skipped.append(result)
        else:
            labels.append(result)

    write_points_csv(out / "points.csv", labels, classes)
    counts = {lab.image: lab.points.counts(len(classes)) for lab in labels}
    write_counts_csv(out / "counts.csv", counts, classes)
    classes.save(out / "classes.yaml")
    return SurveySummary(out, [lab.image for lab in labels], counts, classes, skipped)


def _validate(
    images: int, size: tuple[int, int], num_classes: int, seed: int, object_scale: float, image_format: str
) -> None:
    if images < 1:
        raise ConfigError(f"the number of images must be at least 1, got {images}")
    w, h = size
    if min(w, h) < MIN_SIDE or w * h > MAX_PIXELS:
        raise ConfigError(
            f"the photo size must be at least {MIN_SIDE}x{MIN_SIDE} and at most {MAX_PIXELS:,} pixels, got {w}x{h}"
        )
    if not 1 <= num_classes <= MAX_CLASSES:
        raise ConfigError(f"the number of classes must be 1 to {MAX_CLASSES}, got {num_classes}")
    if seed < 0:
        raise ConfigError(f"the seed must be a non-negative integer, got {seed}")
    if not SCALE_RANGE[0] <= object_scale <= SCALE_RANGE[1]:
        lo, hi = SCALE_RANGE
        raise ConfigError(f"the object scale must be {lo} to {hi}, got {object_scale}")
    if image_format not in FORMATS:
        raise ConfigError(f"the image format must be one of {', '.join(FORMATS)}, got {image_format!r}")


def _prepare(out: Path, images: int, image_format: str) -> None:
    """Create the folders, check that they are writable, and remove stale numbered photos."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file; the survey needs a folder")
    try:
        for sub in ("train", "dotted", "masks"):
            (out / sub).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        raise ConfigError(f"cannot write the survey into {out}: {e.strerror or e}") from e
    for sub, suffix in (("train", image_format), ("dotted", image_format), ("masks", "png")):
        keep = {f"{i}.{suffix}" for i in range(images)}
        for p in (out / sub).iterdir():
            if p.stem.isdigit() and p.suffix.lower() in IMAGE_SUFFIXES and p.name not in keep and p.is_file():
                p.unlink()


def _write_scene(
    index: int, out: Path, size: tuple[int, int], num_classes: int, seed: int, object_scale: float,
    image_format: str,
) -> ImageLabels:  # fmt: skip
    scene = make_scene(size, num_classes, seed, index, object_scale)
    name = str(index)
    try:
        write_image(out / "train" / f"{name}.{image_format}", scene.photo, quality=JPEG_QUALITY)
        write_image(out / "dotted" / f"{name}.{image_format}", scene.twin, quality=JPEG_QUALITY)
        write_image(out / "masks" / f"{name}.png", scene.mask)
    except OSError as e:
        raise InputError(f"could not write photo {name} into {out}: {e.strerror or e}") from e
    return ImageLabels(name, scene.points, size=size)
