"""A tiny real data set for training tests: synthetic scenes tiled so that objects are large in 64 px input."""

from __future__ import annotations

from pathlib import Path

import pytest

from rookery.data.classes import Classes
from rookery.data.dataset import BuildParams, build_dataset
from rookery.data.synthetic import generate_survey


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    survey = generate_survey(root / "survey", images=4, size=(384, 288), num_classes=2, seed=1, workers=1)
    out = root / "dataset"
    build_dataset(
        survey.out / "points.csv",
        survey.out / "train",
        Classes.load(survey.out / "classes.yaml"),
        out,
        masks=survey.out / "masks",
        params=BuildParams(split=(0.5, 0.5, 0.0), tile=128, overlap=16, empty_fraction=0.0),
        workers=1,
    )
    return out


@pytest.fixture
def tiny_params(tiny_dataset: Path, monkeypatch: pytest.MonkeyPatch):
    """A factory of TrainParams for a ~10 s CPU training on the tiny data set."""
    from rookery.training.trainer import TrainParams

    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")  # a short run still gets samples

    def make(**overrides: object) -> TrainParams:
        base = dict(data=tiny_dataset, epochs=2, imgsz=64, batch=8, device="cpu", workers=0, plots=False)
        return TrainParams(**{**base, **overrides})

    return make
