"""The demo: a synthetic survey -> dots -> a tiled data set -> a CPU training -> evaluation -> champion.

    result = run_demo(DemoParams(), settings, on_step=print)   # under <home>/demo; reuses what exists

Each step leaves its result on disk or in the tracking store, and a re-run skips the steps whose result
exists for the same inputs: the survey and the data set carry a stamp of the parameters they were made
with, and the trained model version carries a tag (`rookery.demo.key`) made of the data set's fingerprint
and the training parameters. `retrain` trains again on the existing data set; `rebuild` starts over.

The recipe (DemoParams' defaults) is sized for a laptop: on 2 CPU cores the training takes about four
minutes and the whole demo under five, and the model learns the three classes (validation mAP50 ~0.85,
counts per test photo within one or two animals of the truth).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rookery.config import Settings, get_settings
from rookery.errors import RookeryError

KEY_TAG = "rookery.demo.key"  # on the run and the model version: which data set and recipe made it
STAMP = "demo.json"  # in the survey and data set folders: the parameters they were made with
EXPERIMENT = "rookery-demo"
DEMO_USE = (
    "A demonstration only: trained on synthetic animals (coloured ellipses on generated terrain), it does not "
    "count real animals and finds few or none on a real photo. Train on your own annotated photos for that "
    "(README: 'From dotted photos to a data set' and 'The counting recipe')."
)


@dataclass(frozen=True)
class DemoParams:
    """The recipe (the README's demo section has the measurements behind it).

    14 photos of 1600x1200 with three classes that differ in size and colour (adult males: large, dark brown;
    adult females: medium, tan; pups: small, near-black), 8/3/3 photos for train/val/test, tiled at 256 px
    and trained at 256 px (no resize), yolov8n from scratch for 4 minutes (~30 epochs on 2 cores) on every core:
    AdamW at 0.003 with one optimizer step per batch of 8 (Ultralytics' nominal batch of 64 would accumulate 8 batches:
    two steps an epoch on ~135 tiles), a classification gain of 3 and boxes of at least 26 px, so that the
    class scores clear the counting threshold (0.25) after a short training, pups included.
    """

    root: Path | None = None  # default: <home>/demo
    images: int = 14
    size: tuple[int, int] = (1600, 1200)
    classes: int = 3
    object_scale: float = 1.0  # animals at the size of a full-resolution survey photo (pups 14-22 px long)
    # Boxes of at least this side (px): the pups' 18 px box of the generator makes their class scores low (Ultralytics'
    # targets follow the box IoU, which a few pixels of error ruins on a small box), so they fall under conf 0.25.
    min_box: float = 26.0
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)  # 8 / 3 / 3 photos: three test photos to count on
    seed: int = 0
    tile: int = 256
    overlap: int = 32
    # Training is bounded by wall time (Ultralytics' `time`: after the first epoch it fits the number of epochs to
    # the budget), so a busy or slow laptop still shows the page within minutes; `epochs` instead fixes the
    # number of epochs and ignores the budget (what tests want: a repeatable training).
    time: float = 240.0  # seconds of training
    epochs: int | None = None
    batch: int = 8
    lr0: float = 0.003
    cls: float = 3.0  # classification loss gain: confident class scores after a short training (see TrainParams)
    scale: float = 0.2  # scale augmentation +-20 % (Ultralytics: +-50 %, which shrinks pups below 10 px)
    optimizer: str = "AdamW"
    model: str = "yolov8n.yaml"
    device: str = "cpu"
    workers: int | None = None  # processes for the survey, dots and tiling; None = one per core
    retrain: bool = False
    rebuild: bool = False

    def survey_stamp(self) -> dict[str, Any]:
        return {"images": self.images, "size": list(self.size), "classes": self.classes,
                "object_scale": self.object_scale, "min_box": self.min_box, "seed": self.seed}  # fmt: skip

    def dataset_stamp(self) -> dict[str, Any]:
        return {**self.survey_stamp(), "split": list(self.split), "tile": self.tile, "overlap": self.overlap}

    def train_recipe(self) -> dict[str, Any]:
        budget = {"epochs": self.epochs} if self.epochs is not None else {"time": self.time}
        return {"model": self.model, **budget, "batch": self.batch, "lr0": self.lr0,
                "optimizer": self.optimizer, "cls": self.cls, "scale": self.scale, "imgsz": self.tile,
                "seed": self.seed}  # fmt: skip


@dataclass
class DemoResult:
    root: Path
    survey: Path
    dataset: Path
    model_name: str
    version: str
    run_id: str | None
    trained: bool  # False: an earlier demo's model was reused
    evaluated: bool  # False: its earlier evaluation was reused
    promotion: str  # the registry's decision, in words
    champion: bool  # the version holds the champion alias now
    counting: dict[str, Any]  # metrics.json's "counting": per class true/predicted/mae/rmse, competition_rmse
    detection: dict[str, Any] | None  # the box mAP on the test tiles (metrics.json's "detection")
    validation: dict[str, float]  # the training's validation of its best epoch: mAP50, mAP50-95
    evaluation_dir: Path
    test_photos: list[Path]  # the photos the model never saw: upload one to the web page
    seconds: dict[str, float] = field(default_factory=dict)  # per step that ran
    notes: list[str] = field(default_factory=list)  # warnings worth showing (skipped photos, tracking gaps)


Step = Callable[[str], None]


def run_demo(
    params: DemoParams | None = None, settings: Settings | None = None, on_step: Step | None = None
) -> DemoResult:
    """Run (or resume) the whole demo; `on_step` is called with a heading before each step that runs."""
    params = params or DemoParams()
    settings = settings or get_settings()
    step = on_step or (lambda _title: None)
    root = (params.root or settings.home / "demo").resolve()
    survey, dataset = root / "survey", root / "dataset"
    if params.rebuild and root.exists():
        shutil.rmtree(root)
    seconds: dict[str, float] = {}
    notes: list[str] = []

    with _timed(seconds, "survey"):
        if _stamp(survey) != params.survey_stamp():
            step("1. A synthetic survey")
            _make_survey(survey, dataset, params)
    with _timed(seconds, "dots"):
        found = survey / "found_points.csv"
        if not found.is_file():
            step("2. Dots -> points (pair mode: clean photo vs painted twin)")
            notes += _find_dots(survey, found, params)
    with _timed(seconds, "build"):
        if _stamp(dataset) != params.dataset_stamp() or not (dataset / "manifest.json").is_file():
            step("3. Points -> boxes -> tiles -> data set")
            _build(survey, found, dataset, params)

    from rookery.data.manifest import Manifest

    manifest = Manifest.load(dataset)
    fingerprint = manifest.fingerprint
    test_photos = [survey / "train" / p.file for p in manifest.photos if p.split == "test"]
    key = _key(fingerprint, params)
    version = None if params.retrain else _find_version(settings, key)
    trained = version is None
    if version is None:
        budget = f"{params.epochs} epochs" if params.epochs is not None else f"{params.time / 60:.3g} min budget"
        step(f"4. Training {params.model} on the CPU ({budget}, {params.tile} px)")
        with _timed(seconds, "train"):
            version, problems = _train(dataset, key, params, settings)
        notes += [f"not recorded in MLflow: {p}" for p in problems]
    run_id = _run_id(settings, version)

    eval_dir = root / "evaluation" / f"v{version}"
    payload = _read_json(eval_dir / "metrics.json")
    evaluated = payload is None or not _has_eval(settings, run_id)
    if evaluated:
        step("5. Evaluation: counts on the test photos, box mAP on their tiles")
        with _timed(seconds, "evaluate"):
            payload, eval_notes = _evaluate(settings, version, dataset, eval_dir)
        notes += eval_notes
    assert payload is not None

    from rookery.packaging import registry

    with _timed(seconds, "promote"):
        current = registry.get_version(settings.tracking_uri, settings.model_name, version)
        if registry.CHAMPION in current.aliases:
            promotion, champion = f"version {version} is the champion", True
        else:
            step("6. Registry: promote to champion")
            decision = registry.promote(settings.tracking_uri, settings.model_name, version)
            promotion, champion = decision.reason, decision.alias == registry.CHAMPION

    return DemoResult(
        root=root,
        survey=survey,
        dataset=dataset,
        model_name=settings.model_name,
        version=version,
        run_id=run_id,
        trained=trained,
        evaluated=evaluated,
        promotion=promotion,
        champion=champion,
        counting=payload["counting"],
        detection=payload.get("detection"),
        validation=_validation(settings, run_id),
        evaluation_dir=eval_dir,
        test_photos=test_photos,
        seconds=seconds,
        notes=notes,
    )


class _timed:
    """Adds the seconds a block took to seconds[name] (only when the block did something worth timing)."""

    def __init__(self, seconds: dict[str, float], name: str) -> None:
        self.seconds, self.name = seconds, name

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        elapsed = time.perf_counter() - self.start
        if elapsed >= 0.05:
            self.seconds[self.name] = self.seconds.get(self.name, 0.0) + elapsed


# --- data --------------------------------------------------------------------------------------------


def _stamp(folder: Path) -> dict[str, Any] | None:
    return _read_json(folder / STAMP)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_stamp(folder: Path, stamp: dict[str, Any]) -> None:
    (folder / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")


def _make_survey(survey: Path, dataset: Path, params: DemoParams) -> None:
    from rookery.data.classes import Classes
    from rookery.data.synthetic import generate_survey

    # Another survey invalidates everything made from it.
    for folder in (survey, dataset):
        shutil.rmtree(folder, ignore_errors=True)
    generate_survey(
        survey, images=params.images, size=params.size, num_classes=params.classes, seed=params.seed,
        object_scale=params.object_scale, workers=params.workers,
    )  # fmt: skip
    path = survey / "classes.yaml"
    classes = Classes.load(path)
    classes.with_boxes(max(box or 0.0, params.min_box) for box in (s.box for s in classes)).save(path)
    _write_stamp(survey, params.survey_stamp())


def _find_dots(survey: Path, found: Path, params: DemoParams) -> list[str]:
    from rookery.data.classes import Classes
    from rookery.data.dots import find_dots
    from rookery.data.points_csv import write_points_csv

    classes = Classes.load(survey / "classes.yaml")
    report = find_dots(
        survey / "dotted", classes, images_dir=survey / "train", masks_out=survey / "found_masks",
        workers=params.workers,
    )  # fmt: skip
    write_points_csv(found, report.labels, classes)
    return [f"dots: skipped {s}" for s in report.skipped]


def _build(survey: Path, found: Path, dataset: Path, params: DemoParams) -> None:
    from rookery.data.classes import Classes
    from rookery.data.dataset import build_dataset
    from rookery.data.photo_tiles import BuildParams

    shutil.rmtree(dataset, ignore_errors=True)
    build = BuildParams(split=params.split, seed=params.seed, tile=params.tile, overlap=params.overlap)
    classes = Classes.load(survey / "classes.yaml")
    build_dataset(
        found, survey / "train", classes, dataset, masks=survey / "found_masks", params=build, workers=params.workers
    )
    _write_stamp(dataset, params.dataset_stamp())


# --- model -------------------------------------------------------------------------------------------


def _key(fingerprint: str, params: DemoParams) -> str:
    recipe = json.dumps(params.train_recipe(), sort_keys=True)
    return hashlib.sha256(f"{fingerprint}\0{recipe}".encode()).hexdigest()[:16]


def _find_version(settings: Settings, key: str) -> str | None:
    """The newest registered version an earlier demo trained with this data set and recipe."""
    from rookery.packaging import registry

    try:
        versions = registry.list_versions(settings.tracking_uri, settings.model_name)
    except RookeryError:
        return None  # no store or no registered model yet: train
    mine = [v for v in versions if v.tags.get(KEY_TAG) == key]
    return mine[-1].version if mine else None


def _train(dataset: Path, key: str, params: DemoParams, settings: Settings) -> tuple[str, list[str]]:
    from rookery.offline import ensure_offline
    from rookery.packaging import registry
    from rookery.training.trainer import TrainParams, train

    train_params = TrainParams(
        data=dataset,
        model=params.model,
        epochs=params.epochs or 1000,  # a cap only: with a time budget Ultralytics fits the epochs to it
        time=None if params.epochs is not None else params.time,
        imgsz=params.tile,
        batch=params.batch,
        nbs=params.batch,
        device=params.device,
        experiment=EXPERIMENT,
        seed=params.seed,
        optimizer=params.optimizer,
        lr0=params.lr0,
        cls=params.cls,
        scale=params.scale,
        name=f"demo-{time.strftime('%Y%m%d-%H%M%S')}",
        intended_use=DEMO_USE,
    )
    ensure_offline(settings)  # before Ultralytics is imported (its settings file, no downloads)
    result = train(train_params, settings)  # on the CPU with every core (trainer._all_cores)
    if result.model_version is None or result.run_id is None:
        reasons = "; ".join(dict.fromkeys(result.problems)) or "no registered version"
        raise RookeryError(
            f"the demo's model was trained ({result.best}) but not registered in {settings.tracking_uri}: {reasons}"
        )
    registry.tag(settings.tracking_uri, settings.model_name, result.model_version, result.run_id, KEY_TAG, key)
    return result.model_version, result.problems


def _run_id(settings: Settings, version: str) -> str | None:
    from rookery.packaging import registry

    return registry.get_version(settings.tracking_uri, settings.model_name, version).run_id


def _run_metrics(settings: Settings, run_id: str | None) -> dict[str, float]:
    from rookery.packaging import registry

    return registry.run_metrics(settings.tracking_uri, run_id)


def _has_eval(settings: Settings, run_id: str | None) -> bool:
    return "eval/competition_rmse" in _run_metrics(settings, run_id)


def _validation(settings: Settings, run_id: str | None) -> dict[str, float]:
    metrics = _run_metrics(settings, run_id)
    return {k.removeprefix("best/"): v for k, v in metrics.items() if k in ("best/mAP50", "best/mAP50-95")}


def _evaluate(settings: Settings, version: str, dataset: Path, out: Path) -> tuple[dict[str, Any], list[str]]:
    """Count the test photos with the registered model (as the service will load it) and log into its run."""
    from rookery.evaluation import evaluate, from_dataset, scaled_options
    from rookery.packaging.models import load_predictor

    manifest, evalset = from_dataset(dataset, "test")
    uri = f"models:/{settings.model_name}/{version}"
    predictor, info = load_predictor(uri, device="cpu", tracking_uri=settings.tracking_uri)
    predictor.options = scaled_options(predictor.options, evalset.scale)
    data_info = {"dataset": str(dataset), "fingerprint": manifest.fingerprint, "name": dataset.name}
    ev = evaluate(
        predictor, info, evalset, out, dataset=dataset, split="test", map_device="cpu",
        tracking_uri=settings.tracking_uri, data_info=data_info,
    )  # fmt: skip
    notes = [f"evaluation: skipped {s.item}: {s.reason}" for s in ev.counting.skipped]
    notes += [f"evaluation not logged into run {ev.run_id}: {p}" for p in ev.log_problems]
    if ev.detection is None and ev.detection_note:
        notes.append(f"no box mAP: {ev.detection_note}")
    return ev.payload, notes


def to_dict(result: DemoResult) -> dict[str, Any]:
    """The result as JSON-ready data (paths as strings)."""

    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    return {k: plain(v) for k, v in asdict(result).items()}
