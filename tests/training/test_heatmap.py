"""The heatmap point-counting family: targets, the YOLO-shaped head output, and the recipe end to end (CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def test_targets_peak_at_each_point_cell():
    from rookery.models.heatmap import STRIDE, gaussian_targets

    pts = torch.tensor([[10.0, 20.0], [40.5, 8.0]])
    cls_img = torch.tensor([[1, 0], [0, 1]])  # (class, image)
    target, peaks = gaussian_targets(pts, cls_img, (1.0, 2.0), (2, 16, 32))
    assert target.shape == peaks.shape == (2, 2, 16, 32)
    assert peaks.sum() == 2
    # the point (10, 20) of class 1 in image 0 is at cell ((10 + .5) / 2 - .5, (20 + .5) / 2 - .5) rounded
    assert peaks[0, 1, round((20 + 0.5) / STRIDE - 0.5), round((10 + 0.5) / STRIDE - 0.5)] == 1
    assert target.max() == 1 and target[0, 0].max() == 0  # nothing of class 0 in image 0
    assert target[1, 0].sum() > 0 and target[1, 0].max() == 1


def test_head_output_is_yolo_shaped_with_one_score_per_peak():
    from rookery.models.heatmap import peaks_as_detections

    heat = torch.zeros(1, 2, 8, 8)
    heat[0, 0, 2, 3] = 0.9  # a peak of class 0
    heat[0, 1, 2, 4] = 0.5  # its weaker neighbour of class 1: not a maximum of the class-agnostic map
    heat[0, 1, 6, 6] = 0.7  # a separate peak of class 1
    out = peaks_as_detections(heat, torch.tensor([10.0, 20.0]), stride=2)
    assert out.shape == (1, 6, 64)
    scores = out[0, 2 + 2 :]  # (classes, cells)
    kept = torch.nonzero(scores)
    assert {(int(c), int(a)) for c, a in kept} == {(0, 2 * 8 + 3), (1, 6 * 8 + 6)}
    cell = 2 * 8 + 3
    assert out[0, :4, cell].tolist() == [3.5 * 2, 2.5 * 2, 10.0, 10.0]  # cx, cy at the cell centre, class 0's side


def test_heatmap_recipe_trains_calibrates_registers_and_counts(tiny_dataset: Path, tmp_path: Path, monkeypatch):
    """`rookery train --recipe heatmap` on the tiny set: one MLflow run with the held-out figures, a registered
    version whose rookery_model.json carries the calibration and resolution, and counts with intervals."""
    from rookery.config import Settings
    from rookery.packaging.client import client
    from rookery.packaging.models import load_predictor
    from rookery.training.trainer import TrainParams, train

    settings = Settings(home=tmp_path / "home")
    monkeypatch.setenv("ROOKERY_HOME", str(settings.home))
    from rookery.config import get_settings

    get_settings.cache_clear()
    params = TrainParams(data=tiny_dataset, recipe="heatmap", time=12, calibration_folds=2, batch=4, device="cpu",
                         name="hm")  # fmt: skip
    result = train(params, settings)
    assert result.complete, result.problems
    assert result.model_version is not None and result.onnx is not None and result.best.is_file()
    run = client(settings.tracking_uri).get_run(result.run_id)
    assert run.data.tags["rookery.recipe"] == "heatmap"
    assert {"heldout/competition_rmse", "heldout/coverage90", "train/loss"} <= set(run.data.metrics)
    meta = json.loads((result.best.parent / "rookery_model.json").read_text())
    assert meta["family"] == "heatmap" and meta["calibration"]["photos"] >= 1
    assert meta["canonical"]["tile"] == 128

    predictor, info = load_predictor(f"models:/{settings.model_name}/{result.model_version}", device="cpu")
    assert predictor.calibration is not None and predictor.calibration.thresholds is not None
    assert predictor.canonical is not None
    photos = sorted((params.data.parent / "survey" / "train").glob("*.jpg"))
    if not photos:  # the fixture's survey sits beside the data set
        photos = sorted(Path(info.weights).parents[3].glob("**/train/*.jpg"))
    import cv2

    image = cv2.imread(str(photos[0]))
    boxes = predictor.predict(image)
    counts = predictor.counts(boxes)
    iv = predictor.count_intervals(counts)
    assert iv.shape == (len(counts), 2) and np.all(iv[:, 0] <= counts) and np.all(counts <= iv[:, 1])
    # the ONNX export counts what the PyTorch weights count
    onnx_predictor, _ = load_predictor(str(result.onnx), backend="onnx")
    assert abs(int(onnx_predictor.counts(onnx_predictor.predict(image)).sum()) - int(counts.sum())) <= 1


@pytest.mark.gpu
def test_heatmap_model_counts_alike_on_the_gpu_engine_and_the_cpu_pipeline(tiny_dataset: Path):
    """A heatmap model trained on CUDA for a few seconds: the all-GPU engine (fp16, CUDA graphs, GPU merge)
    counts what the numpy pipeline counts on the same photos (within 2 %), and the calibration applies to both."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from rookery.inference.backends import TorchBackend
    from rookery.inference.options import PredictOptions
    from rookery.inference.predictor import Predictor
    from rookery.training.heatmap import HeatmapParams, load_tiles, train_heatmap
    from rookery.training.recipe import canonical_of

    tiles = load_tiles(tiny_dataset, ("train", "val", "test"))
    model = train_heatmap(tiles, ["a", "b"], [20.0, 30.0], HeatmapParams(seconds=15, device="cuda:0", batch=16))
    c = canonical_of(tiny_dataset)
    options = PredictOptions(tile=c.tile, overlap=c.overlap, imgsz=c.tile, conf=0.2, batch=8)
    photos = sorted((tiny_dataset.parent / "survey" / "train").glob("*.jpg"))
    assert photos
    counts = {}
    for engine in (True, False):
        predictor = Predictor(TorchBackend(model, ["a", "b"], "cuda:0"), options, gpu_engine=engine, canonical=c)
        counts[engine] = sum(int(predictor.counts(b).sum()) for b in predictor.predict_many(photos))  # type: ignore[union-attr]
    assert counts[True] > 0
    assert abs(counts[True] - counts[False]) <= max(1, 0.02 * counts[False])


def test_yolo_only_options_are_refused_by_the_heatmap_recipe(tiny_dataset: Path):
    from rookery.errors import ConfigError
    from rookery.training.trainer import TrainParams, train

    with pytest.raises(ConfigError, match="--epochs applies to --recipe yolo"):
        train(TrainParams(data=tiny_dataset, recipe="heatmap", epochs=5))


def test_training_starts_from_a_users_heatmap_weights(tiny_dataset: Path, tmp_path: Path):
    """--model best.pt: every tensor of the same shape starts from the given weights; YOLO weights are refused."""
    from rookery.errors import InputError
    from rookery.models.heatmap import HeatmapNet
    from rookery.training.heatmap import HeatmapParams, load_heatmap_weights, load_tiles, save_checkpoint, train_heatmap

    earlier = HeatmapNet(["a", "b"], [20.0, 30.0])
    with torch.no_grad():
        earlier.head[-1].bias.fill_(1.5)
    path = save_checkpoint(earlier, tmp_path / "best.pt")
    init = load_heatmap_weights(path)
    tiles = load_tiles(tiny_dataset)
    model = train_heatmap(tiles, ["a", "b"], [20.0, 30.0], HeatmapParams(steps=0, device="cpu"), init=init)
    assert torch.allclose(model.head[-1].bias, torch.full((2,), 1.5))
    torch.save({"model": torch.nn.Linear(2, 2)}, tmp_path / "yolo.pt")
    with pytest.raises(InputError, match="not a heatmap model"):
        load_heatmap_weights(tmp_path / "yolo.pt")
