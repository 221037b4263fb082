"""`rookery evaluate`: counting error (per-class MAE/RMSE, the competition metric) and box mAP of a model."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rookery.logs import console

if TYPE_CHECKING:
    from rookery.evaluation import Evaluation


def evaluate(
    model: Annotated[
        str | None,
        typer.Option(
            help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/model, or a .pt/.onnx file "
            "[default: ROOKERY_MODEL_URI, the champion]."
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(help="Data set built by 'rookery data build': its manifest gives the photos and true counts."),
    ] = None,
    split: Annotated[
        str, typer.Option(help="With --data: which photos to evaluate: test, val, train or all.")
    ] = "test",
    points: Annotated[
        Path | None, typer.Option(help="Instead of --data: points.csv (image,x,y,class) with the true animals.")
    ] = None,
    images: Annotated[
        Path | None,
        typer.Option(help="Folder of the full photos (with --points; with --data when the photos have moved)."),
    ] = None,
    masks: Annotated[
        Path | None,
        typer.Option(help="Folder of <image>.png masks (255 = counted, 0 = ignored); photos without one count whole."),
    ] = None,
    classes: Annotated[
        Path | None, typer.Option(help="With --points: classes.yaml, in the model's class order.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for metrics.json, per_photo.csv and the plots [default: <home>/evaluations/<name>]."),
    ] = None,
    conf: Annotated[
        float | None, typer.Option(help="Score threshold for a detection to count [default: the model's, 0.25].")
    ] = None,
    batch: Annotated[int | None, typer.Option(min=1, help="Tiles per network batch.")] = None,
    backend: Annotated[str, typer.Option(help="auto, torch or onnx.")] = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    box_map: Annotated[
        bool, typer.Option("--map/--no-map", help="Also compute box mAP50/mAP50-95 on the split's tiles (--data).")
    ] = True,
    log_run: Annotated[
        bool,
        typer.Option("--log/--no-log", help="Log metrics and files into the model's MLflow run (models:/, runs:/)."),
    ] = True,
    workers: Annotated[
        int, typer.Option(min=0, help="Processes finding the true counts for --points; 0 = one per CPU core.")
    ] = 0,
) -> None:
    """Count the animals on whole photos (sliced, inside their masks), compare with the true counts, and
    report per-class MAE and RMSE and the competition metric (the mean of the per-class RMSEs).

    Writes metrics.json, per_photo.csv, counts_scatter.png and class_errors.png. When the model comes from
    an MLflow run, they are logged into that run (metrics eval/competition_rmse, eval/mae/<class>, ...),
    where 'rookery model promote' reads the counting error as its gate.
    """
    from rookery.config import get_settings
    from rookery.data.classes import Classes
    from rookery.evaluation import evaluate as run_evaluation
    from rookery.evaluation import from_dataset, from_points, scaled_options
    from rookery.evaluation.truth import SPLIT_CHOICES
    from rookery.inference.loading import load_predictor

    if split not in SPLIT_CHOICES:
        raise typer.BadParameter(f"expected one of {', '.join(SPLIT_CHOICES)}, got {split!r}", param_hint="--split")
    if (data is None) == (points is None):
        raise typer.BadParameter("give either --data DATASET or --points with --images and --classes")
    if points is not None and (images is None or classes is None):
        raise typer.BadParameter("--points needs --images (the photos) and --classes (classes.yaml)")
    if data is not None and classes is not None:
        raise typer.BadParameter("--classes goes with --points; a data set carries its classes", param_hint="--classes")

    settings = get_settings()
    uri = model or settings.model_uri
    if data is not None:
        manifest, evalset = from_dataset(data, split, images=images, masks=masks)
        data_info = {"dataset": str(data.resolve()), "fingerprint": manifest.fingerprint, "name": data.name}
    else:
        assert points is not None and images is not None and classes is not None
        evalset = from_points(points, images, Classes.load(classes), masks=masks, workers=workers or None)
        data_info = {"points": str(points.resolve()), "images": str(images.resolve()), "name": images.name}
    for w in evalset.warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)

    predictor, info = load_predictor(uri, backend=backend, device=device, conf=conf, batch=batch)
    predictor.options = scaled_options(predictor.options, evalset.scale)
    out = out or settings.home / "evaluations" / _slug(
        f"{info.label}-{data_info['name']}-{split if data else 'points'}"
    )
    console.print(
        f"evaluating {info.label} on {len(evalset.photos)} photo(s) ({predictor.backend_name} on {predictor.device}, "
        f"tile {predictor.options.tile}, conf {predictor.options.conf:g})",
        highlight=False,
    )
    ev = run_evaluation(
        predictor,
        info,
        evalset,
        out,
        dataset=data,
        split=split,
        box_map=box_map,
        map_device=_ultralytics_device(device),
        log_run=log_run,
        tracking_uri=settings.tracking_uri,
        data_info=data_info,
    )
    for s in ev.counting.skipped:
        console.print(f"[yellow]skipped[/] {s.item}: {s.reason}", highlight=False, soft_wrap=True)
    _print_table(ev)
    console.print(f"files:   {out}")
    if ev.run_id:
        if ev.log_problems:
            console.print(f"[yellow]not logged[/] into run {ev.run_id}: " + "; ".join(ev.log_problems))
        else:
            console.print(f"logged into MLflow run {ev.run_id} (metrics eval/..., artifacts evaluation/)")


def _print_table(ev: Evaluation) -> None:
    from rich.table import Table

    m = ev.metrics
    table = Table(title=f"Counting error on {m.photos} photo(s)")
    for col in ("class", "true", "predicted", "MAE", "RMSE"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for c, t, p, a, r in zip(m.classes, m.true_total, m.pred_total, m.mae, m.rmse, strict=True):
        table.add_row(c, str(t), str(p), f"{a:.3f}", f"{r:.3f}")
    table.add_section()
    table.add_row(
        "all classes", str(sum(m.true_total)), str(sum(m.pred_total)), f"{m.total_mae:.3f}", f"{m.total_rmse:.3f}"
    )
    table.caption = f"competition metric (mean of per-class RMSE): {m.competition_rmse:.4f}"
    console.print(table)
    if ev.detection is not None:
        d = ev.detection
        console.print(f"box mAP50 {d.map50:.4f}  mAP50-95 {d.map50_95:.4f}  on {d.tiles} tiles ({d.split})")
    elif ev.detection_note:
        console.print(f"box mAP: skipped ({ev.detection_note})", highlight=False)


def _ultralytics_device(device: str) -> str | None:
    """rookery's device names -> Ultralytics' ('cuda:1' -> '1'); 'auto' lets Ultralytics choose."""
    if device == "auto":
        return None
    if device.startswith("cuda"):
        return device.partition(":")[2] or "0"
    return device


def _slug(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z._-]+", "_", text).strip("_") or "evaluation"
