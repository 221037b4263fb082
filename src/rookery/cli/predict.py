"""`rookery predict SOURCE...`: count objects on whole photos with a model from the registry or a file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rookery.inference.batch import BatchSummary


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
        str,
        typer.Option(
            help="auto (PyTorch on a GPU; on the CPU OpenVINO when installed, else ONNX Runtime), onnx, openvino or "
            "torch."
        ),
    ] = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    merge: Annotated[str, typer.Option(help="How tile results are merged across seams: nms or greedy.")] = "nms",
    resume: Annotated[
        bool, typer.Option(help="Skip photos already listed in OUT/counts.csv and append the rest.")
    ] = False,
    annotate: Annotated[
        bool, typer.Option(help="Write annotated/<photo>.jpg with boxes and a legend of counts.")
    ] = True,
    cluster: Annotated[
        str | None,
        typer.Option(
            help="Count on Ray instead of in this process: 'ray' (a local Ray started here, or RAY_ADDRESS), "
            "'auto' (the cluster this machine belongs to), ray://HOST:PORT or HOST:PORT. Same outputs plus "
            "counts.parquet, detections.parquet and errors.csv; a rerun skips photos already counted (no "
            "--resume needed). Needs pip install 'rookery\\[ray]'; see docs/scaling.md."
        ),
    ] = None,
) -> None:
    """Count objects on whole photos (sliced, batched inference) and write counts, detections and pictures.

    A photo that cannot be read is named with the reason and skipped; the others are counted.

    Exit status: 0 when at least one photo is counted (or all were counted already), 1 when none could be.
    """
    from rookery.config import get_settings
    from rookery.errors import InputError, RookeryError
    from rookery.inference.batch import count_photos, expand_sources
    from rookery.logs import console
    from rookery.packaging.models import load_predictor

    settings = get_settings()
    photos, skipped = expand_sources(sources)
    if not photos:
        raise InputError("no photos to count: " + "; ".join(str(s) for s in skipped))
    if masks is not None and not masks.is_dir():
        raise InputError(f"the masks folder {masks} does not exist")
    if cluster is not None:
        from rookery.scale.command import predict_on_cluster

        options = {"tile": tile, "overlap": overlap, "imgsz": imgsz, "conf": conf, "iou": iou, "batch": batch,
                   "merge": merge}  # fmt: skip
        predict_on_cluster(photos, skipped, out=out, model_uri=model or settings.model_uri, cluster=cluster,
                           backend=backend, device=device, options=options, masks=masks, annotate=annotate)  # fmt: skip
        return
    predictor, info = load_predictor(
        model or settings.model_uri, backend=backend, device=device,
        tile=tile, overlap=overlap, imgsz=imgsz, conf=conf, iou=iou, batch=batch, merge=merge,
    )  # fmt: skip
    opts = predictor.options
    console.print(
        f"model {info.label} ({predictor.backend_name} on {predictor.device}); tile {opts.tile}, "
        f"overlap {opts.overlap}, network input {opts.imgsz or opts.tile}, conf {opts.conf}",
        highlight=False,
    )
    summary = count_photos(predictor, photos, out, model=info.ref, masks=masks, resume=resume, annotate=annotate)
    summary.skipped[:0] = skipped
    _summary(console, summary, out, annotate)
    if summary.counted == 0 and summary.attempted:
        raise RookeryError(f"none of the {summary.attempted} photo(s) could be counted; see the reasons above")


def _summary(console: Any, summary: BatchSummary, out: Path, annotate: bool) -> None:
    from rich.table import Table

    title = f"{summary.counted} photo(s) counted in {summary.seconds:.1f} s"
    table = Table(title=title + (f", {summary.already} earlier" if summary.already else ""))
    table.add_column("class")
    table.add_column("count", justify="right")
    table.add_column("90 % interval", justify="right")  # summed over photos: conservative
    for name, n, (lo, hi) in zip(summary.class_names, summary.total, summary.bounds, strict=True):
        table.add_row(name, str(int(n)), f"{int(lo)}-{int(hi)}")
    lo, hi = summary.bounds.sum(axis=0)
    table.add_row("[bold]total[/]", f"[bold]{int(summary.total.sum())}[/]", f"{int(lo)}-{int(hi)}")
    console.print(table)
    for item in summary.skipped:  # one line each, with the reason
        console.print(f"[yellow]skipped[/] {item}", highlight=False)
    files = "counts.csv, detections.csv, detections.json" + (", annotated/" if annotate else "")
    console.print(f"results in {out}/ ({files})", highlight=False)
