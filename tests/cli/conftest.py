"""A tiny real model for the prediction tests: trained once per session (64 px, 1 epoch, CPU), registered in
a SQLite store and promoted to `champion`. Tests point ROOKERY_TRACKING_URI at that store through the
`trained_model` fixture; each test keeps its own ROOKERY_HOME (so its own download cache).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class TrainedModel:
    tracking_uri: str
    run_id: str
    version: str
    best: Path  # the local best.pt of the training (best.onnx beside it)
    onnx: Path
    photos: Path  # a folder of survey photos (clean, 384x288) the model can be run on
    masks: Path  # their masks, same stems


@pytest.fixture(scope="session")
def _trained_model(tmp_path_factory: pytest.TempPathFactory, tiny_survey) -> TrainedModel:
    from rookery.config import Settings
    from rookery.packaging import registry
    from rookery.training.trainer import TrainParams, train

    root = tmp_path_factory.mktemp("predict-model")
    dataset = tiny_survey.dataset
    settings = Settings(home=root / "home")
    params = TrainParams(data=dataset, epochs=1, imgsz=64, batch=8, device="cpu", workers=0, plots=False)
    result = train(params, settings)
    assert result.model_version is not None and result.onnx is not None and result.run_id is not None
    registry.promote(settings.tracking_uri, settings.model_name, result.model_version)
    return TrainedModel(
        settings.tracking_uri,
        result.run_id,
        result.model_version,
        result.best,
        result.onnx,
        tiny_survey.survey / "train",
        tiny_survey.survey / "masks",
    )


@pytest.fixture
def trained_model(_trained_model: TrainedModel, monkeypatch: pytest.MonkeyPatch) -> TrainedModel:
    """The session's model, with this test's settings pointing at its tracking store."""
    from rookery.config import get_settings

    monkeypatch.setenv("ROOKERY_TRACKING_URI", _trained_model.tracking_uri)
    get_settings.cache_clear()
    return _trained_model
