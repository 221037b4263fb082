"""`rookery predict SOURCE...`: count objects on whole photos with a model from the registry or a file."""

from __future__ import annotations

import glob
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rookery.types import Skipped


def predict(
    sources: Annotated[
        list[str],
        typer.Argument(help="Photos: files, folders (their images, sorted by name) and globs such as 'survey/*.jpg'."),
    ],
    model: Annotated[
        str | None,
        typer.Option(
            help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/model, or a .pt/.onnx file "
            "(default: ROOKERY_MODEL_URI, i.e. models:/rookery@champion)."
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option(help="Folder for counts.csv, detections.csv/.json and annotated/<photo>.jpg.")
    ] = Path("predictions"),
    tile: Annotated[
        int | None, typer.Option(help="Tile side in photo pixels; default: the model's, as it was trained.")
    ] = None,
    overlap: Annotated[
        int | None, typer.Option(help="Overlap of neighbouring tiles in pixels; default: the model's.")
    ] = None,
    imgsz: Annotated[
        int | None,
        typer.Option(help="Network input side; tiles are resized to it; default: the model's, scaled with --tile."),
    ] = None,
    conf: Annotated[float, typer.Option(help="Keep detections whose class score is at least this.")] = 0.25,
    iou: Annotated[float, typer.Option(help="Overlap (IoU) above which boxes are merged by NMS.")] = 0.5,
    batch: Annotated[
        int, typer.Option(help="Tiles per network call; larger is faster on a GPU, uses more memory.")
    ] = 8,
    masks: Annotated[
        Path | None,
        typer.Option(help="Folder of ignore masks named like the photos (255 = count here, 0 = ignore)."),
    ] = None,
    backend: Annotated[
        str, typer.Option(help="auto (PyTorch on a GPU, else ONNX Runtime on the CPU), onnx or torch.")
    ] = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    merge: Annotated[str, typer.Option(help="How tile results are merged across seams: nms or greedy.")] = "nms",
    resume: Annotated[
        bool, typer.Option(help="Skip photos already listed in OUT/counts.csv and append the rest.")
    ] = False,
    annotate: Annotated[
        bool, typer.Option(help="Write annotated/<photo>.jpg with boxes and a legend of counts.")
    ] = True,
) -> None:
    """Count objects on whole photos (sliced, batched inference) and write counts, detections and pictures.

    A photo that cannot be read is named with the reason and skipped; the others are counted.

    Exit status: 0 when at least one photo is counted (or all were counted already), 1 when none could be.
    """
    import numpy as np

    from rookery.config import get_settings
    from rookery.errors import InputError, RookeryError
    from rookery.inference.loading import load_predictor
    from rookery.inference.outputs import PredictionWriter
    from rookery.inference.render import class_colors
    from rookery.logs import console, track
    from rookery.types import Boxes, Skipped

    settings = get_settings()
    photos, skipped = _expand(sources)
    if not photos:
        raise InputError("no photos to count: " + "; ".join(str(s) for s in skipped))
    if masks is not None and not masks.is_dir():
        raise InputError(f"the masks folder {masks} does not exist")
    predictor, info = load_predictor(
        model or settings.model_uri, backend=backend, device=device,
        tile=tile, overlap=overlap, imgsz=imgsz, conf=conf, iou=iou, batch=batch, merge=merge,
    )  # fmt: skip
    names = predictor.class_names
    opts = predictor.options
    console.print(
        f"model {info.label} ({predictor.backend_name} on {predictor.device}); tile {opts.tile}, "
        f"overlap {opts.overlap}, network input {opts.imgsz or opts.tile}, conf {opts.conf}",
        highlight=False,
    )
    started = time.perf_counter()
    with PredictionWriter(out, names, resume=resume, model=info.uri) as writer:
        already = len(writer.done)
        todo = [p for p in photos if p.stem not in writer.done]
        mask_paths = _masks_for(todo, masks) if masks is not None else None
        stash: dict[int, np.ndarray] = {}
        images = _read_ahead(todo, stash) if annotate else todo
        stream = predictor.iter_predict(images, mask_paths, names=[p.name for p in todo])
        counted = 0
        total = np.zeros(len(names), dtype=np.int64)
        bounds = np.zeros((len(names), 2), dtype=np.int64)  # sums of the photos' interval ends
        colors = class_colors(names)
        for index, result in track(stream, "counting photos", total=len(todo)):
            photo = stash.pop(index, None)
            if isinstance(result, Skipped):
                skipped.append(result)
                continue
            assert isinstance(result, Boxes)
            stem = todo[index].stem
            intervals = predictor.count_intervals(predictor.counts(result))
            total += writer.add(stem, result, intervals)
            bounds += intervals
            counted += 1
            if photo is not None:
                _write_annotated(writer.annotated_path(stem), photo, result, names, colors, stem, skipped)
    seconds = time.perf_counter() - started
    _summary(console, names, total, bounds, counted, already, skipped, seconds, out, annotate)
    if counted == 0 and todo:
        raise RookeryError(f"none of the {len(todo)} photo(s) could be counted; see the reasons above")


def _expand(sources: list[str]) -> tuple[list[Path], list[Skipped]]:
    """Photo paths in the order given (folders and globs sorted), without repeats; unusable sources and
    photos whose name (without extension) repeats another's are reported as Skipped."""
    from rookery.imaging import IMAGE_SUFFIXES, list_images
    from rookery.types import Skipped

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
    seen: dict[Path, None] = {}
    stems: dict[str, Path] = {}
    for p in found:
        key = p.resolve()
        if key in seen:
            continue
        seen[key] = None
        if p.stem in stems:  # outputs are keyed by name: two photos of one name would overwrite each other
            skipped.append(Skipped(str(p), f"has the same name as {stems[p.stem]}; rename one of them"))
            continue
        stems[p.stem] = p
        photos.append(p)
    return photos, skipped


def _masks_for(photos: list[Path], folder: Path) -> list[Path | None]:
    """The mask of each photo by name; a photo with no mask is counted everywhere."""
    from rookery.imaging import find_image

    return [find_image(folder, p.stem) for p in photos]


def _read_ahead(paths: list[Path], stash: dict[int, Any]) -> Iterator[Any]:
    """Photos decoded once, in the Predictor's tiling thread, and kept for drawing until their result is in.

    An unreadable photo goes on as its path, so the Predictor reports it (named, with the reason) in order.
    """
    from rookery.errors import InputError
    from rookery.imaging import read_image

    for i, path in enumerate(paths):
        try:
            image = read_image(path)
        except InputError:
            yield path
            continue
        stash[i] = image
        yield image


def _write_annotated(
    path: Path, photo: Any, boxes: Any, names: Any, colors: Any, stem: str, skipped: list[Skipped]
) -> None:
    from rookery.errors import RookeryError
    from rookery.imaging import write_image
    from rookery.inference.render import render
    from rookery.types import Skipped

    try:
        write_image(path, render(photo, boxes, names, colors, title=stem), quality=90)
    except (RookeryError, OSError) as e:  # counts are written; the picture is only a view of them
        skipped.append(Skipped(f"{stem} (annotated image only; counted)", str(e)))


def _summary(
    console: Any,
    names: tuple[str, ...],
    total: Any,
    bounds: Any,
    counted: int,
    already: int,
    skipped: list[Skipped],
    seconds: float,
    out: Path,
    annotate: bool,
) -> None:
    from rich.table import Table

    table = Table(title=f"{counted} photo(s) counted in {seconds:.1f} s" + (f", {already} earlier" if already else ""))
    table.add_column("class")
    table.add_column("count", justify="right")
    table.add_column("90 % interval", justify="right")  # summed over photos: conservative
    for name, n, (lo, hi) in zip(names, total, bounds, strict=True):
        table.add_row(name, str(int(n)), f"{int(lo)}-{int(hi)}")
    lo, hi = bounds.sum(axis=0)
    table.add_row("[bold]total[/]", f"[bold]{int(total.sum())}[/]", f"{int(lo)}-{int(hi)}")
    console.print(table)
    for item in skipped:  # one line each, with the reason
        console.print(f"[yellow]skipped[/] {item}", highlight=False)
    files = "counts.csv, detections.csv, detections.json" + (", annotated/" if annotate else "")
    console.print(f"results in {out}/ ({files})", highlight=False)
