"""Points -> boxes: centring, clipping, per-class sizes from classes.yaml or estimated from spacing."""

from __future__ import annotations

import numpy as np
import pytest

from rookery.data.boxes import (
    CLAMP_HIGH,
    DEFAULT_BOX,
    MIN_BOX,
    estimate_box_sizes,
    nearest_neighbour_distances,
    points_to_boxes,
    resolve_box_sizes,
)
from rookery.data.classes import Classes, ClassSpec
from rookery.errors import ConfigError
from rookery.types import ImageLabels, Points

TWO = Classes((ClassSpec("big", (255, 0, 0)), ClassSpec("small", (0, 255, 0))))


def test_boxes_are_centred_squares_of_the_class_size() -> None:
    pts = Points([[50.0, 40.0], [10.0, 20.0]], [0, 1])
    boxes = points_to_boxes(pts, [20.0, 6.0])
    np.testing.assert_allclose(boxes.xyxy, [[40, 30, 60, 50], [7, 17, 13, 23]])
    np.testing.assert_allclose(boxes.centers(), pts.xy)
    assert boxes.cls.tolist() == [0, 1]
    assert boxes.score is None


@pytest.mark.parametrize(
    ("xy", "expected"),
    [
        ((0.0, 0.0), (-0.5, -0.5, 5.0, 5.0)),  # top-left pixel: clipped at the outer edge of the image
        ((99.0, 49.0), (94.0, 44.0, 99.5, 49.5)),  # bottom-right pixel of a 100x50 image
        ((50.0, 25.0), (45.0, 20.0, 55.0, 30.0)),  # well inside: untouched
    ],
)
def test_boxes_are_clipped_at_the_image_border(xy: tuple[float, float], expected: tuple[float, ...]) -> None:
    boxes = points_to_boxes(Points([xy], [0]), [10.0], image_size=(100, 50))
    np.testing.assert_allclose(boxes.xyxy[0], expected)


def test_no_points_give_no_boxes() -> None:
    assert len(points_to_boxes(Points.empty(), [10.0], (10, 10))) == 0


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ([10.0], "box sizes are given for 1 class"),  # class 1 has no size
        ([10.0, 0.0], "positive"),  # a zero size
    ],
)
def test_bad_sizes_are_config_errors(sizes: list[float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        points_to_boxes(Points([[1.0, 1.0], [2.0, 2.0]], [0, 1]), sizes)


def test_nearest_neighbour_distances() -> None:
    d = nearest_neighbour_distances(np.array([[0.0, 0.0], [3.0, 4.0], [100.0, 0.0]]))
    np.testing.assert_allclose(d, [5.0, 5.0, np.hypot(97, 4)])
    assert np.isinf(nearest_neighbour_distances(np.array([[1.0, 1.0]]))).all()


def _grid(step: float, n: int, cls: int, origin: float = 0.0) -> Points:
    xs = origin + np.arange(n) * step
    xy = np.array([(x, y) for x in xs for y in xs])
    return Points(xy, np.full(len(xy), cls))


def test_estimate_is_the_spacing_of_a_packed_colony() -> None:
    # Two colonies in two photos, of animals touching at 20 px and at 10 px.
    labels = [ImageLabels("a", _grid(20.0, 6, 0)), ImageLabels("b", _grid(10.0, 6, 1))]
    sizes = estimate_box_sizes(labels, TWO)
    assert sizes == pytest.approx([20.0, 10.0])


def test_estimate_clamps_a_scattered_class_to_the_overall_spacing() -> None:
    # 100 animals touching at 10 px, and 3 of another class far apart (1000 px): clamped to 2x 10 px.
    colony = _grid(10.0, 10, 1)
    loners = Points([[5000.0, 0.0], [6000.0, 0.0], [7000.0, 0.0]], [0, 0, 0])
    labels = [ImageLabels("a", Points(np.vstack([colony.xy, loners.xy]), np.r_[colony.cls, loners.cls]))]
    big, small = estimate_box_sizes(labels, TWO)
    assert small == pytest.approx(10.0)
    assert big == pytest.approx(CLAMP_HIGH * 10.0)


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ([], [DEFAULT_BOX, DEFAULT_BOX]),  # no points at all
        ([ImageLabels("a", Points([[1.0, 1.0]], [0]))], [DEFAULT_BOX, DEFAULT_BOX]),  # one point per photo
        ([ImageLabels("a", _grid(1.0, 5, 0))], [MIN_BOX, MIN_BOX]),  # 1 px apart: floored; class 1 absent
    ],
)
def test_estimate_fallbacks(labels: list[ImageLabels], expected: list[float]) -> None:
    assert estimate_box_sizes(labels, TWO) == pytest.approx(expected)


def test_estimate_ignores_duplicate_points() -> None:
    pts = _grid(12.0, 5, 0)
    doubled = Points(np.vstack([pts.xy, pts.xy]), np.r_[pts.cls, pts.cls])
    assert estimate_box_sizes([ImageLabels("a", doubled)], TWO)[0] == pytest.approx(12.0)


def test_resolve_prefers_classes_yaml_and_estimates_the_rest() -> None:
    classes = Classes((ClassSpec("big", (255, 0, 0), box=33.0), ClassSpec("small", (0, 255, 0))))
    labels = [ImageLabels("a", _grid(10.0, 6, 1))]
    assert resolve_box_sizes(classes, labels) == pytest.approx([33.0, 10.0])
    given = classes.with_boxes([33.0, 7.0])
    assert resolve_box_sizes(given, []) == [33.0, 7.0]
