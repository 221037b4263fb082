"""`rookery train`: Ultralytics training on a rookery data set, one MLflow run, a registered version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from rookery.logs import console

# Exit status when the weights are saved but the MLflow run is incomplete (server down or gone).
EXIT_INCOMPLETE = 3


def train(
    data: Annotated[Path, typer.Option(help="Data set folder built by 'rookery data build' (has data.yaml).")],
    recipe: Annotated[
        str,
        typer.Option(
            help="heatmap: point counting with calibrated counts and intervals (the default; README, 'The counting "
            "recipe'); yolo: an Ultralytics box detector (--model, --epochs, --imgsz apply to it)."
        ),
    ] = "heatmap",
    time_budget: Annotated[
        float | None,
        typer.Option(
            "--time",
            min=1.0,
            help="Wall-time budget in seconds of the training steps (heatmap: shared by the calibration folds and "
            "the final model, default 600; counting the held-out photos and packaging come on top). With yolo it "
            "replaces --epochs.",
        ),
    ] = None,
    calibration_folds: Annotated[
        int, typer.Option(min=0, max=10, help="heatmap: photo folds that calibrate the counts (0: none).")
    ] = 3,
    model: Annotated[
        str,
        typer.Option(
            help="yolo: a model config (yolov8n.yaml, yolo11n.yaml: from scratch) or local weights .pt; heatmap: "
            "a best.pt of an earlier heatmap training to start from (the config default means from scratch)."
        ),
    ] = "yolov8n.yaml",
    epochs: Annotated[int | None, typer.Option(min=1, help="yolo: training epochs [default: 50].")] = None,
    imgsz: Annotated[
        int | None, typer.Option(min=32, help="yolo: network input size in pixels (tiles are resized to it) [640].")
    ] = None,
    batch: Annotated[
        int | None, typer.Option(min=1, help="Images per batch [default: yolo 16; heatmap 64 on a GPU, 16 on a CPU].")
    ] = None,
    device: Annotated[str, typer.Option(help="'cpu', '0', '0,1' (multi-GPU DDP); empty = CUDA when present.")] = "",
    name: Annotated[str | None, typer.Option(help="Run name [default: <data set>-<time>].")] = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment.")] = "rookery",
    workers: Annotated[int, typer.Option(min=0, help="Data loader processes.")] = 2,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    patience: Annotated[int, typer.Option(min=0, help="Early-stopping patience in epochs.")] = 50,
    plots: Annotated[bool, typer.Option(help="Make Ultralytics' plots and log them.")] = True,
    rot90: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Probability of a transpose; with the flips, all 8 rotations/mirrors of a tile (0.5 for surveys).",
        ),
    ] = 0.0,
    register: Annotated[bool, typer.Option(help="Register the model as a new version in the registry.")] = True,
    resume: Annotated[
        str | None, typer.Option(help="Continue an interrupted training in the same MLflow run (its RUN_ID).")
    ] = None,
) -> None:
    """Train a counting model, tracked in MLflow, and register it as a new model version.

    The default recipe trains the heatmap point counter within --time seconds: models on folds of the photos
    count the photos they did not see, which calibrates the per-class thresholds and the 90 % count intervals,
    then the final model trains on every photo. --recipe yolo trains an Ultralytics detector instead.
    Logs params, metrics, system metrics, plots, weights, the ONNX export and the packaged pyfunc
    model into one MLflow run.

    The tracking store is ROOKERY_TRACKING_URI (default: a SQLite file under ./.rookery). If the store is
    down, training still runs and saves its weights locally; the exit status is then 3.
    """
    from rookery.training.trainer import TrainParams
    from rookery.training.trainer import train as run_training

    if recipe not in ("heatmap", "yolo"):
        raise typer.BadParameter(f"must be 'heatmap' or 'yolo', got {recipe!r}", param_hint="--recipe")
    # Unset options keep the recipe's own defaults (and the heatmap recipe refuses YOLO-only ones: see trainer.py).
    options = {"batch": batch, "epochs": epochs, "imgsz": imgsz}
    given: dict[str, Any] = {k: v for k, v in options.items() if v is not None}
    params = TrainParams(
        data=data,
        recipe=recipe,  # type: ignore[arg-type]
        time=time_budget,
        calibration_folds=calibration_folds,
        model=model,
        **given,
        device=device,
        name=name,
        experiment=experiment,
        workers=workers,
        seed=seed,
        patience=patience,
        plots=plots,
        rot90=rot90,
        register_model=register,
    )
    result = run_training(params, resume_run_id=resume)
    console.print(f"weights: {result.best}")
    if result.onnx:
        console.print(f"onnx:    {result.onnx}")
    if result.metrics:
        console.print("best:    " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(result.metrics.items())))
    if result.run_id:
        console.print(f"run:     {result.run_id}")
    if result.model_version:
        console.print(
            f"model:   version {result.model_version} (promote with 'rookery model promote {result.model_version}')"
        )
    if not result.complete:
        console.print(
            "[bold yellow]incomplete:[/] the MLflow run is missing: " + "; ".join(dict.fromkeys(result.problems))
        )
        raise typer.Exit(EXIT_INCOMPLETE)
