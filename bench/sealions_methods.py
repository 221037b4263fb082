"""One fold and method of bench/sealions.py: build the data set, train within the budget, count the held-out photos.

Returns a JSON-able dict: per held-out photo its true and predicted counts per class and the interval, and
what the training did.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FRAME_PX = 4992
HEATMAP = {"resolution": 0.5, "tile": 384, "overlap": 96}
WHOLE_IMGSZ = 1408
THRESHOLDS = np.round(np.arange(0.05, 0.601, 0.05), 2)


def run_method(spec: dict[str, Any]) -> dict[str, Any]:
    from rookery.offline import ensure_offline

    ensure_offline()
    from rookery.data.classes import Classes
    from rookery.data.dataset import BuildParams, build_dataset

    classes = Classes.load(ROOT / "examples" / "sealions" / "classes.yaml")
    src, test, out = Path(spec["src"]), Path(spec["test"]), Path(spec["out"])
    method = spec["method"]
    if method == "whole photo":
        geometry = {"resolution": WHOLE_IMGSZ / FRAME_PX, "tile": WHOLE_IMGSZ, "overlap": 0}
    else:
        geometry = HEATMAP
    params = BuildParams(split=(1.0, 0.0, 0.0), frame_px=FRAME_PX, empty_fraction=1.0, **geometry)  # type: ignore[arg-type]
    dataset = out / "dataset"
    t0 = time.perf_counter()
    build_dataset(src / "points.csv", src / "train", classes, dataset, masks=src / "masks", params=params)
    device = "cpu" if spec["device"] == "cpu" else f"cuda:{spec['device']}"
    if method == "heatmap":
        predictor, info = _heatmap(dataset, spec["seconds"], device)
    else:
        predictor, info = _yolo(dataset, out, spec, device, batch=8 if method == "whole photo" else 32)
        info["conf"] = _threshold_on_training(predictor, src, classes)
        predictor.options = predictor.options.with_overrides(conf=info["conf"])
    info["seconds"] = time.perf_counter() - t0
    info["photos"] = _count(predictor, test, classes)
    return info


def _heatmap(dataset: Path, seconds: float, device: str) -> tuple[Any, dict[str, Any]]:
    from rookery.inference.backends import TorchBackend
    from rookery.inference.options import PredictOptions
    from rookery.inference.predictor import Predictor
    from rookery.training.heatmap import HeatmapParams
    from rookery.training.recipe import RecipeParams, fit_heatmap_recipe

    r = fit_heatmap_recipe(dataset, RecipeParams(seconds=seconds, heatmap=HeatmapParams(device=device)))
    c = r.canonical
    options = PredictOptions(tile=c.tile, overlap=c.overlap, imgsz=c.tile, conf=0.5, batch=16)
    predictor = Predictor(TorchBackend(r.model, list(r.model.names.values()), device), options, False, r.calibration, c)
    from rookery.inference.calibration import coverage

    info = {
        "calibration": r.calibration.to_dict(),
        "steps": int(getattr(r.model, "train_steps", 0)),
        "inner_coverage": coverage([h for _, h in r.held_out], r.calibration) if r.held_out else None,
    }
    return predictor, info


def _yolo(dataset: Path, out: Path, spec: dict[str, Any], device: str, batch: int) -> tuple[Any, dict[str, Any]]:
    """yolov8n from scratch on the tiles (the previous bench's recipe), counted at the data set's resolution."""
    import yaml

    from rookery.inference.backends import open_backend
    from rookery.inference.options import PredictOptions
    from rookery.inference.predictor import Predictor
    from rookery.training.recipe import canonical_of

    spec_yaml = dataset / "data.yaml"
    d = yaml.safe_load(spec_yaml.read_text())
    d["val"] = d["train"]  # no photo to spare for validation
    d.pop("test", None)
    spec_yaml.write_text(yaml.safe_dump(d, sort_keys=False))
    _repeat_small(dataset, 128)
    c = canonical_of(dataset)
    from ultralytics import YOLO
    from ultralytics import settings as yolo_settings

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from rookery.training.augment import add_transpose
    from sliced_inference import without_polars

    without_polars()
    yolo_settings.update({"mlflow": False, "sync": False})
    model = YOLO("yolov8n.yaml")
    model.add_callback("on_pretrain_routine_end", add_transpose)
    model.train(
        data=str(spec_yaml), imgsz=c.tile, batch=batch, nbs=batch, device=spec["device"], workers=2,
        project=str(out), name="train", exist_ok=True, verbose=False, plots=False, val=False, seed=0,
        optimizer="AdamW", lr0=0.003, fliplr=0.5, flipud=0.5, max_det=3000, patience=0, amp=False,
        epochs=1000, time=spec["seconds"] / 3600,
    )  # fmt: skip
    weights = out / "train" / "weights"
    pt = next(p for p in (weights / "last.pt", weights / "best.pt") if p.is_file())
    backend = open_backend(pt, "torch", device)
    options = PredictOptions(tile=c.tile, overlap=c.overlap, imgsz=c.tile, conf=0.05, batch=16)
    results = out / "train" / "results.csv"
    epochs = max(0, len(results.read_text().splitlines()) - 1) if results.is_file() else 0
    return Predictor(backend, options, False, None, c), {"epochs": epochs}


def _repeat_small(dataset: Path, min_images: int) -> None:
    """Link copies of the training tiles until there are at least `min_images` (whole photos: an epoch of 9
    images is one optimizer step, and Ultralytics' per-epoch overhead would eat the budget)."""
    images, labels = dataset / "images" / "train", dataset / "labels" / "train"
    originals = sorted(p for p in images.iterdir() if p.is_file())
    for k in range(1, -(-min_images // max(1, len(originals)))):
        for image in originals:
            (images / f"{image.stem}_r{k}{image.suffix}").symlink_to(image.resolve())
            label = labels / f"{image.stem}.txt"
            if label.is_file():
                (labels / f"{image.stem}_r{k}.txt").symlink_to(label.resolve())


def _truth(folder: Path, classes: Any) -> list[Any]:
    from rookery.evaluation.truth import from_points

    return list(from_points(folder / "points.csv", folder / "train", classes, masks=folder / "masks").photos)


def _threshold_on_training(predictor: Any, src: Path, classes: Any) -> float:
    """The threshold that counts best on the model's own training photos (the previous bench's rule)."""
    from rookery.evaluation.counting import competition_rmse

    seen = _truth(src, classes)
    boxes = predictor.predict_many([p.image for p in seen], [p.mask for p in seen])
    nc = len(classes)
    counts = np.array([[np.bincount(b.cls[b.score >= t], minlength=nc)[:nc] for t in THRESHOLDS] for b in boxes])
    true = np.array([p.truth for p in seen])
    scores = [competition_rmse(true, counts[:, k]) for k in range(len(THRESHOLDS))]
    return float(THRESHOLDS[int(np.argmin(scores))])


def _count(predictor: Any, test: Path, classes: Any) -> list[dict[str, Any]]:
    photos = _truth(test, classes)
    boxes = predictor.predict_many([p.image for p in photos], [p.mask for p in photos])
    out = []
    for p, b in zip(photos, boxes, strict=True):
        counts = predictor.counts(b)
        iv = predictor.count_intervals(counts)
        out.append({"name": p.name, "true": [int(v) for v in p.truth], "pred": counts.tolist(),
                    "lo": iv[:, 0].tolist(), "hi": iv[:, 1].tolist()})  # fmt: skip
    return out
