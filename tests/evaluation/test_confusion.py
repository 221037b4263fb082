"""Detections matched to true points (one-to-one, within a radius) and the confusion matrix they make; the
matrix and count intervals on whole photos with the deterministic fake network."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from rookery.data.classes import Classes
from rookery.evaluation import Confusion, confusion_matrix, count_photos, from_points, match_points
from rookery.evaluation.confusion import class_sides, photo_confusion
from rookery.evaluation.intervals import interval_coverage, total_error_pct
from rookery.evaluation.report import plot_confusion, write_confusion_csv
from rookery.types import Boxes, Points


def _pairs(pairs: tuple[np.ndarray, np.ndarray]) -> list[tuple[int, int]]:
    return list(zip(pairs[0].tolist(), pairs[1].tolist(), strict=True))


# Two classes; radius 10 everywhere. Rows of the matrix: true 0, true 1, extra; columns: pred 0, pred 1, missed.
@pytest.mark.parametrize(
    ("true", "pred", "pairs", "matrix"),
    [
        # perfect: every point has its detection, same class
        ([(10, 10, 0), (60, 60, 1)], [(11, 9, 0), (60, 62, 1)], [(0, 0), (1, 1)], [[1, 0, 0], [0, 1, 0], [0, 0, 0]]),
        # a class swap: the animal is found, with the other class
        ([(10, 10, 0), (60, 60, 1)], [(10, 12, 1), (60, 60, 1)], [(0, 0), (1, 1)], [[0, 1, 0], [0, 1, 0], [0, 0, 0]]),
        # a miss: the second animal has no detection
        ([(10, 10, 0), (60, 60, 1)], [(10, 10, 0)], [(0, 0)], [[1, 0, 0], [0, 0, 1], [0, 0, 0]]),
        # an extra: a detection on no animal
        ([(10, 10, 0)], [(10, 10, 0), (100, 100, 1)], [(0, 0)], [[1, 0, 0], [0, 0, 0], [0, 1, 0]]),
        # beyond the radius (11 > 10): a miss and an extra, not a match
        ([(10, 10, 0)], [(21, 10, 0)], [], [[0, 0, 1], [0, 0, 0], [1, 0, 0]]),
        # exactly at the radius: a match
        ([(10, 10, 1)], [(10, 20, 1)], [(0, 0)], [[0, 0, 0], [0, 1, 0], [0, 0, 0]]),
        # one detection between two animals: one match (the nearer), the other animal missed
        ([(0, 0, 0), (16, 0, 0)], [(7, 0, 0)], [(0, 0)], [[1, 0, 1], [0, 0, 0], [0, 0, 0]]),
        # nothing predicted: every animal missed
        ([(0, 0, 0), (50, 0, 1)], [], [], [[0, 0, 1], [0, 0, 1], [0, 0, 0]]),
        # nothing true: every detection extra
        ([], [(0, 0, 1), (50, 0, 1)], [], [[0, 0, 0], [0, 0, 0], [0, 2, 0]]),
    ],
)
def test_match_and_confusion_cases(true: list, pred: list, pairs: list, matrix: list) -> None:
    t = np.array(true, dtype=np.float64).reshape(-1, 3)
    p = np.array(pred, dtype=np.float64).reshape(-1, 3)
    found = match_points(t[:, :2], p[:, :2], 10.0)
    assert _pairs(found) == pairs
    m = confusion_matrix(t[:, 2].astype(int), p[:, 2].astype(int), found, 2)
    assert m.tolist() == matrix
    # the margins are the counts: rows give the true counts, columns the predicted ones
    assert m[:2].sum(axis=1).tolist() == np.bincount(t[:, 2].astype(int), minlength=2).tolist()
    assert m[:, :2].sum(axis=0).tolist() == np.bincount(p[:, 2].astype(int), minlength=2).tolist()


def test_matching_maximises_pairs_before_distance() -> None:
    # Nearest first would pair A with P (3 px) and leave B alone; the assignment pairs A-Q and B-P.
    true = np.array([[0.0, 0.0], [9.0, 0.0]])  # A, B
    pred = np.array([[3.0, 0.0], [-5.0, 0.0]])  # P, Q
    assert _pairs(match_points(true, pred, 6.0)) == [(0, 1), (1, 0)]


def test_matching_minimises_distance_among_full_matchings() -> None:
    # both pairings are allowed; the crossing one costs 2 * 8 px, the straight one 2 * 1 px
    true = np.array([[0.0, 0.0], [0.0, 9.0]])
    pred = np.array([[0.0, 8.0], [0.0, 1.0]])
    assert _pairs(match_points(true, pred, 10.0)) == [(0, 1), (1, 0)]


def test_radius_is_the_larger_of_the_pairs_two() -> None:
    # 8 px apart: too far for the true point's radius (2), near enough for the detection's (10)
    true, pred = np.array([[0.0, 0.0]]), np.array([[8.0, 0.0]])
    assert _pairs(match_points(true, pred, 2.0, 10.0)) == [(0, 0)]
    assert _pairs(match_points(true, pred, 2.0, 7.9)) == []
    assert _pairs(match_points(true, pred, np.array([8.0]), np.array([0.0]))) == [(0, 0)]


def test_matching_many_points_in_groups() -> None:
    # a 30 x 30 grid of animals 20 px apart, each detection 3 px off: all 900 matched to their own animal
    g = np.stack(np.meshgrid(np.arange(30) * 20.0, np.arange(30) * 20.0), axis=-1).reshape(-1, 2)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(g))
    pairs = match_points(g, g[order] + [3.0, 0.0], 10.0)
    assert len(pairs[0]) == len(g) and (order[pairs[1]] == pairs[0]).all()


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="one per point"):
        match_points(np.zeros((2, 2)), np.zeros((1, 2)), np.array([1.0]))
    with pytest.raises(ValueError, match="not negative"):
        match_points(np.zeros((1, 2)), np.zeros((1, 2)), -1.0)
    with pytest.raises(ValueError, match=r"classes must be in \[0, 2\)"):
        confusion_matrix(np.array([0, 2]), np.array([0]), (np.array([0]), np.array([0])), 2)


def test_class_sides_and_photo_confusion() -> None:
    # class 0: boxes of 20 and 30 px (median 25); class 1: none, so classes.yaml's side (40) or else the median
    # of all the photo's detections (30); class 2: one of 60 px
    xyxy = np.array([[0, 0, 20, 20], [100, 100, 130, 110], [200, 200, 260, 260]], dtype=np.float64)
    boxes = Boxes(xyxy, np.array([0, 0, 2]))
    assert class_sides(boxes, 3, (None, 40.0, None)).tolist() == [25.0, 40.0, 60.0]
    assert class_sides(boxes, 3).tolist() == [25.0, 30.0, 60.0]
    assert class_sides(Boxes.empty(), 3).tolist() == [0.0, 0.0, 0.0]
    # a class-1 animal 15 px from the first detection's centre (10, 10), and a class-0 one far from everything
    truth = Points(np.array([[10.0, 25.0], [500.0, 500.0]]), np.array([1, 0]))
    # radius max(25, 40) / 2 = 20: the class-1 animal was found, as class 0
    m = photo_confusion(truth, boxes, 3, (None, 40.0, None))
    assert m.tolist() == [[0, 0, 0, 1], [1, 0, 0, 0], [0, 0, 0, 0], [1, 0, 1, 0]]
    # radius max(25, 30) / 2 = 15: just reached
    assert photo_confusion(truth, boxes, 3).tolist() == m.tolist()
    # radius max(25, 28) / 2 = 14 < 15: missed, and the detection is an extra
    m = photo_confusion(truth, boxes, 3, (None, 28.0, None))
    assert m.tolist() == [[0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0], [2, 0, 1, 0]]


def test_confusion_summary_files(tmp_path: Path) -> None:
    c = Confusion(("red", "green"), np.array([[8, 1, 1], [2, 6, 2], [3, 0, 0]]), photos=4)
    assert (c.matched, c.true_points, c.predicted, c.same_class) == (17, 20, 20, 14)
    assert c.fractions() == pytest.approx(
        {"matched_fraction": 0.85, "extra_fraction": 0.15, "class_agreement": 14 / 17}
    )
    d = c.to_dict()
    assert d["rows"] == ["red", "green", "extra"] and d["columns"] == ["red", "green", "missed"]
    assert (d["missed"], d["extra"]) == (3, 3)
    assert c.mlflow_metrics()["eval/matched_fraction"] == pytest.approx(0.85)
    assert c.mlflow_metrics()["eval/missed/green"] == 2.0 and c.mlflow_metrics()["eval/extra/red"] == 3.0
    write_confusion_csv(tmp_path / "c.csv", c)
    with (tmp_path / "c.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows == [["true \\ predicted", "red", "green", "missed"], ["red", "8", "1", "1"],
                    ["green", "2", "6", "2"], ["extra", "3", "0", "0"]]  # fmt: skip
    plot_confusion(tmp_path / "c.png", c)
    image = cv2.imread(str(tmp_path / "c.png"))
    assert image is not None and image.shape[0] > 200 and image.std() > 5
    # nothing true and nothing predicted: the fractions are undefined, not 0
    empty = Confusion(("red",), np.zeros((2, 2), np.int64), photos=1)
    assert empty.fractions() == {"matched_fraction": None, "extra_fraction": None, "class_agreement": None}
    assert empty.mlflow_metrics() == {"eval/missed/red": 0.0, "eval/extra/red": 0.0}


@pytest.mark.parametrize(
    ("true", "pred", "intervals", "overall", "per_class"),
    [
        # inside, outside; class 1 absent and not predicted on both photos: not counted, no coverage
        ([[3, 0], [5, 0]], [[3, 0], [2, 0]], [[[2, 5], [0, 0]], [[1, 4], [0, 0]]], 0.5, [0.5, None]),
        # a class present but not predicted: counted (its interval [0, 0] misses the 2 animals)
        ([[2, 1]], [[0, 1]], [[[0, 0], [0, 3]]], 0.5, [0.0, 1.0]),
        # predicted where there is nothing: counted, and 0 in [0, 2] holds
        ([[0, 0]], [[1, 0]], [[[0, 2], [0, 0]]], 1.0, [1.0, None]),
        # nothing anywhere: no coverage at all
        ([[0, 0]], [[0, 0]], [[[0, 0], [0, 0]]], None, [None, None]),
    ],
)
def test_interval_coverage(true, pred, intervals, overall, per_class) -> None:
    got, classes = interval_coverage(np.array(true), np.array(pred), np.array(intervals))
    assert got == overall and classes == per_class


def test_total_error_pct() -> None:
    assert total_error_pct(np.array([[3, 1], [0, 0]]), np.array([[2, 1], [1, 0]])) == [-25.0, None]


def test_count_photos_matches_the_fake_networks_squares(fake_predictor, square_survey) -> None:
    evalset = from_points(
        square_survey.points, square_survey.images, Classes.load(square_survey.classes), square_survey.masks, workers=1
    )
    assert all(p.points is not None and len(p.points) == sum(p.truth) for p in evalset.photos)
    result = count_photos(fake_predictor, evalset.photos, evalset.box_sides)
    c = result.confusion()
    # the fake network finds every square where it is, with its colour: all on the diagonal
    truth = np.sum(list(square_survey.truth.values()), axis=0)
    assert c is not None and c.photos == 3
    assert c.matrix.tolist() == [[truth[0], 0, 0], [0, truth[1], 0], [0, 0, 0]]
    # each count has an interval that holds it (the uncalibrated default: bias 0)
    for p, iv in zip(result.pred, result.intervals, strict=True):
        assert iv is not None and iv.shape == (2, 2) and ((iv[:, 0] <= p) & (p <= iv[:, 1])).all()
    rows = result.rows()
    assert rows[0]["matched"] == sum(square_survey.truth["a"]) and rows[0]["missed"] == rows[0]["extra"] == 0
    assert rows[0]["total_interval_lo"] == rows[0]["red_interval_lo"] + rows[0]["green_interval_lo"]


def test_count_photos_shows_a_mislabelled_animal(fake_predictor, square_survey) -> None:
    # photo a's square at (120, 70) is green; points.csv calls it red, and adds a red animal where nothing is
    text = square_survey.points.read_text().replace("a,129.5,79.5,green", "a,129.5,79.5,red")
    assert text != square_survey.points.read_text()
    square_survey.points.write_text(text + "a,200,20,red\n")
    evalset = from_points(
        square_survey.points, square_survey.images, Classes.load(square_survey.classes), square_survey.masks, workers=1
    )
    result = count_photos(fake_predictor, [p for p in evalset.photos if p.name == "a"], evalset.box_sides)
    c = result.confusion()
    assert c is not None
    # red: 3 squares found as red, 1 found as green (the mislabel), 1 missed (nothing there)
    assert c.matrix.tolist() == [[3, 1, 1], [0, 0, 0], [0, 0, 0]]
    assert result.rows()[0]["wrong_class"] == 1
