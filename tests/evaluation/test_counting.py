"""Counting metrics on hand-made counts, and counting whole photos with the deterministic fake network."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rookery.errors import InputError
from rookery.evaluation import (
    CountingResult,
    competition_rmse,
    count_photos,
    counting_metrics,
    from_points,
    mae,
    rmse,
)
from rookery.evaluation.counting import metric_key
from rookery.evaluation.truth import EvalPhoto

# Three photos, three classes; errors (pred - true): class 0: +1, -1, +2; class 1: 0, 0, -3; class 2: 0, 0, 0.
TRUE = np.array([[3, 0, 0], [5, 4, 0], [0, 3, 0]])
PRED = np.array([[4, 0, 0], [4, 4, 0], [2, 0, 0]])


def test_mae_rmse_and_competition_metric_exact() -> None:
    assert mae(TRUE, PRED).tolist() == pytest.approx([4 / 3, 1.0, 0.0])
    assert rmse(TRUE, PRED).tolist() == pytest.approx([math.sqrt(6 / 3), math.sqrt(9 / 3), 0.0])
    # class 2 is absent from truth and prediction: RMSE 0, and it still takes a third of the mean
    assert competition_rmse(TRUE, PRED) == pytest.approx((math.sqrt(2) + math.sqrt(3) + 0.0) / 3)


def test_counting_metrics_totals_and_mlflow_names() -> None:
    m = counting_metrics(TRUE, PRED, ["adult males", "pups", "ghosts"])
    assert m.photos == 3
    assert m.true_total == (8, 7, 0) and m.pred_total == (10, 4, 0)
    # all classes together per photo: errors +1, -1, -1
    assert m.total_mae == pytest.approx(1.0) and m.total_rmse == pytest.approx(1.0)
    assert m.competition_rmse == pytest.approx(competition_rmse(TRUE, PRED))
    keys = m.mlflow_metrics()
    assert keys["eval/competition_rmse"] == m.competition_rmse
    assert keys["eval/mae/adult males"] == pytest.approx(4 / 3) and keys["eval/rmse/ghosts"] == 0.0
    assert m.to_dict()["classes"]["pups"] == {"true": 7, "predicted": 4, "mae": 1.0, "rmse": pytest.approx(3**0.5)}


@pytest.mark.parametrize(
    ("true", "pred", "expected"),
    [
        ([[2, 0]], [[2, 0]], 0.0),  # perfect counts
        ([[0, 0], [0, 0]], [[0, 0], [0, 0]], 0.0),  # nothing anywhere: both classes RMSE 0
        ([[0, 0], [0, 0]], [[0, 4], [0, 0]], (0 + math.sqrt(8)) / 2),  # false positives on empty photos count
        ([[10, 1]], [[0, 1]], 5.0),  # one photo: RMSE = |error|, halved by the mean over 2 classes
    ],
)
def test_competition_metric_cases(true: list, pred: list, expected: float) -> None:
    assert competition_rmse(np.array(true), np.array(pred)) == pytest.approx(expected)


def test_metrics_refuse_empty_or_mismatched_input() -> None:
    with pytest.raises(InputError, match="no photo was evaluated"):
        mae(np.zeros((0, 2)), np.zeros((0, 2)))
    with pytest.raises(ValueError, match="of one shape"):
        rmse(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="3 count columns for 2 classes"):
        counting_metrics(TRUE, PRED, ["a", "b"])


@pytest.mark.parametrize(
    ("name", "key"),
    [("adult_males", "adult_males"), ("sea-lion.v2", "sea-lion.v2"), ("a/b (x)", "a_b _x_"), ("", "_")],
)
def test_metric_key(name: str, key: str) -> None:
    # names MLflow accepts pass unchanged; a slash would make a sub-folder of the metric, so it is replaced
    assert metric_key(name) == key


def test_counting_result_rows() -> None:
    r = CountingResult(("a", "b"))
    r.add("p1", "test", [3, 1], np.array([2, 1]))
    r.add("p2", None, [0, 0], np.array([0, 2]))
    assert r.rows() == [
        {"image": "p1", "split": "test", "a_true": 3, "a_pred": 2, "a_error": -1, "b_true": 1, "b_pred": 1,
         "b_error": 0, "total_true": 4, "total_pred": 3, "total_error": -1},
        {"image": "p2", "split": "", "a_true": 0, "a_pred": 0, "a_error": 0, "b_true": 0, "b_pred": 2,
         "b_error": 2, "total_true": 0, "total_pred": 2, "total_error": 2},
    ]  # fmt: skip
    true, pred = r.arrays()
    assert true.tolist() == [[3, 1], [0, 0]] and pred.tolist() == [[2, 1], [0, 2]]


def test_count_photos_counts_inside_masks_exactly(fake_predictor, square_survey) -> None:
    from rookery.data.classes import Classes

    evalset = from_points(
        square_survey.points, square_survey.images, Classes.load(square_survey.classes), square_survey.masks, workers=1
    )
    assert {p.name: list(p.truth) for p in evalset.photos} == square_survey.truth
    result = count_photos(fake_predictor, evalset.photos)
    assert not result.skipped
    # the fake network finds every square: inside the masks the counts are the truth, photo by photo
    assert dict(zip(result.images, (p.tolist() for p in result.pred), strict=True)) == square_survey.truth
    assert result.metrics().competition_rmse == 0.0


def test_count_photos_without_masks_and_a_corrupt_photo(fake_predictor, square_survey) -> None:
    (square_survey.images / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    photos = [
        EvalPhoto(name, square_survey.images / f"{name}.png", None, tuple(square_survey.truth[name]))
        for name in ("a", "c", "b")
    ]
    result = count_photos(fake_predictor, photos)
    # the corrupt photo is reported and skipped; the others are counted (b without its mask: all 5 squares)
    assert [s.item for s in result.skipped] == ["c"] and "not a readable image" in result.skipped[0].reason
    assert result.images == ["a", "b"]
    assert [p.tolist() for p in result.pred] == [square_survey.drawn["a"], square_survey.drawn["b"]]
    m = result.metrics()
    # b: truth [1, 2] (its mask), prediction [2, 3] (no mask given): one extra per class on one of two photos
    assert m.mae == pytest.approx((0.5, 0.5)) and m.rmse == pytest.approx((0.5**0.5, 0.5**0.5))
