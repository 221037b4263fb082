"""`count_collection`: count photos on a Ray cluster into an output folder, resumably, exactly once per photo.

    list (driver) -> read bytes + key (CPU tasks; photos already written are dropped here)
                  -> PhotoCounter actors (map_batches: num_gpus=1 each on GPU nodes, else one per CPU)
                  -> commit each result block as atomic part files (driver) -> consolidate (driver)

Why the driver writes: a result block is ~1/1000 of its photos' bytes (counts and boxes), so one writer
keeps up with many GPUs, needs no shared output file system on the workers, and makes "written" mean one
thing: the part's counts file exists. Workers still need the photos (a shared file system or mount).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from rookery.errors import ConfigError, InputError
from rookery.types import Skipped

DEFAULT_EXPERIMENT = "rookery-predict"


@dataclass
class RunSummary:
    class_names: tuple[str, ...]
    counted: int  # photos counted by this run
    already: int  # photos in the outputs from earlier runs (skipped by this one)
    photos: int  # photos in the outputs now, each once
    animals: np.ndarray  # per class, over all photos in the outputs
    animals_now: np.ndarray  # per class, over the photos this run counted
    errors: list[Skipped] = field(default_factory=list)  # photos of this run that could not be counted
    seconds: float = 0.0
    model: str = ""  # the model version every photo of this run was counted with
    actors: int = 0
    accelerator: str = "cpu"
    interrupted: bool = False
    mlflow_run_id: str | None = None
    first_block_seconds: float = 0.0  # until the first result block was committed (actor start-up included)
    first_block_photos: int = 0

    @property
    def photos_per_s(self) -> float:
        return self.counted / self.seconds if self.seconds > 0 else 0.0

    @property
    def steady_photos_per_s(self) -> float:
        """Photos/s after the first block was in: the pipeline's rate without the actors' start-up."""
        seconds = self.seconds - self.first_block_seconds
        photos = self.counted - self.first_block_photos
        return photos / seconds if seconds > 0 and photos > 0 else self.photos_per_s

    def line(self) -> str:
        """The one-line summary printed last."""
        state = "interrupted: " if self.interrupted else ""
        return (
            f"{state}{self.counted} photo(s) counted on {self.actors} {self.accelerator} actor(s) in "
            f"{self.seconds:.1f} s ({self.photos_per_s:.2f} photos/s), {self.already} earlier, "
            f"{len(self.errors)} error(s); {self.photos} photo(s), {int(self.animals.sum())} animal(s) in the outputs"
        )


def count_collection(
    photos: Sequence[Path],
    out: Path,
    model_uri: str,
    *,
    cluster: str = "ray",
    backend: str = "auto",
    device: str = "auto",
    options: dict[str, Any] | None = None,
    masks: Path | None = None,
    annotate: bool = False,
    photos_per_batch: int | None = None,
    actors: int | None = None,
    track: bool = True,
    progress: bool = True,
    experiment: str = DEFAULT_EXPERIMENT,
) -> RunSummary:
    """Count `photos` on Ray (`cluster`: "ray" = an in-process local Ray, or the cluster in RAY_ADDRESS;
    "auto" = the cluster this machine belongs to; "ray://HOST:PORT" or "HOST:PORT" = that cluster).

    `options` are PredictOptions fields (tile, overlap, imgsz, conf, iou, batch, merge; None = the model's).
    Photos whose key is in `out` already are skipped; `actors` caps the model actors (default: one per GPU,
    else one per CPU). With `track`, a summary run goes to MLflow with counts.csv as an artifact.
    """
    from rookery.config import get_settings
    from rookery.imaging import find_image
    from rookery.logs import console
    from rookery.packaging.models import load_predictor
    from rookery.scale.store import PartStore

    ray = _import_ray()
    if not photos:
        raise InputError("no photos to count")
    if masks is not None and not masks.is_dir():
        raise InputError(f"the masks folder {masks} does not exist")
    if photos_per_batch is not None and photos_per_batch < 1:
        raise ConfigError(f"photos_per_batch must be at least 1, got {photos_per_batch}")
    given = {k: v for k, v in (options or {}).items() if v is not None}
    settings = get_settings()
    # Resolve the URI once here (alias -> version, sha256 checked) and validate the options on a CPU copy:
    # a bad option or model fails now, not on every actor of the cluster.
    predictor, info = load_predictor(model_uri, backend=backend, device="cpu", **given)
    names = predictor.class_names
    del predictor
    model_label = _pinned(info)
    files, weights = _model_files(info)
    store = PartStore(out, names)
    paths = [str(Path(p).resolve()) for p in photos]
    mask_of = {p: str(find_image(masks, Path(p).stem) or "") if masks else "" for p in paths}

    started_ray = _connect(ray, cluster)
    try:
        done = frozenset(store.done_keys())
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0)) if device != "cpu" else 0
        wanted = actors or _env_int("ROOKERY_SCALE_ACTORS") or gpus or int(resources.get("CPU", 1))
        n_actors = max(1, min(wanted, gpus or wanted))
        # Photos per actor call: larger batches keep a GPU's tile batches full; each is also what a crash can lose.
        per_batch = photos_per_batch or _env_int("ROOKERY_SCALE_PHOTOS_PER_BATCH") or (16 if gpus else 4)
        console.print(
            f"model {model_label}: {len(paths)} photo(s), {len(done)} counted earlier in {out}; "
            f"{n_actors} {'GPU' if gpus else 'CPU'} actor(s), {per_batch} photo(s) per batch",
            highlight=False,
        )
        ds = _pipeline(
            ray,
            paths,
            mask_of,
            done,
            files,
            weights,
            backend,
            device,
            given,
            model_label,
            annotate,
            gpus > 0,
            n_actors,
            per_batch,
        )
        summary = RunSummary(names, 0, 0, 0, np.zeros(len(names), np.int64), np.zeros(len(names), np.int64))
        summary.model, summary.actors, summary.accelerator = model_label, n_actors, "GPU" if gpus else "CPU"
        started = time.perf_counter()
        try:
            _drain(ds, store, summary, len(paths), progress)
        except KeyboardInterrupt:
            summary.interrupted = True  # committed parts are kept; a rerun counts the rest
        summary.seconds = time.perf_counter() - started
    finally:
        if started_ray:
            ray.shutdown()
    result = store.consolidate({p: i for i, p in enumerate(paths)}, model_uri=info.uri)
    summary.photos, summary.animals = result.photos, result.animals
    summary.already = result.photos - summary.counted
    if track and summary.counted:
        summary.mlflow_run_id = _log_run(settings, experiment, out, summary, info.uri, cluster, given)
    return summary


def _pipeline(
    ray: Any,
    paths: list[str],
    mask_of: dict[str, str],
    done: frozenset[str],
    files: dict[str, bytes],
    weights: str,
    backend: str,
    device: str,
    options: dict[str, Any],
    model_label: str,
    annotate: bool,
    on_gpu: bool,
    n_actors: int,
    per_batch: int,
) -> Any:
    from rookery.scale.counter import PhotoCounter, read_photos

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # one bar of photos (Rich) instead of Ray's per-operator bars
    ctx.verbose_progress = False
    items = [{"path": p, "mask": mask_of[p]} for p in paths]
    blocks = max(1, min(len(items), 200, -(-len(items) // per_batch)))
    ds = ray.data.from_items(items, override_num_blocks=blocks)
    # Reading waits on storage, not on the CPU (hashing runs at ~1 GB/s): 0 CPUs, so it never waits for
    # the cores that the model actors hold; its concurrency is capped instead.
    ds = ds.map_batches(
        read_photos, fn_kwargs={"done": done}, batch_size=per_batch, num_cpus=0, compute=ray.data.TaskPoolStrategy(4)
    )
    model = ray.put(files)  # once in the object store; every actor fetches it from there
    actor_resources: dict[str, Any] = {"num_gpus": 1, "num_cpus": 1} if on_gpu else {"num_cpus": 1}
    return ds.map_batches(
        PhotoCounter,
        fn_constructor_kwargs={
            "files": model,
            "weights": weights,
            "backend": backend,
            "device": device if on_gpu or device == "cpu" else "cpu",
            "options": options,
            "model": model_label,
            "annotate": annotate,
        },
        batch_size=per_batch,
        # n actors from the start, but a pool that may shrink to 1 keeps going when a node dies.
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=n_actors, initial_size=n_actors),
        batch_format="numpy",
        **actor_resources,
    )


def _drain(ds: Any, store: Any, summary: RunSummary, total: int, progress: bool) -> None:
    """Commit each result block as it arrives; progress on the console."""
    from rookery.logs import console, progress_bar

    started = time.perf_counter()
    bar = progress_bar() if progress and console.is_terminal else None
    task = bar.add_task("counting photos", total=total) if bar else None
    if bar:
        bar.start()
    next_line, seen = 0.1, 0
    try:
        for block in ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=1):
            counted, failed = store.write_part(block)
            summary.counted += counted
            summary.animals_now += _animals(block, len(summary.class_names))
            summary.errors += _errors(block)
            seen += counted + failed
            if not summary.first_block_photos:
                summary.first_block_seconds, summary.first_block_photos = time.perf_counter() - started, seen
            if bar is not None and task is not None:
                bar.update(task, completed=seen)
            elif progress and seen >= next_line * total:  # logs and CI: a line per tenth
                console.print(f"{seen} photo(s) done ({summary.counted} counted)", highlight=False)
                next_line += 0.1
    finally:
        if bar:
            bar.stop()


def _animals(block: Any, nc: int) -> np.ndarray:
    errors = block.column("error").to_pylist()
    cls = [c for c, e in zip(block.column("det_cls").to_pylist(), errors, strict=True) if not e]
    flat = np.fromiter((v for row in cls for v in row), dtype=np.int64)
    return np.bincount(flat, minlength=nc)[:nc]


def _errors(block: Any) -> list[Skipped]:
    rows = zip(block.column("path").to_pylist(), block.column("error").to_pylist(), strict=True)
    return [Skipped(Path(p).name, e) for p, e in rows if e]


def _env_int(name: str) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return 0
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{name} must be a whole number of at least 1, got {value!r}")
    return int(value)


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise ConfigError("counting on a cluster needs Ray: pip install 'rookery[ray]'") from e
    return ray


def _connect(ray: Any, cluster: str) -> bool:
    """Join or start Ray; True when this call started it (and so shuts it down)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # offline: Ray would otherwise report usage
    if ray.is_initialized():
        return False
    if cluster == "ray":
        address = os.environ.get("RAY_ADDRESS") or None  # embedded default: a local Ray in this process
    elif cluster == "auto" or cluster.startswith("ray://") or ":" in cluster:
        address = cluster
    else:
        raise ConfigError(f"--cluster {cluster!r} is not one of: ray (local), auto, ray://HOST:PORT, HOST:PORT")
    try:
        ray.init(address=address, include_dashboard=False, configure_logging=False, log_to_driver=False)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise ConfigError(f"could not reach the Ray cluster at {cluster} ({e})") from e
    return True


def _pinned(info: Any) -> str:
    """The exact model every photo of this run is counted with (recorded per photo)."""
    if info.name and info.version:
        return f"models:/{info.name}/{info.version}"
    if info.run_id:
        return cast(str, info.uri)
    digest = hashlib.sha256(info.weights.read_bytes()).hexdigest()[:16]
    return f"{info.weights.name} sha256:{digest}"


def _model_files(info: Any) -> tuple[dict[str, bytes], str]:
    """The model as files the actors rebuild it from (weights, ONNX twin, rookery_model.json); the
    weights' name in that folder."""
    from rookery.inference.loading import META_FILE

    weights = "model" + info.weights.suffix.lower()
    files = {weights: info.weights.read_bytes()}
    if info.onnx is not None:
        files["model.onnx"] = info.onnx.read_bytes()
    if info.meta:
        files[META_FILE] = json.dumps(info.meta).encode()
    return files, weights


def _log_run(
    settings: Any, experiment: str, out: Path, summary: RunSummary, uri: str, cluster: str, options: dict[str, Any]
) -> str | None:
    """A summary run in MLflow (guarded: a tracking store that is down costs a warning, never the counts)."""
    from rookery.packaging.runs import RunTracker

    with RunTracker(
        settings.tracking_uri,
        settings.artifact_root,
        experiment,
        run_name=f"count {summary.counted} photos",
        system_metrics=False,
    ) as tracker:
        tracker.log_params(
            {
                "model_uri": uri,
                "model_version": summary.model,
                "cluster": cluster,
                "actors": summary.actors,
                "accelerator": summary.accelerator,
                "out": str(Path(out).resolve()),
                **options,
            }
        )
        tracker.log_metrics(
            {
                "photos": summary.counted,
                "photos_in_outputs": summary.photos,
                "photos_earlier": summary.already,
                "animals": float(summary.animals_now.sum()),
                "photos_per_s": summary.photos_per_s,
                "errors": len(summary.errors),
                "seconds": summary.seconds,
            }
        )
        tracker.set_tags({"rookery.kind": "batch-count", "rookery.model": summary.model})
        for name in ("counts.csv", "counts.parquet", "errors.csv"):
            tracker.log_artifact(Path(out) / name, "counts")
        return tracker.run_id
