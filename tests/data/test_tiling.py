"""Tile grids, cutting boxes and points into tiles, and blanking ignore regions (merging tiles back:
tests/inference/test_inference_merge.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rookery.data.boxes import points_to_boxes
from rookery.data.tiling import (
    Tile,
    blank_ignored,
    cut_boxes,
    cut_points,
    ignored_fractions,
    tile_grid,
)
from rookery.types import Boxes, Points
from tile_merge import merge_pieces

# --- tile_grid ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "tile", "overlap", "expected"),
    [
        ((640, 640), 640, 64, [Tile(0, 0, 640, 640)]),  # exactly one tile
        ((100, 50), 640, 64, [Tile(0, 0, 100, 50)]),  # smaller than a tile: the whole image
        (
            (1000, 200),
            640,
            64,
            [Tile(0, 0, 640, 200), Tile(360, 0, 1000, 200)],
        ),  # last column ends at the border
        ((20, 10), 10, 0, [Tile(0, 0, 10, 10), Tile(10, 0, 20, 10)]),  # no overlap, exact fit
    ],
)
def test_tile_grid_cases(size: tuple[int, int], tile: int, overlap: int, expected: list[Tile]) -> None:
    assert tile_grid(*size, tile=tile, overlap=overlap) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 10, 8, 2), "image size must be positive, got 0x10"),  # empty image
        ((10, 10, 0, 0), "tile size must be positive, got 0"),  # zero tile
        ((10, 10, 8, 8), r"overlap must be .* smaller than the tile \(8\), got 8"),  # overlap = tile
        ((10, 10, 8, -1), "got -1"),  # negative overlap
        ((10.5, 10, 8, 2), "width must be an integer, got 10.5"),  # float size
    ],
)
def test_tile_grid_rejects_bad_arguments_saying_what_it_got(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tile_grid(*args)


@settings(max_examples=150, deadline=None)
@given(
    w=st.integers(1, 500),
    h=st.integers(1, 500),
    tile=st.integers(4, 128),
    data=st.data(),
)
def test_tile_grid_covers_the_image_with_full_tiles_and_the_overlap(w: int, h: int, tile: int, data) -> None:
    overlap = data.draw(st.integers(0, tile - 1))
    grid = tile_grid(w, h, tile, overlap)
    covered = np.zeros((h, w), dtype=bool)
    for t in grid:
        assert 0 <= t.x0 < t.x1 <= w and 0 <= t.y0 < t.y1 <= h
        assert (t.width, t.height) == (min(tile, w), min(tile, h))
        covered[t.y0 : t.y1, t.x0 : t.x1] = True
    assert covered.all()
    xs = sorted({t.x0 for t in grid})
    ys = sorted({t.y0 for t in grid})
    assert len(grid) == len(xs) * len(ys)
    for starts, size in ((xs, min(tile, w)), (ys, min(tile, h))):
        assert all(b - a <= size - overlap for a, b in itertools.pairwise(starts))


# --- cutting -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("box", "min_visible", "expected"),
    [
        ((10, 10, 20, 20), 0.5, (0, 0, 10, 10)),  # inside: only moved to tile coordinates
        ((5, 10, 15, 20), 0.5, (-0.5, 0, 5, 10)),  # 5.5 of 10 px visible: kept, clipped at the edge (-0.5)
        ((5, 10, 15, 20), 0.6, None),  # the same box, 55 % visible, below 0.6: dropped
        ((-20, 10, -10, 20), 0.0, None),  # wholly outside: dropped even with min_visible 0
        ((50, 50, 50, 50), 0.5, (40, 40, 40, 40)),  # zero-area box inside the tile: kept
    ],
)
def test_cut_boxes_cases(box: tuple, min_visible: float, expected: tuple | None) -> None:
    tile = Tile(10, 10, 110, 110)
    out = cut_boxes(Boxes([box], [3], score=[0.9]), tile, min_visible)
    if expected is None:
        assert len(out) == 0
    else:
        np.testing.assert_allclose(out.xyxy[0], expected)
        assert out.cls.tolist() == [3] and out.score is not None and out.score.tolist() == [0.9]


def test_cut_boxes_validates_min_visible() -> None:
    with pytest.raises(ValueError, match=r"min_visible must be between 0 and 1, got 1\.5"):
        cut_boxes(Boxes.empty(), Tile(0, 0, 1, 1), 1.5)


def test_cut_points_keeps_the_points_of_the_tile_in_tile_coordinates() -> None:
    pts = Points([[9.4, 20], [9.5, 20], [108.9, 50], [109.5, 50], [50, 10]], [0, 1, 2, 3, 4])
    out = cut_points(pts, Tile(10, 10, 110, 110))
    assert out.cls.tolist() == [1, 2, 4]  # -0.5 is the tile's left edge (in); 99.5 its right edge (out)
    np.testing.assert_allclose(out.xy, [[-0.5, 10], [98.9, 40], [40, 0]])


# --- ignore regions ----------------------------------------------------------------------------------


def test_blank_ignored_fills_the_ignore_region_black() -> None:
    image = np.full((4, 6, 3), 200, dtype=np.uint8)
    mask = np.full((4, 6), 255, dtype=np.uint8)
    mask[:, :2] = 0
    out = blank_ignored(image, mask)
    assert (out[:, :2] == 0).all() and (out[:, 2:] == 200).all()
    assert (image == 200).all()  # not in place unless asked
    assert blank_ignored(image, None) is not image


def test_blank_ignored_rejects_a_mask_of_another_size() -> None:
    with pytest.raises(ValueError, match=r"mask must be a single-channel 6x4 array .* got shape \(4, 5\)"):
        blank_ignored(np.zeros((4, 6, 3), np.uint8), np.zeros((4, 5), np.uint8))


def test_ignored_fractions() -> None:
    mask = np.full((10, 20), 255, dtype=np.uint8)
    mask[:, :5] = 0
    fractions = ignored_fractions(mask, [Tile(0, 0, 10, 10), Tile(10, 0, 20, 10)])
    assert fractions.tolist() == [0.5, 0.0]
    assert ignored_fractions(None, [Tile(0, 0, 1, 1)]).tolist() == [0.0]


# --- properties: cut every tile, then merge back -----------------------------------------------------


@st.composite
def scenes(draw):  # an image, a grid whose overlap is at least the largest box, and separated points
    w, h = draw(st.integers(1, 300)), draw(st.integers(1, 300))
    tile = draw(st.integers(24, 96))
    overlap = draw(st.integers(1, tile // 2))  # a larger overlap only adds tiles (and test time)
    sizes = draw(st.lists(st.floats(1, overlap), min_size=2, max_size=2))
    raw = draw(st.lists(st.tuples(st.floats(-0.5, w - 0.5), st.floats(-0.5, h - 0.5), st.integers(0, 1)), max_size=40))
    kept: list[tuple[float, float, int]] = []
    for x, y, c in raw:  # distinct objects: boxes of two points never overlap
        if all(max(abs(x - a), abs(y - b)) >= max(sizes) for a, b, _ in kept):
            kept.append((x, y, c))
    pts = Points([(x, y) for x, y, _ in kept], [c for *_, c in kept]) if kept else Points.empty()
    return (w, h), tile, overlap, sizes, pts


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenes(), st.floats(0.05, 1.0))
def test_every_box_is_whole_in_some_tile_and_no_box_crosses_a_tile_edge(scene, min_visible: float) -> None:
    (w, h), tile, overlap, sizes, pts = scene
    boxes = points_to_boxes(pts, sizes, (w, h))
    grid = tile_grid(w, h, tile, overlap)
    whole = np.zeros(len(boxes), dtype=bool)
    for t in grid:
        cut = cut_boxes(boxes, t, min_visible)
        assert np.all(cut.xyxy[:, [0, 1]] >= -0.5) and np.all(cut.xyxy[:, 2] <= t.width - 0.5)
        assert np.all(cut.xyxy[:, 3] <= t.height - 0.5)
        back = cut.xyxy + np.tile(t.offset, 2)
        whole |= np.any(np.all(np.isclose(boxes.xyxy[:, None], back[None]), axis=2), axis=1)
    assert whole.all()  # every point's box is kept whole in at least one tile


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenes())
def test_merging_the_tile_labels_gives_back_the_original_boxes(scene) -> None:
    (w, h), tile, overlap, sizes, pts = scene
    boxes = points_to_boxes(pts, sizes, (w, h))
    pieces = [(t, cut_boxes(boxes, t, 0.5)) for t in tile_grid(w, h, tile, overlap)]
    merged = merge_pieces(pieces)
    key = lambda b: np.lexsort(np.column_stack([b.xyxy, b.cls]).T[::-1])  # noqa: E731
    assert len(merged) == len(boxes)
    np.testing.assert_allclose(merged.xyxy[key(merged)], boxes.xyxy[key(boxes)], atol=1e-9)
    assert merged.cls[key(merged)].tolist() == boxes.cls[key(boxes)].tolist()
