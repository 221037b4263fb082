"""Fixtures of the evaluation tests: photos of squares for the deterministic fake network, and a real tiny
model trained once per session and registered in a SQLite MLflow store (its own ROOKERY_HOME).

The fake network (tests/inference/inference_fakes.py) finds every solid square exactly, so counts and
errors on its photos are known in advance; the real model checks the whole path through MLflow.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import typer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from inference_fakes import FAKE_NAMES, SIDE, CountingBackend, square_photo

from rookery.inference import PredictOptions, Predictor

CLASSES_YAML = "red: {color: [255, 0, 0], box: 20}\ngreen: {color: [0, 255, 0], box: 20}\n"


@pytest.fixture
def fake_predictor() -> Predictor:
    """The fake square finder behind a real Predictor: 96 px tiles, no imgsz scaling."""
    return Predictor(CountingBackend(), PredictOptions(tile=96, overlap=32, conf=0.25))


@dataclass(frozen=True)
class SquareSurvey:
    images: Path
    masks: Path
    points: Path
    classes: Path
    truth: dict[str, list[int]]  # per photo, squares inside its mask per class (red, green)
    drawn: dict[str, list[int]]  # per photo, all squares drawn per class


# Per photo: squares as (x, y, cls), top left; 240x160 photos. The mask of "b" ignores the left 100 px.
SQUARES = {
    "a": [(10, 10, 0), (60, 20, 0), (120, 70, 1), (180, 120, 0)],
    "b": [(20, 30, 1), (40, 100, 0), (140, 40, 1), (200, 110, 1), (150, 120, 0)],
    "c": [],
}


@pytest.fixture
def square_survey(tmp_path: Path) -> SquareSurvey:
    """Three photos of squares with masks and points.csv at the squares' centres (one photo has none)."""
    images, masks = tmp_path / "photos", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    rows, truth, drawn = [], {}, {}
    for k, (name, squares) in enumerate(SQUARES.items()):
        cv2.imwrite(str(images / f"{name}.png"), square_photo(240, 160, squares, seed=k))
        mask = np.full((160, 240), 255, np.uint8)
        if name == "b":
            mask[:, :100] = 0
        cv2.imwrite(str(masks / f"{name}.png"), mask)
        truth[name], drawn[name] = [0, 0], [0, 0]
        for x, y, c in squares:
            rows.append((name, x + (SIDE - 1) / 2, y + (SIDE - 1) / 2, FAKE_NAMES[c]))
            drawn[name][c] += 1
            truth[name][c] += int(mask[y + SIDE // 2, x + SIDE // 2] > 0)
    with (tmp_path / "points.csv").open("w", newline="") as f:
        csv.writer(f).writerows([("image", "x", "y", "class"), *rows])
    (tmp_path / "classes.yaml").write_text(CLASSES_YAML)
    return SquareSurvey(images, masks, tmp_path / "points.csv", tmp_path / "classes.yaml", truth, drawn)


# --- a real tiny model in a real MLflow store ---------------------------------------------------------


@dataclass(frozen=True)
class Trained:
    home: Path  # ROOKERY_HOME holding mlflow.db, artifacts and the model cache
    dataset: Path
    survey: Path  # train/, masks/, points.csv, classes.yaml
    run_id: str
    version: str
    best: Path


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_survey) -> Iterator[Trained]:
    """A synthetic survey (4 photos of 384x288, 2 classes) tiled at 128 px into train/val/test (2/1/1
    photos), yolov8n trained 2 epochs at 64 px on the CPU, registered as version 1 of `rookery`."""
    from rookery.config import get_settings
    from rookery.training.trainer import TrainParams, train

    root = tmp_path_factory.mktemp("evaluation")
    dataset = tiny_survey.dataset
    home = root / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROOKERY_HOME", str(home))
        for key in ("ROOKERY_TRACKING_URI", "MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID"):
            mp.delenv(key, raising=False)
        get_settings.cache_clear()
        try:
            params = TrainParams(
                data=dataset, epochs=2, imgsz=64, batch=8, device="cpu", workers=0, plots=False, name="eval-tiny"
            )
            result = train(params)
        finally:
            get_settings.cache_clear()
    assert result.complete and result.run_id and result.model_version, result.problems
    yield Trained(home, dataset, tiny_survey.survey, result.run_id, result.model_version, result.best)


@pytest.fixture
def trained_home(trained: Trained, monkeypatch: pytest.MonkeyPatch) -> Trained:
    """Point this test's settings at the session's MLflow store."""
    from rookery.config import get_settings

    monkeypatch.setenv("ROOKERY_HOME", str(trained.home))
    get_settings.cache_clear()
    return trained


@pytest.fixture
def cli_app() -> typer.Typer:
    """The `rookery` app with `evaluate`. Until rookery.cli registers it in place of the pending stub, the
    same app shape (error handling group, global callback) is assembled here around the real command."""
    from rookery.cli import _RookeryGroup, app, main
    from rookery.cli import model as model_cli
    from rookery.cli.evaluate import evaluate

    if any(c.name == "evaluate" and c.callback is evaluate for c in app.registered_commands):
        return app
    test_app = typer.Typer(cls=_RookeryGroup, pretty_exceptions_enable=False, add_completion=False)
    test_app.callback()(main)
    test_app.command("evaluate")(evaluate)
    test_app.add_typer(model_cli.app, name="model")
    return test_app
