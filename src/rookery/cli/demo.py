"""`rookery demo`: the whole pipeline on a synthetic survey, with no configuration (rookery.demo runs it).

Progress goes to stderr; the result (the evaluation table, or JSON with --json) to stdout, for scripts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rookery.demo import DemoParams
from rookery.logs import console

if TYPE_CHECKING:
    from rookery.config import Settings
    from rookery.demo import DemoResult


def demo(
    out: Annotated[
        Path | None, typer.Option(help="Folder for the demo's survey, data set and evaluation (default: <home>/demo).")
    ] = None,
    images: Annotated[
        int, typer.Option(min=3, help="Synthetic photos to generate (60/20/20 % train/val/test).")
    ] = DemoParams.images,
    size: Annotated[str, typer.Option(help="Photo size WIDTHxHEIGHT.")] = "{}x{}".format(*DemoParams.size),
    tile: Annotated[
        int, typer.Option(min=32, help="Tile side in pixels; the network trains on tiles as they are.")
    ] = DemoParams.tile,
    time: Annotated[
        float,
        typer.Option(
            "--time",
            min=10,
            help="Seconds of training (default 4 min): after the first epoch the number of epochs is fitted to it, "
            "so the page comes up in minutes even on a busy machine.",
        ),
    ] = DemoParams.time,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="A fixed number of epochs instead of --time (repeatable runs).")
    ] = None,
    seed: Annotated[
        int, typer.Option(min=0, help="Random seed of the survey, the split and the training.")
    ] = DemoParams.seed,
    retrain: Annotated[
        bool, typer.Option(help="Train a new model even if the demo has one for this data set.")
    ] = False,
    rebuild: Annotated[bool, typer.Option(help="Start over: new survey, data set and model.")] = False,
    serve: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve the web page at the end (--no-serve: print and stop).")
    ] = True,
    host: Annotated[str, typer.Option(help="Address the web page listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port of the web page.")] = 8000,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON instead of the table.")] = False,
) -> None:
    """Run the whole pipeline on a synthetic survey: survey -> dots -> data set -> CPU training -> evaluation ->
    champion -> web page. Re-running reuses what exists (--retrain: a new model; --rebuild: everything)."""
    from rookery.cli.options import parse_size
    from rookery.config import get_settings
    from rookery.demo import run_demo, to_dict

    settings = get_settings()
    params = DemoParams(
        root=out, images=images, size=parse_size(size), tile=tile, overlap=tile // 8, time=time, epochs=epochs,
        seed=seed, retrain=retrain, rebuild=rebuild,
    )  # fmt: skip
    result = run_demo(params, settings, on_step=console.rule)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    if as_json:
        typer.echo(json.dumps(to_dict(result), indent=2))
    else:
        _print_result(result)
    ui = mlflow_ui_command(settings)
    if not serve:
        console.print(f"MLflow UI on the same store: {ui}", highlight=False, soft_wrap=True)
        return
    console.rule("7. The web page")
    console.print(
        f"web page: http://{host}:{port}/  (upload a test photo, e.g. {_first(result.test_photos)})\n"
        f"MLflow UI on the same store, in another terminal: {ui}  (then open http://127.0.0.1:5000)\n"
        "Ctrl-C stops the web page; 'rookery demo' again reuses the model.",
        highlight=False,
        soft_wrap=True,
    )
    _serve(host, port)


def _first(photos: list[Path]) -> str:
    return str(photos[0]) if photos else "one from the survey's train/ folder"


def mlflow_ui_command(settings: Settings) -> str:
    """The command that opens MLflow's UI on the demo's store. With a SQLite store the runs' artifacts live
    under artifact_root (recorded per experiment); --default-artifact-root puts new experiments there too."""
    import shlex

    if settings.tracking_uri.startswith(("http://", "https://")):
        return f"open {settings.tracking_uri}"
    return (
        f"mlflow ui --backend-store-uri {shlex.quote(settings.tracking_uri)} "
        f"--default-artifact-root {shlex.quote(Path(settings.artifact_root).resolve().as_uri())} --port 5000"
    )


def _serve(host: str, port: int) -> None:
    """`rookery serve` on the champion (ROOKERY_MODEL_URI's default): it follows the alias, so a later
    promotion reaches the page without a restart."""
    from rookery.cli.serve import serve as serve_command

    serve_command(model=None, host=host, port=port, workers=1)


def _print_result(r: DemoResult) -> None:
    from rich.console import Console
    from rich.table import Table

    out = Console(soft_wrap=True)  # stdout: the result, for scripts and CI logs
    c = r.counting
    table = Table(title=f"Counts on {c['photos']} test photo(s): true vs predicted")
    for col in ("class", "true", "predicted", "MAE", "RMSE"):
        table.add_column(col, justify="left" if col == "class" else "right")
    true_sum = pred_sum = 0
    for name, v in c["classes"].items():
        table.add_row(name, str(v["true"]), str(v["predicted"]), f"{v['mae']:.2f}", f"{v['rmse']:.2f}")
        true_sum, pred_sum = true_sum + int(v["true"]), pred_sum + int(v["predicted"])
    table.add_section()
    table.add_row("all classes", str(true_sum), str(pred_sum), f"{c['total_mae']:.2f}", f"{c['total_rmse']:.2f}")
    table.caption = f"competition metric (mean of per-class RMSE): {c['competition_rmse']:.3f}"
    out.print(table)
    v = r.validation
    if v:
        out.print(
            f"validation mAP50 {v.get('mAP50', float('nan')):.3f}  mAP50-95 {v.get('mAP50-95', float('nan')):.3f}"
            "  (val tiles, best epoch)",
            highlight=False,
        )
    if r.detection:
        d = r.detection
        out.print(
            f"test mAP50 {d['map50']:.3f}  mAP50-95 {d['map50_95']:.3f}  ({d['tiles']} test tiles)", highlight=False
        )
    how = "trained now" if r.trained else "reused (--retrain trains a new one)"
    out.print(f"model: {r.model_name} v{r.version} ({how}); run {r.run_id}; {r.promotion}", highlight=False)
    out.print(f"files: {r.evaluation_dir}", highlight=False)
    if r.test_photos:
        names = ", ".join(p.name for p in r.test_photos)
        out.print(f"test photos (never trained on): {names} in {r.test_photos[0].parent}", highlight=False)
    if r.seconds:
        out.print("time: " + ", ".join(f"{k} {s:.0f} s" for k, s in r.seconds.items()), highlight=False)
