"""The evaluation's files (metrics.json, per_photo.csv, two PNGs) and guarded logging into MLflow."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from rookery.evaluation import CountingResult
from rookery.evaluation.report import plot_class_errors, write_report
from rookery.packaging.evaluation_log import log_evaluation


def _result(n_classes: int) -> CountingResult:
    rng = np.random.default_rng(0)
    r = CountingResult(tuple(f"class{k}" for k in range(n_classes)))
    for i in range(6):
        true = rng.integers(0, 30, n_classes)
        r.add(f"p{i}", "test", true, true + rng.integers(-3, 4, n_classes).clip(-true))
    return r


@pytest.mark.parametrize("n_classes", [1, 2, 5])  # one panel; a row; two rows with a hidden panel
def test_write_report_files(tmp_path: Path, n_classes: int) -> None:
    r = _result(n_classes)
    payload = {"counting": r.metrics().to_dict(), "numpy": np.float32(1.5), "path": tmp_path}
    files = write_report(tmp_path / "out", r, payload)
    assert [f.name for f in files] == ["metrics.json", "per_photo.csv", "counts_scatter.png", "class_errors.png"]
    data = json.loads(files[0].read_text())
    assert data["numpy"] == 1.5 and data["path"] == str(tmp_path)
    assert data["counting"]["competition_rmse"] == pytest.approx(r.metrics().competition_rmse)
    with files[1].open() as f:
        rows = list(csv.DictReader(f))
    assert [row["image"] for row in rows] == r.images
    true, pred = r.arrays()
    assert [int(row["class0_pred"]) - int(row["class0_true"]) for row in rows] == (pred - true)[:, 0].tolist()
    assert [int(row["class0_error"]) for row in rows] == (pred - true)[:, 0].tolist()
    for png in files[2:]:
        image = cv2.imread(str(png))
        assert image is not None and image.shape[0] >= 300 and image.std() > 5


def test_class_error_bars_are_drawn_to_scale(tmp_path: Path) -> None:
    # one class with RMSE 10 and one with 0: the chart is not blank where the large bar stands
    r = CountingResult(("big", "none"))
    r.add("p", None, [0, 0], np.array([10, 0]))
    plot_class_errors(tmp_path / "e.png", r.metrics())
    gray = cv2.cvtColor(cv2.imread(str(tmp_path / "e.png")), cv2.COLOR_BGR2GRAY)
    left, right = gray[:, : gray.shape[1] // 2], gray[:, gray.shape[1] // 2 :]
    assert (left < 200).sum() > 2 * (right < 200).sum()  # the coloured bars are on the left half


def test_logging_to_a_missing_run_or_a_dead_server_is_a_warning(tmp_path: Path, loopback_port: int, caplog) -> None:
    files = [tmp_path / "metrics.json"]
    files[0].write_text("{}")
    with caplog.at_level(logging.WARNING):
        problems = log_evaluation(f"sqlite:///{tmp_path / 'm.db'}", "0" * 32, {"eval/x": 1.0}, {}, files)
        assert problems == ["reaching the run"]
        problems = log_evaluation(f"http://127.0.0.1:{loopback_port}", "0" * 32, {"eval/x": 1.0}, {}, files)
        assert problems == ["reaching the run"]
    assert caplog.text.count("failed while reaching the run") == 2
