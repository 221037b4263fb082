"""Train an Ultralytics YOLO detector on a rookery data set, with one MLflow run per training.

Ultralytics' own MLflow callback is switched off and rookery's callbacks below log instead — never both
(double logging) — because rookery needs control over metric names, steps, failure handling and what
is logged at the end (the packaged model, the ONNX export, the registry version).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import platform
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rookery import __version__
from rookery.config import Settings, get_settings
from rookery.errors import ConfigError, InputError, RookeryError
from rookery.packaging.runs import RunTracker

if TYPE_CHECKING:
    from rookery.data.manifest import Manifest

log = logging.getLogger(__name__)

MODEL_CONFIGS = re.compile(r"^(yolov8|yolov5|yolov9|yolov10|yolo11|yolo12)[nsmlx]?u?\.yaml$")


DEFAULT_INTENDED_USE = (
    "Counting the classes above on photos like the training photos: the same kind of camera, ground resolution "
    "and habitat. Check its counts on a few of your own photos before relying on it."
)


class TrainParams(BaseModel):
    """Every training argument; all of them are logged as MLflow params."""

    model_config = ConfigDict(protected_namespaces=())  # a field named `model` is intended

    data: Path
    # The model family: "heatmap" (rookery.models.heatmap: point counting, calibrated counts; the default of
    # `rookery train`) or "yolo" (Ultralytics boxes). See README, "The counting recipe".
    recipe: Literal["heatmap", "yolo"] = "yolo"
    time: Annotated[float | None, Field(gt=0)] = None  # wall-time budget in seconds (None: epochs / the default)
    calibration_folds: Annotated[int, Field(ge=0, le=10)] = 3  # heatmap: folds that calibrate counts and intervals
    intended_use: str | None = None  # the model card's "intended use" (None: DEFAULT_INTENDED_USE)
    model: str = "yolov8n.yaml"
    epochs: int = Field(50, ge=1)
    imgsz: int = Field(640, ge=32)
    batch: int = Field(16, ge=1)
    # Nominal batch: gradients are accumulated over nbs / batch batches per optimizer step. On a small data set
    # (the demo: ~150 tiles, batch 8) Ultralytics' 64 leaves ~2 steps per epoch; nbs = batch steps every batch.
    nbs: Annotated[int, Field(ge=1)] = 64
    device: str = ""  # "" = Ultralytics' choice (CUDA when present), "cpu", "0", "0,1"
    name: str | None = None
    experiment: str = "rookery"
    seed: int = 0
    patience: int = 50
    workers: int = 2  # data loader processes
    max_det: int = 3000  # dense colonies: far above Ultralytics' default of 300
    plots: bool = True
    # Aerial photos have no "up": flip both ways by default.
    fliplr: float = 0.5
    flipud: float = 0.5
    # Probability of a transpose (rookery.training.augment): with both flips, all 8 rotations and mirror images of
    # a tile. Off by default so that existing recipes (the demo's) train as they were tuned; 0.5 for aerial surveys.
    rot90: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    degrees: float = 0.0
    scale: float = 0.5
    mosaic: float = 1.0
    lr0: float = 0.01
    # Classification loss gain (Ultralytics' 7.5 box / 0.5 cls / 1.5 dfl). A short training leaves class scores
    # low (the boxes are right before the scores are confident); a higher gain makes them confident sooner.
    cls: Annotated[float, Field(gt=0)] = 0.5
    optimizer: str = "auto"
    cache: bool = False
    export_onnx: bool = True
    register_model: bool = True


@dataclass
class TrainResult:
    run_id: str | None
    save_dir: Path
    best: Path
    onnx: Path | None
    model_version: str | None
    problems: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.problems


def metric_name(key: str) -> str:
    """Ultralytics' names -> MLflow-safe ones: 'metrics/mAP50-95(B)' -> 'metrics/mAP50-95'."""
    return key.replace("(B)", "").replace("(", "").replace(")", "")


def resolve_model(model: str) -> str:
    """A model config name or a local weights file; never something Ultralytics would download."""
    path = Path(model)
    if path.suffix == ".pt":
        if not path.is_file():
            raise ConfigError(
                f"weights file {model} not found; rookery never downloads weights: pass a local .pt "
                "or a model config such as yolov8n.yaml or yolo11n.yaml"
            )
        return str(path.resolve())
    if MODEL_CONFIGS.match(path.name) or path.is_file():
        return str(path.resolve()) if path.is_file() else model
    raise ConfigError(f"unknown model {model!r}: pass a config such as yolov8n.yaml or yolo11n.yaml, or a local .pt")


def _versions() -> dict[str, str]:
    import torch
    import ultralytics

    from rookery.packaging.client import mlflow_version

    return {
        "rookery.version": __version__,
        "ultralytics.version": ultralytics.__version__,
        "torch.version": torch.__version__,
        "mlflow.version": mlflow_version(),
        "python.version": platform.python_version(),
    }


def git_commit() -> str | None:
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _device_name(device: str) -> str:
    import torch

    if device != "cpu" and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu ({platform.processor() or platform.machine()})"


class _EpochLogger:
    """Ultralytics callbacks that log per-epoch metrics (step = epoch, 1-based) and the best model's
    final validation (`best/...`). Ultralytics calls on_fit_epoch_end once more after the last epoch
    for that final validation; it is the one call not preceded by on_train_epoch_start.

    Multi-GPU (DDP) training: Ultralytics pickles the callbacks (cloudpickle) into its worker processes, so
    this object and its RunTracker go with them; only rank 0 logs (the other ranks see partial metrics)."""

    def __init__(self, tracker: RunTracker, budget_s: float | None = None) -> None:
        self.tracker = tracker
        self.budget_s = budget_s  # a time budget: each epoch's end says how much of it is left
        self.started = time.perf_counter()
        self.in_epoch = False
        self.epoch_start = 0.0
        self.best: dict[str, float] = {}

    def on_train_epoch_start(self, trainer: Any) -> None:
        self.in_epoch = True
        self.epoch_start = time.perf_counter()

    def on_fit_epoch_end(self, trainer: Any) -> None:
        if int(os.environ.get("RANK", -1)) > 0:  # a DDP worker other than rank 0
            return
        val = {metric_name(k): float(v) for k, v in trainer.metrics.items()}
        if not self.in_epoch:  # final validation of best.pt
            self.best = {k.replace("metrics/", "best/"): v for k, v in val.items() if k.startswith("metrics/")}
            self.tracker.log_metrics(self.best)
            return
        self.in_epoch = False
        seconds = time.perf_counter() - self.epoch_start
        images = len(trainer.train_loader.dataset) if getattr(trainer, "train_loader", None) else 0
        metrics = {
            **val,
            **{metric_name(k): float(v) for k, v in trainer.lr.items()},
            **{k: float(v) for k, v in trainer.label_loss_items(trainer.tloss, prefix="train").items()},
            "train/epoch_seconds": seconds,
            "train/images_per_second": images / seconds if seconds > 0 else 0.0,
        }
        metrics.update(_gpu_memory())
        self.tracker.log_metrics(metrics, step=trainer.epoch + 1)
        if self.budget_s:
            from rookery.logs import console

            left = max(0.0, self.budget_s - (time.perf_counter() - self.started))
            console.print(
                f"epoch {trainer.epoch + 1}/{trainer.epochs} done: {_minutes(left)} of the "
                f"{_minutes(self.budget_s)} training budget left",
                highlight=False,
            )


def _minutes(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _gpu_memory() -> dict[str, float]:
    import torch

    if not torch.cuda.is_available():
        return {}
    return {"train/gpu_mem_gb": torch.cuda.max_memory_reserved() / 1e9}


def train(params: TrainParams, settings: Settings | None = None, resume_run_id: str | None = None) -> TrainResult:
    """Train, log everything to one MLflow run, export ONNX, package and register the model."""
    from rookery.data.manifest import Manifest
    from rookery.offline import ensure_offline

    settings = settings or get_settings()
    ensure_offline(settings)
    if params.recipe == "heatmap":
        if resume_run_id:
            raise ConfigError("--resume continues YOLO trainings only; a heatmap training restarts within --time")
        Manifest.load(params.data.resolve())  # a clear error for a folder that is no data set, before anything
        yolo_only = sorted(params.model_fields_set & {"epochs", "imgsz"})
        if yolo_only:  # a YOLO habit would otherwise silently train for the default time
            flags = " and ".join(f"--{f}" for f in yolo_only)
            verb = "applies" if len(yolo_only) == 1 else "apply"
            raise ConfigError(
                f"{flags} {verb} to --recipe yolo; the heatmap recipe trains within --time SECONDS at the data set's "
                "tile size"
            )
        from rookery.training.heatmap_run import train_heatmap_run

        return train_heatmap_run(params, settings)
    data_dir = params.data.resolve()
    manifest = Manifest.load(data_dir)
    data_yaml = data_dir / "data.yaml"
    if not data_yaml.is_file():
        raise InputError(f"{data_dir} has no data.yaml; build it with 'rookery data build'")
    model_spec = resolve_model(params.model)

    from ultralytics import settings as yolo_settings
    from ultralytics.models import YOLO

    # rookery logs, not Ultralytics' callback (SettingsManager.update is unannotated)
    yolo_settings.update({"mlflow": False, "sync": False})  # type: ignore[no-untyped-call]

    runs_dir = settings.home / "runs"
    name = params.name or f"{data_dir.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    tracker = RunTracker(
        settings.tracking_uri, settings.artifact_root, params.experiment, run_name=name, run_id=resume_run_id
    )
    with tracker:
        if resume_run_id is None:
            tracker.log_params(params.model_dump(mode="json"))
        save_dir = _resume_dir(tracker, resume_run_id) if resume_run_id else runs_dir / name
        tracker.set_tags(
            {
                **_versions(),
                "rookery.dataset": data_dir.name,
                "rookery.dataset_fingerprint": manifest.fingerprint,
                "rookery.save_dir": str(save_dir),
                "rookery.device": _device_name(params.device),
                "mlflow.source.git.commit": git_commit() or "unknown",
                "rookery.tile": manifest.params.get("tile", ""),
                "rookery.overlap": manifest.params.get("overlap", ""),
            }
        )
        # MLflow's dataset digest column holds 36 characters: the first 32 of the fingerprint identify it.
        tracker.log_dataset(data_dir.name, manifest.fingerprint[:32], data_dir / "manifest.json")
        epochs = _EpochLogger(tracker, params.time)
        if resume_run_id:
            last = save_dir / "weights" / "last.pt"
            if not last.is_file():
                raise RookeryError(f"cannot resume run {resume_run_id}: {last} is missing")
            model = YOLO(str(last))
            _add_callbacks(model, epochs, params)
            with _all_cores(params.device):
                model.train(resume=True)
        else:
            model = YOLO(model_spec)
            _add_callbacks(model, epochs, params)
            with _all_cores(params.device):
                model.train(**_ultralytics_args(params, data_yaml, save_dir))
        trainer = model.trainer
        assert trainer is not None  # set by model.train()
        best = Path(trainer.best) if Path(trainer.best).is_file() else Path(trainer.last)
        for artifact in ("results.csv", "args.yaml"):
            tracker.log_artifact(save_dir / artifact)
        for png in sorted(save_dir.glob("*.png")) + sorted(save_dir.glob("*.jpg")):
            tracker.log_artifact(png, "plots")
        tracker.log_artifact(best, "weights")
        onnx = _export_onnx(best, params.imgsz) if params.export_onnx else None
        if onnx is not None:
            tracker.log_artifact(onnx, "weights")
        version = package_model(tracker, best, onnx, manifest, params, settings.model_name)
        # after a DDP training the metrics were logged by the rank-0 worker process: read them back
        metrics = epochs.best or tracker.latest_metrics("best/")
    return TrainResult(tracker.run_id, save_dir, best, onnx, version, tracker.problems, metrics)


def _add_callbacks(model: Any, epochs: _EpochLogger, params: TrainParams) -> None:
    model.add_callback("on_train_epoch_start", epochs.on_train_epoch_start)
    model.add_callback("on_fit_epoch_end", epochs.on_fit_epoch_end)
    if params.rot90 > 0:
        from rookery.training.augment import add_transpose

        model.add_callback("on_pretrain_routine_end", functools.partial(add_transpose, p=params.rot90))


@contextlib.contextmanager
def _all_cores(device: str) -> Iterator[None]:
    """Let a CPU training use every core. Ultralytics sets torch's threads to cores - 1 when it trains on the CPU
    (ultralytics.utils.torch_utils.NUM_THREADS): on a 2-core laptop one core, and the training takes 1.6x as long
    as with both (its data loading runs in the same process, so nothing else needs the core)."""
    from ultralytics.utils import torch_utils

    # torch_utils' own binding of NUM_THREADS (imported from ultralytics.utils, not re-exported) is the one it reads
    before = torch_utils.NUM_THREADS  # type: ignore[attr-defined]
    if device == "cpu":
        torch_utils.NUM_THREADS = max(1, os.cpu_count() or 1)  # type: ignore[attr-defined]  # as above
    try:
        yield
    finally:
        torch_utils.NUM_THREADS = before  # type: ignore[attr-defined]  # as above


def _ultralytics_args(params: TrainParams, data_yaml: Path, save_dir: Path) -> dict[str, Any]:
    args = params.model_dump(
        exclude={
            "data",
            "model",
            "name",
            "experiment",
            "export_onnx",
            "register_model",
            "rot90",
            "recipe",
            "time",
            "calibration_folds",
            "intended_use",
        }
    )  # rot90 is rookery's own (a callback), not an Ultralytics argument; so are recipe, calibration_folds and
    # intended_use (the model card's)
    if params.time:
        args["time"] = params.time / 3600  # Ultralytics' budget is in hours; it overrides epochs
    args.update(
        data=str(data_yaml),
        project=str(save_dir.parent),  # absolute: a relative project lands inside site-packages
        name=save_dir.name,
        exist_ok=True,
        verbose=False,
        amp=False,  # Ultralytics' AMP check downloads a model; the gain on small models is minor
    )
    if not params.device:
        args.pop("device")
    return args


def _resume_dir(tracker: RunTracker, run_id: str) -> Path:
    from rookery.packaging.runs import run_tags

    try:
        tags = run_tags(tracker.tracking_uri, run_id)
    except Exception as e:
        raise RookeryError(f"cannot resume run {run_id}: it is not in the tracking store ({e})") from e
    if "rookery.save_dir" not in tags:
        raise RookeryError(f"cannot resume run {run_id}: it was not started by 'rookery train'")
    return Path(tags["rookery.save_dir"])


def _export_onnx(best: Path, imgsz: int) -> Path | None:
    """ONNX export with a dynamic batch: the CPU inference backend and a portable artifact."""
    from rookery.inference.export import export_onnx

    try:
        return export_onnx(best, imgsz=imgsz)
    except RookeryError as e:  # the .pt stays usable; say what is missing
        log.warning("ONNX export failed (%s); the PyTorch weights are still logged", e)
        return None


def package_model(
    tracker: RunTracker,
    best: Path,
    onnx: Path | None,
    manifest: Manifest,
    params: TrainParams,
    model_name: str,
    extra: dict[str, Any] | None = None,
) -> str | None:
    """Log the pyfunc model and register a new version (imported here: the pyfunc imports mlflow, which a
    `import rookery.training` should not pay for)."""
    from rookery.packaging.pyfunc import log_pyfunc_model

    info = tracker.log_model(
        lambda: log_pyfunc_model(
            weights=best,
            onnx=onnx,
            class_names=list(manifest.classes),
            tile=int(manifest.params.get("tile", 640)),
            overlap=int(manifest.params.get("overlap", 64)),
            imgsz=params.imgsz,
            registered_model_name=model_name if params.register_model else None,
            extra_meta={**(extra or {}), "card": model_card(manifest, params)},
        )
    )
    return info


def model_card(manifest: Manifest, params: TrainParams) -> dict[str, Any]:
    """What the model was trained on and what it is for, kept in rookery_model.json beside the weights (the
    server's /api/v1/model and page show it; validation figures come from the run's metrics there)."""
    photos = {split: sum(1 for p in manifest.photos if p.split == split) for split in ("train", "val", "test")}
    objects = manifest.objects.get("train", {})
    return {
        "trained_on": (
            f"{photos['train']} training photos ({photos['val']} validation, {photos['test']} test) of the data set "
            f"{Path(params.data).name} (fingerprint {manifest.fingerprint[:12]}, built {manifest.created[:10]})"
        ),
        "classes": list(manifest.classes),
        "training_objects": {c: int(objects.get(c, 0)) for c in manifest.classes},
        "recipe": params.recipe,
        "intended_use": params.intended_use or DEFAULT_INTENDED_USE,
    }
