"""`rookery train --recipe heatmap`: the counting recipe (recipe.py) in one MLflow run, packaged and registered.

The run holds what a YOLO training's run holds — params, the data set as an input, per-log-step metrics
(`train/loss`, `lr/pg0`, `train/images_per_second`; the calibration folds' under `fold1/...`), tags, the
weights (`weights/best.pt`, `weights/best.onnx`) and the pyfunc model with its signature — plus what the
recipe adds: the held-out counts of the calibration folds (`calibration/held_out.csv`, a predicted-vs-true
plot), their competition metric and interval coverage (`heldout/competition_rmse`, `heldout/coverage90`), and
the calibration and ground resolution inside the model's rookery_model.json.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rookery.config import Settings
from rookery.packaging.runs import RunTracker

if TYPE_CHECKING:
    from rookery.training.recipe import RecipeResult
    from rookery.training.trainer import TrainParams, TrainResult

log = logging.getLogger(__name__)

DEFAULT_SECONDS = 600.0


def torch_device(device: str) -> str:
    """rookery train's --device ('' = CUDA when present, 'cpu', '0', '0,1') as a torch device (the first GPU)."""
    import torch

    if device in ("", "auto"):
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return "cpu"
    first = device.split(",")[0].strip()
    return f"cuda:{first}" if first.isdigit() else first


def _batch(params: TrainParams, device: str) -> int:
    """--batch when given, else 64 crops on a GPU (a step costs about the same as 16 there) and 16 on a CPU."""
    if "batch" in params.model_fields_set:
        return params.batch
    return 64 if device.startswith("cuda") else 16


def train_heatmap_run(params: TrainParams, settings: Settings) -> TrainResult:
    from rookery.data.manifest import Manifest
    from rookery.training.heatmap import HeatmapParams, load_heatmap_weights, save_checkpoint
    from rookery.training.recipe import RecipeParams, fit_heatmap_recipe
    from rookery.training.trainer import TrainResult, git_commit, package_model

    data_dir = params.data.resolve()
    manifest = Manifest.load(data_dir)
    name = params.name or f"{data_dir.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    save_dir = settings.home / "runs" / name
    device = torch_device(params.device)
    seconds = float(params.time or DEFAULT_SECONDS)
    recipe = RecipeParams(
        seconds=seconds,
        folds=params.calibration_folds,
        heatmap=HeatmapParams(device=device, seed=params.seed, batch=_batch(params, device)),
    )
    tracker = RunTracker(settings.tracking_uri, settings.artifact_root, params.experiment, run_name=name)
    with tracker:
        tracker.log_params({**params.model_dump(mode="json"), "heatmap": str(recipe.heatmap), "seconds": seconds})
        tracker.set_tags(
            {
                "rookery.recipe": "heatmap",
                "rookery.dataset": data_dir.name,
                "rookery.dataset_fingerprint": manifest.fingerprint,
                "rookery.save_dir": str(save_dir),
                "rookery.device": device,
                "mlflow.source.git.commit": git_commit() or "unknown",
                "rookery.tile": manifest.params.get("tile", ""),
                "rookery.overlap": manifest.params.get("overlap", ""),
            }
        )
        tracker.log_dataset(data_dir.name, manifest.fingerprint[:32], data_dir / "manifest.json")

        def on_log(tag: str, step: int, metrics: dict[str, float]) -> None:
            prefix = "" if tag == "final" else f"{tag}/"
            tracker.log_metrics({prefix + k: v for k, v in metrics.items()}, step=step)

        init = load_heatmap_weights(Path(params.model)) if params.model.endswith(".pt") else None
        result = fit_heatmap_recipe(data_dir, recipe, on_log, init=init)
        extra = {
            "family": "heatmap",
            "calibration": result.calibration.to_dict(),
            "canonical": result.canonical.to_dict(),
        }
        best = save_checkpoint(result.model, save_dir / "weights" / "best.pt", {"names": result.model.names})
        onnx = _export(result.model, save_dir / "weights" / "best.onnx")
        metrics = _held_out_metrics(result, list(manifest.classes))
        tracker.log_metrics(metrics)
        for path in _held_out_files(result, list(manifest.classes), save_dir / "calibration"):
            tracker.log_artifact(path, "calibration")
        (best.parent / "rookery_model.json").write_text(  # so that the local .pt/.onnx count as the package does
            json.dumps({"class_names": list(manifest.classes), "tile": result.canonical.tile,
                        "overlap": result.canonical.overlap, "imgsz": result.canonical.tile, **extra}, indent=2)
        )  # fmt: skip
        tracker.log_artifact(best, "weights")
        if onnx is not None:
            tracker.log_artifact(onnx, "weights")
        packaged = params.model_copy(update={"imgsz": result.canonical.tile})  # the network sees whole tiles
        version = package_model(tracker, best, onnx, manifest, packaged, settings.model_name, extra)
    return TrainResult(tracker.run_id, save_dir, best, onnx, version, tracker.problems, metrics)


def _export(model: Any, path: Path) -> Path | None:
    from rookery.errors import RookeryError
    from rookery.training.heatmap import export_heatmap_onnx

    try:
        return export_heatmap_onnx(model, path)
    except (RookeryError, RuntimeError, ImportError) as e:  # the .pt stays usable; say what is missing
        log.warning("ONNX export failed (%s); the PyTorch weights are still logged", e)
        return None


def _held_out_metrics(result: RecipeResult, names: list[str]) -> dict[str, float]:
    """The calibration folds' counting error on photos their models never saw (the honest estimate)."""
    from rookery.evaluation.counting import competition_rmse
    from rookery.inference.calibration import coverage, held_out_counts

    if not result.held_out:
        return {}
    photos = [h for _, h in result.held_out]
    true = np.array([h.true for h in photos])
    return {
        "heldout/competition_rmse": competition_rmse(true, held_out_counts(photos, result.calibration)),
        "heldout/coverage90": coverage(photos, result.calibration) or 0.0,
        "heldout/photos": float(len(result.held_out)),
        "train/steps": float(getattr(result.model, "train_steps", 0)),
    }


def _held_out_files(result: RecipeResult, names: list[str], folder: Path) -> list[Path]:
    """held_out.csv (per photo and class: true, predicted, interval) and held_out.png (predicted vs true)."""
    if not result.held_out:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rookery.inference.calibration import held_out_counts

    folder.mkdir(parents=True, exist_ok=True)
    pred = held_out_counts([h for _, h in result.held_out], result.calibration)
    rows = []
    for (photo, h), counts in zip(result.held_out, pred, strict=True):
        iv = result.calibration.intervals(counts)
        rows += [
            (photo, names[c], int(h.true[c]), int(counts[c]), int(iv[c, 0]), int(iv[c, 1])) for c in range(len(names))
        ]
    table = folder / "held_out.csv"
    with table.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "class", "true", "predicted", "interval_lo", "interval_hi"])
        w.writerows(rows)
    fig, ax = plt.subplots(figsize=(5, 5))
    for k, n in enumerate(names):
        pts = np.array([(r[2], r[3]) for r in rows if r[1] == n])
        if len(pts):
            ax.scatter(pts[:, 0], pts[:, 1], label=n, s=18, color=f"C{k}")
    top = max(1, max(max(r[2], r[3]) for r in rows))
    ax.plot([0, top], [0, top], color="grey", lw=0.8)
    ax.set(xlabel="true count", ylabel="predicted count", title="calibration folds: held-out photos")
    ax.legend(fontsize=7)
    png = folder / "held_out.png"
    fig.savefig(png, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return [table, png]
