"""`rookery evaluate`: counting error (per-class MAE/RMSE, the competition metric), count intervals, the class
confusion of matched detections, and box mAP of a model."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rookery.logs import console

if TYPE_CHECKING:
    from rookery.data.classes import Classes
    from rookery.evaluation import Evaluation
    from rookery.inference.loading import ModelInfo
    from rookery.inference.predictor import Predictor


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
        Path | None,
        typer.Option(help="With --points: classes.yaml, in the model's class order [default: the model's classes]."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for metrics.json, per_photo.csv and the plots [default: <home>/evaluations/<name>]."),
    ] = None,
    conf: Annotated[
        float | None, typer.Option(help="Score threshold for a detection to count [default: the model's, 0.25].")
    ] = None,
    batch: Annotated[int | None, typer.Option(min=1, help="Tiles per network batch.")] = None,
    backend: Annotated[
        str,
        typer.Option(help="auto (torch on a GPU; on the CPU OpenVINO, else ONNX Runtime), onnx, openvino or torch."),
    ] = "auto",
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
    json_out: Annotated[
        Path | None,
        typer.Option(
            "--json",
            help="Also write the evaluation as one JSON file: the model, per photo and class the true and predicted "
            "counts with their interval, and the overall metrics and confusion matrix.",
        ),
    ] = None,
    animal_px: Annotated[
        float | None,
        typer.Option(
            help="Typical animal length in pixels in these photos [default: estimated from each photo's size].",
        ),
    ] = None,
) -> None:
    """Count the animals on whole photos (sliced, inside their masks), compare with the true counts, and
    report per-class MAE and RMSE and the competition metric (the mean of the per-class RMSEs), how often the
    count intervals hold the true count, and (with --points) which animals were found, missed, invented or
    given another class.

    Writes metrics.json, per_photo.csv, counts_scatter.png and class_errors.png, and with --points
    confusion.csv and confusion.png. When the model comes from an MLflow run, they are logged into that run
    (metrics eval/competition_rmse, eval/mae/<class>, eval/matched_fraction, ...), where 'rookery model
    promote' reads the counting error as its gate.
    """
    from rookery.config import get_settings
    from rookery.data.classes import Classes
    from rookery.errors import ConfigError
    from rookery.evaluation import evaluate as run_evaluation
    from rookery.evaluation import from_dataset, from_points, scaled_options, write_summary
    from rookery.evaluation.truth import SPLIT_CHOICES
    from rookery.packaging.models import load_predictor

    if split not in SPLIT_CHOICES:
        raise typer.BadParameter(f"expected one of {', '.join(SPLIT_CHOICES)}, got {split!r}", param_hint="--split")
    if (data is None) == (points is None):
        raise typer.BadParameter("give either --data DATASET or --points with --images")
    if points is not None and images is None:
        raise typer.BadParameter("--points needs --images (the photos)")
    if animal_px is not None and not animal_px > 0:
        raise typer.BadParameter(f"must be a positive number of pixels, got {animal_px:g}", param_hint="--animal-px")
    if data is not None and classes is not None:
        raise typer.BadParameter("--classes goes with --points; a data set carries its classes", param_hint="--classes")

    settings = get_settings()
    uri = model or settings.model_uri

    def load() -> tuple[Predictor, ModelInfo]:
        # animal_px=None is dropped by load_predictor: the predictor then estimates it from each photo's size.
        return load_predictor(uri, backend=backend, device=device, conf=conf, batch=batch, animal_px=animal_px)

    loaded = None
    if data is not None:
        manifest, evalset = from_dataset(data, split, images=images, masks=masks)
        data_info = {"dataset": str(data.resolve()), "fingerprint": manifest.fingerprint, "name": data.name}
    else:
        assert points is not None and images is not None
        if classes is not None:
            evalset = from_points(points, images, Classes.load(classes), masks=masks, workers=workers or None)
        else:  # the model's classes name the points' classes: load it first
            loaded = load()
            model_classes = _model_classes(loaded[0].class_names)
            try:
                evalset = from_points(points, images, model_classes, masks=masks, workers=workers or None)
            except ConfigError as e:
                raise ConfigError(f"{e} (the model's classes; pass --classes with a classes.yaml)") from e
        data_info = {"points": str(points.resolve()), "images": str(images.resolve()), "name": images.name}
    for w in evalset.warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)

    predictor, info = loaded or load()
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
    _print_photos(ev)
    _print_confusion(ev)
    console.print(f"files:   {out}")
    if json_out is not None:
        console.print(f"json:    {write_summary(json_out, ev)}")
    if ev.run_id:
        if ev.log_problems:
            console.print(f"[yellow]not logged[/] into run {ev.run_id}: " + "; ".join(ev.log_problems))
        else:
            console.print(f"logged into MLflow run {ev.run_id} (metrics eval/..., artifacts evaluation/)")


def _print_table(ev: Evaluation) -> None:
    from rich.table import Table

    m = ev.metrics
    coverage = (ev.intervals or {}).get("classes") or {}
    level = (ev.intervals or {}).get("level")
    in_interval = f"in {level:.0%} interval" if level else "in interval"
    table = Table(title=f"Counting error on {m.photos} photo(s)")
    for col in ("class", "true", "predicted", "MAE", "RMSE", in_interval):
        table.add_column(col, justify="left" if col == "class" else "right")
    for c, t, p, a, r in zip(m.classes, m.true_total, m.pred_total, m.mae, m.rmse, strict=True):
        table.add_row(c, str(t), str(p), f"{a:.3f}", f"{r:.3f}", _share(coverage.get(c)))
    table.add_section()
    table.add_row(
        "all classes",
        str(sum(m.true_total)),
        str(sum(m.pred_total)),
        f"{m.total_mae:.3f}",
        f"{m.total_rmse:.3f}",
        _share((ev.intervals or {}).get("coverage")),
    )
    table.caption = (
        f"competition metric (mean of per-class RMSE): {m.competition_rmse:.4f}\n"
        f"{in_interval}: share of the photos with the class present or predicted whose true count lies in "
        "the count's interval (all classes: pooled over the classes)"
    )
    console.print(table)
    if ev.detection is not None:
        d = ev.detection
        console.print(f"box mAP50 {d.map50:.4f}  mAP50-95 {d.map50_95:.4f}  on {d.tiles} tiles ({d.split})")
    elif ev.detection_note:
        console.print(f"box mAP: skipped ({ev.detection_note})", highlight=False)


MAX_PHOTO_ROWS = 30


def _model_classes(names: tuple[str, ...]) -> Classes:
    """Classes named as the model's, for reading points.csv (dot colours and box sizes are not needed)."""
    from rookery.data.classes import Classes, ClassSpec

    return Classes(tuple(ClassSpec(name, (0, 0, 0)) for name in names))


def _print_photos(ev: Evaluation) -> None:
    """Per photo and class: true count, predicted count and its interval (the first MAX_PHOTO_ROWS photos)."""
    from rich.markup import escape
    from rich.table import Table

    from rookery.evaluation.counting import total_interval

    r = ev.counting
    if not r.has_intervals:
        return
    table = Table(title=escape("Per photo: true / predicted [interval]"))
    for col in ("photo", *r.classes, "total"):
        table.add_column(col, justify="left" if col == "photo" else "right")
    for name, t, p, iv in list(zip(r.images, r.true, r.pred, r.intervals, strict=True))[:MAX_PHOTO_ROWS]:
        assert iv is not None
        cells = [_cell(int(tv), int(pv), lo, hi) for tv, pv, (lo, hi) in zip(t, p, iv.tolist(), strict=True)]
        table.add_row(name, *cells, _cell(int(t.sum()), int(p.sum()), *total_interval(iv)))
    more = len(r.images) - MAX_PHOTO_ROWS
    table.caption = "a true count outside its interval is red" + (
        f"; {more} more photo(s) in per_photo.csv" if more > 0 else ""
    )
    console.print(table)


def _cell(true: int, pred: int, lo: int, hi: int) -> str:
    from rich.markup import escape

    text = escape(f"{true} / {pred} [{lo}-{hi}]")
    return text if lo <= true <= hi else f"[red]{text}[/]"


def _print_confusion(ev: Evaluation) -> None:
    """The confusion matrix: rows true classes and "extra", columns predicted classes and "missed"."""
    from rich.table import Table

    c = ev.confusion
    if c is None:
        if ev.confusion_note:
            console.print(f"class confusion: skipped ({ev.confusion_note})", highlight=False)
        return
    rows, cols = c.labels()
    table = Table(title=f"Detections matched to true animals ({c.photos} photo(s))")
    table.add_column("true \\ predicted")
    for col in cols:
        table.add_column(col, justify="right")
    for i, (label, values) in enumerate(zip(rows, c.matrix.tolist(), strict=True)):
        if i == len(rows) - 1:
            table.add_section()
        cells = ["" if (i == len(rows) - 1 and j == len(cols) - 1) else str(v) for j, v in enumerate(values)]
        cells = [f"[bold]{v}[/]" if i == j and i < len(rows) - 1 else v for j, v in enumerate(cells)]
        table.add_row(label, *cells)
    frac = c.fractions()
    table.caption = (
        f"found {_share(frac['matched_fraction'])} of the animals, "
        f"{_share(frac['class_agreement'])} of them with their class; "
        f"{_share(frac['extra_fraction'])} of the detections on no animal "
        "(match radius: half the larger of the two classes' box sides)"
    )
    console.print(table)
    if ev.confusion_note:
        console.print(f"class confusion: {ev.confusion_note}", highlight=False)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _ultralytics_device(device: str) -> str | None:
    """rookery's device names -> Ultralytics' ('cuda:1' -> '1'); 'auto' lets Ultralytics choose."""
    if device == "auto":
        return None
    if device.startswith("cuda"):
        return device.partition(":")[2] or "0"
    return device


def _slug(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z._-]+", "_", text).strip("_") or "evaluation"
