"""The heatmap counting recipe: cross-fitted calibration, then one model trained on every photo.

    result = fit_heatmap_recipe(dataset, RecipeParams(seconds=600, device="cuda:0"))
    result.model, result.calibration, result.held_out

1. The data set's photos (train and val splits) are split into `folds` groups by photo.
2. For each group, a model is trained on the other groups' tiles and counts the group's photos whole (the
   sliced engine, at the model's resolution, inside their masks): every photo is counted once by a model
   that never saw it. Those held-out counts fit the calibration (rookery.inference.calibration): per-class
   thresholds and the interval's error model.
3. The final model trains on all photos with the same budget per model, so it is at least as good as the
   fold models the calibration describes (its intervals are, if anything, a little wide).
The time budget (`seconds`) is shared equally by the folds + 1 trainings.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from rookery.errors import InputError
from rookery.inference.calibration import UNCALIBRATED_CONF, CountCalibration, HeldOut, fit_calibration
from rookery.inference.canonical import Canonical
from rookery.training.heatmap import HeatmapParams, load_tiles, train_heatmap
from rookery.types import Boxes

log = logging.getLogger(__name__)

PREDICT_CONF = 0.05  # held-out photos are counted at this score; thresholds are chosen above it


@dataclass(frozen=True)
class RecipeParams:
    seconds: float = 600.0  # whole budget: folds + 1 trainings
    folds: int = 3  # 0 or 1: no calibration (the uncalibrated default interval, threshold 0.5)
    heatmap: HeatmapParams = field(default_factory=HeatmapParams)
    level: float = 0.9


@dataclass
class RecipeResult:
    model: Any
    calibration: CountCalibration
    canonical: Canonical
    held_out: list[tuple[str, HeldOut]]  # (photo, its held-out counts) from the fold models


def canonical_of(dataset: Path) -> Canonical:
    """The data set's resolution, frame and tile geometry (a data set built without --resolution counts each
    photo at its own scale times --scale: taken as a resolution of `scale` on a frame of its longest photo)."""
    from rookery.data.manifest import Manifest

    m = Manifest.load(dataset)
    p = m.params
    resolution = float(p.get("resolution") or p.get("scale") or 1.0)
    frame = int(p.get("frame_px") or max((max(ph.width, ph.height) for ph in m.photos), default=1))
    sizes = [b.size for b in m.box_sizes.values()]
    return Canonical(resolution, frame, float(np.median(sizes)) if sizes else 32.0, int(p["tile"]), int(p["overlap"]))


def fold_of(photos: list[str], folds: int, seed: int = 0) -> dict[str, int]:
    """Photos to folds: a seeded hash order dealt round-robin (the same on every machine)."""
    order = sorted(photos, key=lambda n: hashlib.sha256(f"{seed}\0{n}".encode()).hexdigest())
    return {name: k % folds for k, name in enumerate(order)}


def held_out_counts(
    model: Any, dataset: Path, photos: list[str], canonical: Canonical, device: str, images: Path | None = None
) -> list[tuple[str, HeldOut]]:
    """Count these photos of the data set whole (from its source folder) with an in-memory model."""
    from rookery.data.manifest import Manifest
    from rookery.inference.backends import TorchBackend
    from rookery.inference.options import PredictOptions
    from rookery.inference.predictor import Predictor

    m = Manifest.load(dataset)
    src = Path(images or m.images_dir or "")
    masks = Path(m.masks_dir) if m.masks_dir else None
    entries = [p for p in m.photos if p.image in set(photos)]
    backend = TorchBackend(model, list(m.classes), device)
    options = PredictOptions(tile=canonical.tile, overlap=canonical.overlap, imgsz=canonical.tile, conf=PREDICT_CONF)
    predictor = Predictor(backend, options, canonical=canonical, gpu_engine=False)
    files = [src / e.file for e in entries]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise InputError(
            f"{missing[0]} is gone: the calibration counts the data set's source photos whole; rebuild the data "
            "set where its photos are, or train with --calibration-folds 0 (no calibration)"
        )
    mask_files = [None if masks is None or e.mask is None else masks / e.mask for e in entries]
    results = predictor.predict_many(files, mask_files)
    out = []
    for e, boxes in zip(entries, results, strict=True):
        if not isinstance(boxes, Boxes):
            log.warning("calibration: %s skipped (%s)", e.image, boxes)
            continue
        true = np.array([e.counts_in_mask[c] for c in m.classes], dtype=np.int64)
        out.append((e.image, HeldOut(true, boxes.cls.copy(), np.asarray(boxes.score, dtype=np.float64))))
    return out


def fit_heatmap_recipe(
    dataset: Path,
    params: RecipeParams,
    on_log: Callable[[str, int, dict[str, float]], None] | None = None,
    images: Path | None = None,
    init: dict[str, Any] | None = None,
) -> RecipeResult:
    """Cross-fitted calibration and the final model (see the module docstring); `init` starts every model
    from these weights (training/heatmap.py)."""
    from rookery.data.manifest import Manifest

    m = Manifest.load(dataset)
    names = list(m.classes)
    box_sizes = [m.box_sizes[c].size for c in names]
    canonical = canonical_of(dataset)
    photos = [p.image for p in m.photos if p.split in ("train", "val")]
    if not photos:
        raise InputError(f"the data set {dataset} has no train or val photos")
    folds = params.folds if params.folds >= 2 and len(photos) >= params.folds else 0
    per_model = params.seconds / (folds + 1)
    hp = replace(params.heatmap, seconds=per_model)
    held: list[tuple[str, HeldOut]] = []
    assignment = fold_of(photos, folds, hp.seed) if folds else {}
    for k in range(folds):
        inside = {p for p in photos if assignment[p] != k}
        tiles = load_tiles(dataset, ("train", "val"), inside)
        log.info("calibration fold %d/%d: %d photos, %d tiles", k + 1, folds, len(inside), len(tiles))
        fold_params = replace(hp, seed=hp.seed + 1 + k)
        model = train_heatmap(tiles, names, box_sizes, fold_params, _tagged(on_log, f"fold{k + 1}"), init)
        held += held_out_counts(model, dataset, sorted(set(photos) - inside), canonical, hp.device, images)
    tiles = load_tiles(dataset, ("train", "val"))
    model = train_heatmap(tiles, names, box_sizes, hp, _tagged(on_log, "final"), init)
    if held:
        calibration = fit_calibration([h for _, h in held], level=params.level, default_conf=UNCALIBRATED_CONF)
    else:
        calibration = replace(
            CountCalibration.default(len(names), params.level), thresholds=(UNCALIBRATED_CONF,) * len(names)
        )
    return RecipeResult(model, calibration, canonical, held)


def _tagged(
    on_log: Callable[[str, int, dict[str, float]], None] | None, tag: str
) -> Callable[[int, dict[str, float]], None] | None:
    if on_log is None:
        return None
    return lambda step, metrics: on_log(tag, step, metrics)
