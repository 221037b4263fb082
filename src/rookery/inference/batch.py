"""Count a collection of photos into an output folder: the loop behind `rookery predict` (and the library call
for notebooks and scripts). The Ray path (rookery.scale) reuses `expand_sources` and the same output files.

    photos, skipped = expand_sources(["survey/", "extra/*.jpg"])
    summary = count_photos(predictor, photos, Path("out"), model=ModelRef("models:/rookery@champion"))

Photos stream through the Predictor (tiles of consecutive photos share batches, memory stays bounded), each
result is written as soon as it is in (rookery.inference.outputs), and a photo that cannot be read is reported
as Skipped with the reason while the others are counted.
"""

from __future__ import annotations

import glob
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rookery.errors import InputError, RookeryError
from rookery.imaging import IMAGE_SUFFIXES, find_image, list_images, read_image, write_image
from rookery.types import Boxes, ModelRef, Prediction, Skipped

if TYPE_CHECKING:
    from rookery.inference.predictor import Predictor


@dataclass
class BatchSummary:
    """What a batch run did: totals per class (and the sums of their interval ends), photos and time."""

    class_names: tuple[str, ...]
    total: np.ndarray  # (classes,) int64, photos counted in this run
    bounds: np.ndarray  # (classes, 2) int64: sums of the photos' interval ends (conservative)
    counted: int = 0
    already: int = 0  # counted by an earlier run (resume)
    attempted: int = 0  # photos this run tried to count (counted + unreadable)
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0


def expand_sources(sources: Sequence[str]) -> tuple[list[Path], list[Skipped]]:
    """Photo paths in the order given (folders and globs sorted), without repeats; unusable sources and
    photos whose name (without extension) repeats another's are reported as Skipped (outputs are keyed by name)."""
    found: list[Path] = []
    skipped: list[Skipped] = []
    for source in sources:
        path = Path(source).expanduser()
        if path.is_dir():
            images = list_images(path)
            if not images:
                skipped.append(Skipped(source, f"the folder holds no images ({', '.join(IMAGE_SUFFIXES)})"))
            found += images
        elif path.is_file():
            found.append(path)
        elif glob.has_magic(source):
            matches = sorted(Path(p) for p in glob.glob(str(path)) if Path(p).is_file())
            if not matches:
                skipped.append(Skipped(source, "no file matches this pattern"))
            found += matches
        else:
            skipped.append(Skipped(source, "does not exist"))
    photos: list[Path] = []
    seen: set[Path] = set()
    stems: dict[str, Path] = {}
    for p in found:
        key = p.resolve()
        if key in seen:
            continue
        seen.add(key)
        if p.stem in stems:  # two photos of one name would overwrite each other's outputs
            skipped.append(Skipped(str(p), f"has the same name as {stems[p.stem]}; rename one of them"))
            continue
        stems[p.stem] = p
        photos.append(p)
    return photos, skipped


def count_photos(
    predictor: Predictor,
    photos: Sequence[Path],
    out: Path,
    *,
    model: ModelRef | None = None,
    masks: Path | None = None,
    resume: bool = False,
    annotate: bool = True,
    progress: bool = True,
) -> BatchSummary:
    """Count `photos` with `predictor` and write out/counts.csv, detections.csv/.json and (with `annotate`)
    out/annotated/<photo>.jpg. With `resume`, photos already in out/counts.csv are not counted again."""
    from rookery.inference.outputs import PredictionWriter
    from rookery.inference.render import class_colors
    from rookery.logs import track

    if masks is not None and not masks.is_dir():
        raise InputError(f"the masks folder {masks} does not exist")
    ref = model or ModelRef("")
    names = predictor.class_names
    summary = BatchSummary(names, np.zeros(len(names), np.int64), np.zeros((len(names), 2), np.int64))
    started = time.perf_counter()
    with PredictionWriter(out, names, resume=resume, model=ref.uri) as writer:
        summary.already = len(writer.done)
        todo = [p for p in photos if p.stem not in writer.done]
        summary.attempted = len(todo)
        mask_paths = [find_image(masks, p.stem) for p in todo] if masks is not None else None
        stash: dict[int, np.ndarray] = {}
        images = _read_ahead(todo, stash) if annotate else todo
        stream = predictor.iter_predict(images, mask_paths, names=[p.name for p in todo])
        colors = class_colors(names)
        results = track(stream, "counting photos", total=len(todo)) if progress else stream
        for index, result in results:
            photo = stash.pop(index, None)
            if isinstance(result, Skipped):
                summary.skipped.append(result)
                continue
            assert isinstance(result, Boxes)
            prediction = predictor.prediction(todo[index].stem, result, model=ref)
            summary.total += writer.add(prediction)
            summary.bounds += prediction.interval_bounds()
            summary.counted += 1
            if photo is not None:
                _write_annotated(writer.annotated_path(prediction.image), photo, prediction, colors, summary.skipped)
    summary.seconds = time.perf_counter() - started
    return summary


def _read_ahead(paths: list[Path], stash: dict[int, Any]) -> Iterator[Any]:
    """Photos decoded once, in the Predictor's tiling thread, and kept for drawing until their result is in.

    An unreadable photo goes on as its path, so the Predictor reports it (named, with the reason) in order.
    """
    for i, path in enumerate(paths):
        try:
            image = read_image(path)
        except InputError:
            yield path
            continue
        stash[i] = image
        yield image


def _write_annotated(path: Path, photo: Any, prediction: Prediction, colors: Any, skipped: list[Skipped]) -> None:
    from rookery.inference.render import render

    try:
        picture = render(photo, prediction.boxes, prediction.class_names, colors, title=prediction.image)
        write_image(path, picture, quality=90)
    except (RookeryError, OSError) as e:  # counts are written; the picture is only a view of them
        skipped.append(Skipped(f"{prediction.image} (annotated image only; counted)", str(e)))
