"""The Predictor's plumbing on the fake square-finding network: seams, no cap, batching, masks, bad input."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from inference_fakes import SIDE, square_boxes, square_photo

from rookery.data.tiling import tile_grid
from rookery.errors import ConfigError, InputError
from rookery.imaging import write_image
from rookery.inference import Predictor
from rookery.types import Boxes, Skipped

MakePredictor = Callable[..., Predictor]


def _sorted(boxes: Boxes) -> np.ndarray:
    return boxes.xyxy[np.lexsort((boxes.xyxy[:, 1], boxes.xyxy[:, 0]))]


def _seam_squares() -> np.ndarray:
    """Squares across every seam of the 640/64 grid of a 1200x1000 photo (inner edges x 560, 640; y 360, 640).

    Each crosses an edge by 1 to 19 of its 20 px, so one tile sees it whole and the next only a fragment.
    """
    rows = []
    for j, d in enumerate((1, 5, 10, 15, 19)):
        for k, edge in enumerate((560, 640)):
            rows.append((edge - d, 40 + 30 * j, (j + k) % 2))  # across a vertical seam
        for k, edge in enumerate((360, 640)):
            rows.append((40 + 30 * j, edge - d, (j + k + 1) % 2))  # across a horizontal seam
    corners = [(550, 350, 0), (635, 635, 1), (545, 637, 0), (621, 359, 1)]  # across two seams at once
    return np.array(rows + corners)


SEAM_SQUARES = _seam_squares()


def test_seam_squares_really_cross_seams() -> None:
    # Guard for the test below: every square is cut by some tile of the grid.
    tiles = tile_grid(1200, 1000, 640, 64)
    x_edges = {t.x0 for t in tiles} | {t.x1 for t in tiles}
    y_edges = {t.y0 for t in tiles} | {t.y1 for t in tiles}
    assert (x_edges, y_edges) == ({0, 560, 640, 1200}, {0, 360, 640, 1000})
    for x, y, _ in SEAM_SQUARES:
        assert any(x < e < x + SIDE for e in x_edges) or any(y < e < y + SIDE for e in y_edges), (x, y)


@pytest.mark.parametrize("merge", ["nms", "greedy"])
@pytest.mark.parametrize(
    ("tile", "overlap", "batch"),
    [
        (640, 64, 8),  # the default grid: squares sit across its seams
        (640, 64, 1),  # one tile per network call: the same answer
        (320, 32, 3),  # a finer grid: more seams, a batch that does not divide the tiles
    ],
)
def test_objects_across_seams_are_counted_once(
    fake_predictor: MakePredictor, merge: str, tile: int, overlap: int, batch: int
) -> None:
    photo = square_photo(1200, 1000, SEAM_SQUARES)
    predictor = fake_predictor(tile=tile, overlap=overlap, batch=batch, merge=merge)
    boxes = predictor.predict(photo)
    assert len(boxes) == len(SEAM_SQUARES)
    np.testing.assert_allclose(_sorted(boxes), square_boxes(SEAM_SQUARES))  # whole boxes, not fragments
    expected_classes = np.bincount(SEAM_SQUARES[:, 2], minlength=2)
    assert predictor.counts(boxes).tolist() == expected_classes.tolist()
    n_tiles = len(tile_grid(1200, 1000, tile, overlap))
    calls = predictor.backend.calls  # type: ignore[attr-defined]
    assert len(calls) == -(-n_tiles // batch)  # one network call per batch, never one per tile
    assert sum(c[0] for c in calls) == n_tiles


def test_without_cut_flags_plain_nms_would_count_fragments(
    fake_predictor: MakePredictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The counterfactual that makes the test above meaningful: the fake network does report fragments.
    import rookery.inference.pipeline as pipeline

    monkeypatch.setattr(pipeline, "cut_flags", lambda xyxy, *_: np.zeros(len(xyxy), bool))
    boxes = fake_predictor(merge="nms").predict(square_photo(1200, 1000, SEAM_SQUARES))
    assert len(boxes) > len(SEAM_SQUARES)


@pytest.mark.parametrize("merge", ["nms", "greedy"])
def test_thousands_of_objects_are_not_capped(fake_predictor: MakePredictor, merge: str) -> None:
    xs, ys = np.meshgrid(5 + 28 * np.arange(71), 5 + 28 * np.arange(53))
    squares = np.stack([xs.ravel(), ys.ravel(), (xs.ravel() // 28 + ys.ravel() // 28) % 2], axis=1)
    assert len(squares) == 3763  # over 500 per 640 px tile, against Ultralytics' default cap of 300 per image
    boxes = fake_predictor(merge=merge).predict(square_photo(2000, 1500, squares))
    assert len(boxes) == len(squares)
    np.testing.assert_allclose(_sorted(boxes), square_boxes(squares))


def test_a_small_photo_goes_through_whole_padded_to_the_stride(fake_predictor: MakePredictor) -> None:
    squares = np.array([[3, 4, 0], [70, 40, 1]])
    predictor = fake_predictor(tile=640)
    boxes = predictor.predict(square_photo(100, 70, squares))
    np.testing.assert_allclose(_sorted(boxes), square_boxes(squares))
    assert boxes.cls[np.argsort(boxes.xyxy[:, 0])].tolist() == [0, 1]
    assert predictor.backend.calls == [(1, 3, 96, 128)]  # type: ignore[attr-defined]


def test_tiles_of_several_photos_share_batches(fake_predictor: MakePredictor) -> None:
    small = [square_photo(100 + 10 * i, 80, [[10 * i, 5, i % 2]], seed=i) for i in range(3)]
    big = square_photo(1200, 1000, SEAM_SQUARES)  # 4 tiles
    predictor = fake_predictor(batch=8)
    results = predictor.predict_many([*small, big, big])
    assert [len(r) for r in results] == [1, 1, 1, len(SEAM_SQUARES), len(SEAM_SQUARES)]
    np.testing.assert_allclose(results[1].xyxy, square_boxes([[10, 5, 1]]))  # type: ignore[union-attr]
    assert [c[0] for c in predictor.backend.calls] == [8, 3]  # type: ignore[attr-defined]


def test_ignore_mask_drops_detections_and_skips_ignored_tiles(fake_predictor: MakePredictor) -> None:
    xs, ys = np.meshgrid(50 + 100 * np.arange(12), 50 + 100 * np.arange(10))
    squares = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size, np.int64)], axis=1)
    mask = np.full((1000, 1200), 255, np.uint8)
    mask[:, :700] = 0  # the left tile column (x 0-639) is wholly ignored
    predictor = fake_predictor()
    boxes = predictor.predict(square_photo(1200, 1000, squares), mask=mask)
    counted = squares[squares[:, 0] + SIDE / 2 >= 700]
    np.testing.assert_allclose(_sorted(boxes), square_boxes(counted))
    assert sum(c[0] for c in predictor.backend.calls) == 2  # type: ignore[attr-defined]
    # a boolean mask means the same; an all-ignore mask runs nothing
    assert len(predictor.predict(square_photo(1200, 1000, squares), mask=mask >= 128)) == len(counted)
    predictor.backend.calls.clear()  # type: ignore[attr-defined]
    assert len(predictor.predict(square_photo(1200, 1000, squares), mask=np.zeros_like(mask))) == 0
    assert predictor.backend.calls == []  # type: ignore[attr-defined]


def test_overrides_apply_to_one_call(fake_predictor: MakePredictor) -> None:
    predictor = fake_predictor(conf=0.25)
    photo = square_photo(300, 200, [[10, 10, 0]], value=230)  # the fake network scores it 230/255 = 0.90
    assert len(predictor.predict(photo, conf=0.95)) == 0
    assert len(predictor.predict(photo)) == 1
    assert predictor.options.conf == 0.25


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((50, 60), np.uint8), "3-channel"),  # grey
        (np.zeros((50, 60, 4), np.uint8), "3-channel"),  # BGRA
        (np.zeros((50, 60, 3), np.float32), "8-bit"),  # float
        (np.zeros((0, 60, 3), np.uint8), "empty"),  # no pixels
        ("not an array", "does not exist"),  # a path that is not there
    ],
)
def test_bad_photos_raise_one_clear_error(fake_predictor: MakePredictor, image: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        fake_predictor().predict(image)  # type: ignore[arg-type]


def test_a_mask_of_the_wrong_size_is_refused(fake_predictor: MakePredictor) -> None:
    with pytest.raises(InputError, match="single-channel 60x50"):
        fake_predictor().predict(np.zeros((50, 60, 3), np.uint8), mask=np.zeros((50, 61), np.uint8))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"tiles": 512}, "unknown prediction option"),  # a typo
        ({"overlap": 640}, "overlap must be"),  # overlap as large as the tile
        ({"merge": "union"}, "merge must be"),  # an unknown merge mode
        ({"conf": 1.5}, "conf must be"),  # out of range
    ],
)
def test_bad_options_are_config_errors(fake_predictor: MakePredictor, overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        fake_predictor().predict(np.zeros((50, 60, 3), np.uint8), **overrides)


def test_predict_many_skips_bad_photos(fake_predictor: MakePredictor, tmp_path: Path) -> None:
    good = square_photo(300, 200, [[10, 10, 0], [100, 100, 1]])
    write_image(tmp_path / "good.png", good)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg at all")
    images = [good, np.zeros((20, 20), np.uint8), tmp_path / "broken.jpg", tmp_path / "good.png"]
    results = fake_predictor().predict_many(images)
    assert isinstance(results[1], Skipped) and results[1].item == "image 1"
    assert "3-channel" in results[1].reason
    assert isinstance(results[2], Skipped) and results[2].item == "broken.jpg"
    for r in (results[0], results[3]):
        assert isinstance(r, Boxes) and r.counts(2).tolist() == [1, 1]


def test_predict_many_needs_one_mask_per_photo(fake_predictor: MakePredictor) -> None:
    photo = np.zeros((9, 9, 3), np.uint8)
    with pytest.raises(InputError, match="2 images but 1 masks"):
        fake_predictor().predict_many([photo] * 2, masks=[None])  # lists: checked before anything runs
    with pytest.raises(InputError, match="only 1 masks were given"):
        fake_predictor().predict_many(iter([photo] * 2), masks=iter([None]))  # streams: found on the way


def test_stopping_a_stream_early_stops_the_tiling_thread(fake_predictor: MakePredictor) -> None:
    def photos() -> Iterator[np.ndarray]:
        for i in range(1000):
            yield square_photo(200, 100, [[5, 5, i % 2]], seed=i)

    def tiling_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "rookery-tiles"]

    stream = fake_predictor(batch=1).iter_predict(photos())
    index, first = next(stream)
    assert index == 0 and len(first) == 1  # type: ignore[arg-type]
    assert len(tiling_threads()) == 1  # still producing, a bounded number of batches ahead
    stream.close()
    assert tiling_threads() == []


def test_importing_the_package_loads_no_framework() -> None:
    # torch, onnxruntime and ultralytics load only when a backend is opened (a fresh interpreter tells).
    code = "import sys, rookery.inference; print(sorted({'torch', 'onnxruntime', 'ultralytics'} & sys.modules.keys()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_imgsz_resizes_tiles_to_the_training_scale(fake_predictor: MakePredictor) -> None:
    # A model trained with imgsz 640 on 320 px tiles saw objects twice as large: tiles are resized x2 for the
    # network (checked on the batch shapes) and the boxes come back in photo pixels.
    import cv2

    squares = np.array([(x, y, (x // 80 + y // 80) % 2) for x in range(40, 1100, 120) for y in range(40, 900, 120)])
    big = square_photo(1200, 1000, squares)
    photo = cv2.resize(big, (600, 500), interpolation=cv2.INTER_AREA)  # squares of 10 px at even positions
    predictor = fake_predictor(tile=160, overlap=16, imgsz=320)
    boxes = predictor.predict(photo)
    assert {tuple(c[2:]) for c in predictor.backend.calls} == {(320, 320)}  # type: ignore[attr-defined]
    assert len(boxes) == len(squares)
    # pixel-centre coordinates halve around the edges: (x + 0.5) / 2 - 0.5; a resized edge blurs by a pixel
    np.testing.assert_allclose(_sorted(boxes), (square_boxes(squares) + 0.5) / 2 - 0.5, atol=1.0)
