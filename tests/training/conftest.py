"""A tiny real data set for training tests: synthetic scenes tiled so that objects are large in 64 px input."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_dataset(tiny_survey) -> Path:
    return tiny_survey.dataset


@pytest.fixture
def tiny_params(tiny_dataset: Path, monkeypatch: pytest.MonkeyPatch):
    """A factory of TrainParams for a ~10 s CPU training on the tiny data set."""
    from rookery.training.trainer import TrainParams

    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")  # a short run still gets samples

    def make(**overrides: object) -> TrainParams:
        base = dict(data=tiny_dataset, epochs=2, imgsz=64, batch=8, device="cpu", workers=0, plots=False)
        return TrainParams(**{**base, **overrides})

    return make
