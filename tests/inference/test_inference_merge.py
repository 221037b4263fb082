"""Decoding raw YOLO output and merging tile detections: small hand-made cases with exact answers."""

from __future__ import annotations

import numpy as np
import pytest

from rookery.data.tiling import Tile
from rookery.errors import InputError
from rookery.inference.decode import decode, padded_size, stack_tiles, to_input
from rookery.inference.merge import cut_flags, cut_flags_torch, drop_ignored, merge_detections, merge_nms_torch
from rookery.types import Boxes
from tile_merge import merge_pieces


def _raw(tiles: list[list[tuple[float, ...]]], nc: int, anchors: int) -> np.ndarray:
    """(N, 4 + nc, anchors) raw output with the given (cx, cy, w, h, cls, score) in the first anchors."""
    raw = np.zeros((len(tiles), 4 + nc, anchors), np.float32)
    for t, dets in enumerate(tiles):
        for a, (cx, cy, w, h, c, s) in enumerate(dets):
            raw[t, :4, a] = cx, cy, w, h
            raw[t, 4 + c, a] = s
    return raw


def test_to_input_is_rgb_nchw_in_unit_range() -> None:
    batch = np.zeros((2, 4, 6, 3), np.uint8)
    batch[..., 0], batch[..., 1], batch[..., 2] = 10, 20, 255  # B, G, R
    x = to_input(batch)
    assert x.shape == (2, 3, 4, 6) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 0], 1.0)  # red first
    np.testing.assert_allclose(x[:, 2], 10 / 255)


def test_stack_tiles_pads_bottom_right_to_the_stride() -> None:
    tiles = [(30, 50), (70, 20)]  # (height, width) of each crop
    size = padded_size(tiles, 32)
    assert size == (96, 64)
    crops = [np.full((30, 50, 3), 7, np.uint8), np.full((70, 20, 3), 9, np.uint8)]
    batch = stack_tiles(crops, size)
    assert batch.shape == (2, 96, 64, 3)
    assert (batch[0, :30, :50] == 7).all()
    assert (batch[0, 30:] == 114).all() and (batch[0, :, 50:] == 114).all()
    assert padded_size(tiles, 32, fixed=(640, 640)) == (640, 640)


def test_decode_filters_by_confidence_then_nms_per_tile_and_class() -> None:
    raw = _raw(
        [
            [
                (20, 20, 10, 10, 0, 0.9),  # kept
                (21, 20, 10, 10, 0, 0.8),  # same class, IoU 0.82: suppressed
                (21, 20, 10, 10, 1, 0.7),  # other class at the same place: kept
                (50, 50, 10, 10, 0, 0.1),  # below conf
            ],
            [(21, 20, 10, 10, 0, 0.8)],  # the same box in another tile: kept (NMS is per tile)
        ],
        nc=2,
        anchors=8,
    )
    det = decode(raw, np.array([[64, 64], [64, 64]]), num_classes=2, conf=0.25, iou=0.5)
    got = sorted(zip(det.tile.tolist(), det.cls.tolist(), np.round(det.score, 3).tolist(), strict=True))
    assert got == [(0, 0, 0.9), (0, 1, 0.7), (1, 0, 0.8)]
    first = det.xyxy[(det.tile == 0) & (det.cls == 0)][0]
    np.testing.assert_allclose(first, [15, 15, 25, 25])


def test_decode_clips_to_the_tile_and_drops_boxes_left_in_the_padding() -> None:
    # A 40x30 px tile padded to 64x64: a box reaching past it is clipped, one wholly in the padding goes.
    raw = _raw([[(35, 10, 20, 10, 0, 0.9), (55, 50, 6, 6, 0, 0.9)]], nc=1, anchors=4)
    det = decode(raw, np.array([[40, 30]]), num_classes=1, conf=0.25, iou=0.5)
    np.testing.assert_allclose(det.xyxy, [[25, 5, 40, 15]])


def test_decode_has_no_cap_on_detections() -> None:
    n = 2000  # far beyond Ultralytics' default max_det of 300
    raw = np.zeros((1, 5, n), np.float32)
    raw[0, 0] = np.arange(n) % 50 * 12 + 6  # a 50 x 40 grid of disjoint 10 px boxes
    raw[0, 1] = np.arange(n) // 50 * 12 + 6
    raw[0, 2:4] = 10
    raw[0, 4] = 0.9
    det = decode(raw, np.array([[640, 640]]), num_classes=1, conf=0.25, iou=0.5)
    assert len(det.tile) == n


def test_decode_rejects_an_output_that_is_not_a_detection_head() -> None:
    with pytest.raises(InputError, match="only YOLO detection heads"):
        decode(np.zeros((1, 300, 6), np.float32), np.array([[64, 64]]), num_classes=2, conf=0.25, iou=0.5)


@pytest.mark.parametrize(
    ("box", "inner", "cut"),
    [
        ((0, 10, 20, 30), (True, True, True, True), True),  # touches an inner left edge
        ((0, 10, 20, 30), (False, True, True, True), False),  # the left edge is the photo border
        ((10, 10, 20, 30), (True, True, True, True), False),  # well inside
        ((40, 40, 61, 50), (True, True, True, True), True),  # within the margin of the right edge
        ((40, 40, 50, 64), (True, True, True, False), False),  # bottom edge is the photo border
    ],
)
def test_cut_flags(box: tuple[float, ...], inner: tuple[bool, ...], cut: bool) -> None:
    got = cut_flags(np.array([box], float), np.array([[64, 64]], float), np.array([inner]))
    assert got.tolist() == [cut]


def _merge(rows: list[tuple[float, float, float, float, int, float, bool]], mode: str) -> Boxes:
    a = np.array(rows, dtype=np.float64)
    return merge_detections(a[:, :4], a[:, 4].astype(np.int64), a[:, 5], a[:, 6].astype(bool), mode, 0.5)


WHOLE = (100, 100, 130, 130)
FRAGMENT = (100, 100, 108, 130)  # the left 8 px of the same object, cut by a tile edge: IoU 0.27
NEXT = (125, 100, 155, 130)  # a neighbour overlapping WHOLE by 5 px
DUP = (101, 101, 131, 131)  # a near-duplicate of WHOLE (IoU 0.88)
LEFT, RIGHT = (100, 100, 140, 130), (120, 100, 170, 130)  # two cut views of one 70 px object


MERGE_CASES = [
        # whole + fragment (cut): one object, and the whole box wins even with a lower score
        ([(*WHOLE, 0, 0.6, False), (*FRAGMENT, 0, 0.9, True)], "nms", [(*WHOLE, 0.6)]),
        # the same, the fragment not known as cut: plain IoU NMS keeps both (the double count cut flags fix)
        ([(*WHOLE, 0, 0.6, False), (*FRAGMENT, 0, 0.9, False)], "nms", [(*FRAGMENT, 0.9), (*WHOLE, 0.6)]),
        # greedy: the fragment merges into the whole box, which takes the higher score
        ([(*WHOLE, 0, 0.6, False), (*FRAGMENT, 0, 0.9, True)], "greedy", [(*WHOLE, 0.9)]),
        # two fragments of one object larger than the overlap (both cut): greedy keeps their union
        ([(*LEFT, 0, 0.8, True), (*RIGHT, 0, 0.7, True)], "greedy", [(100, 100, 170, 130, 0.8)]),
        # the same object in two classes: never merged across classes
        ([(*WHOLE, 0, 0.6, False), (*FRAGMENT, 1, 0.9, True)], "greedy", [(*FRAGMENT, 0.9), (*WHOLE, 0.6)]),
        # two whole neighbours overlapping a little: both kept in both modes
        ([(*WHOLE, 0, 0.6, False), (*NEXT, 0, 0.9, False)], "nms", [(*NEXT, 0.9), (*WHOLE, 0.6)]),
        ([(*WHOLE, 0, 0.6, False), (*NEXT, 0, 0.9, False)], "greedy", [(*NEXT, 0.9), (*WHOLE, 0.6)]),
        # near-duplicates of whole boxes: the better one stays
        ([(*WHOLE, 0, 0.6, False), (*DUP, 0, 0.9, False)], "nms", [(*DUP, 0.9)]),
    ]  # fmt: skip


@pytest.mark.parametrize(("rows", "mode", "expected"), MERGE_CASES)
def test_merge_detections(rows: list, mode: str, expected: list) -> None:
    merged = _merge(rows, mode)
    got = sorted((*b, s) for b, s in zip(merged.xyxy.tolist(), merged.score.tolist(), strict=True))
    np.testing.assert_allclose(got, sorted(expected))


@pytest.mark.parametrize(("rows", "expected"), [(r, e) for r, mode, e in MERGE_CASES if mode == "nms"])
def test_the_torch_fast_path_keeps_the_same_boxes_on_the_table(rows: list, expected: list) -> None:
    torch = pytest.importorskip("torch")
    a = np.array(rows, dtype=np.float64)
    xyxy, cls, score, cut = a[:, :4], a[:, 4].astype(np.int64), a[:, 5], a[:, 6].astype(bool)
    keep = merge_nms_torch(*(torch.from_numpy(v) for v in (xyxy, cls, score, cut)), 0.5).numpy()
    assert sorted((*xyxy[i], score[i]) for i in keep) == sorted(map(tuple, np.array(expected, float)))
    tile_wh, inner = np.full((len(a), 2), 64.0), np.ones((len(a), 4), bool)
    flags = cut_flags_torch(*(torch.from_numpy(v) for v in (xyxy % 64, tile_wh, inner))).numpy()
    np.testing.assert_array_equal(flags, cut_flags(xyxy % 64, tile_wh, inner))


def test_the_torch_seam_merge_is_merge_py_on_random_crowds() -> None:
    torch = pytest.importorskip("torch")

    rng = np.random.default_rng(0)
    for trial in range(20):
        n = int(rng.integers(1, 400))
        centre = rng.uniform(0, 300, size=(n, 2))
        side = rng.uniform(4, 40, size=(n, 2))
        xyxy = np.concatenate([centre - side / 2, centre + side / 2], axis=1)
        cls = rng.integers(0, 2, n)
        score = np.round(rng.uniform(0.2, 1.0, n), 2)  # rounded: ties, broken by input order in both
        cut = rng.uniform(size=n) < 0.3
        want = merge_detections(xyxy, cls, score, cut, "nms", 0.5)
        keep = merge_nms_torch(torch.from_numpy(xyxy), torch.from_numpy(cls), torch.from_numpy(score),
                               torch.from_numpy(cut), 0.5).numpy()  # fmt: skip
        np.testing.assert_array_equal(xyxy[keep], want.xyxy, err_msg=f"trial {trial}")


def test_merge_of_tile_pieces_prefers_the_higher_score_and_keeps_other_classes() -> None:
    a, b = Tile(0, 0, 100, 100), Tile(50, 0, 150, 100)
    pieces = [
        (a, Boxes([[60, 10, 80, 30], [60, 10, 80, 30]], [0, 1], score=[0.6, 0.8])),
        (b, Boxes([[10, 10, 30, 30]], [0], score=[0.9])),  # the same class-0 object, seen from tile b
    ]
    merged = merge_pieces(pieces)
    assert merged.cls.tolist() == [0, 1]
    assert merged.score is not None and merged.score.tolist() == [0.9, 0.8]
    np.testing.assert_allclose(merged.xyxy, [[60, 10, 80, 30], [60, 10, 80, 30]])


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("greedy", 1),  # a 40 %-piece inside the whole box: intersection over the smaller box = 1, merged
        ("nms", 2),  # not flagged as cut, its IoU is 0.4, below 0.5: both kept
    ],
)
def test_merge_of_tile_pieces_by_mode(mode: str, expected: int) -> None:
    t = Tile(0, 0, 100, 100)
    pieces = [(t, Boxes([[0, 0, 10, 10], [0, 0, 4, 10]], [0, 0]))]
    assert len(merge_pieces(pieces, mode)) == expected


def test_merge_of_nothing_is_empty() -> None:
    assert len(merge_pieces([])) == 0
    assert len(merge_pieces([(Tile(0, 0, 1, 1), Boxes.empty())])) == 0


def test_merge_scales_to_thousands_with_a_huge_false_positive() -> None:
    # 5,000 disjoint objects and their cut fragments, plus one photo-sized box of another class.
    xs, ys = np.meshgrid(np.arange(100) * 40.0, np.arange(50) * 40.0)
    whole = np.stack([xs.ravel(), ys.ravel(), xs.ravel() + 30, ys.ravel() + 30], axis=1)
    fragment = whole.copy()
    fragment[:, 2] = fragment[:, 0] + 10
    xyxy = np.concatenate([whole, fragment, [[0, 0, 4000, 2000]]])
    cls = np.r_[np.zeros(10_000, np.int64), 1]
    score = np.r_[np.full(5000, 0.6), np.full(5000, 0.9), 0.3]
    cut = np.r_[np.zeros(5000, bool), np.ones(5000, bool), False]
    for mode in ("nms", "greedy"):
        merged = merge_detections(xyxy, cls, score, cut, mode, 0.5)
        assert merged.counts(2).tolist() == [5000, 1]


def test_drop_ignored_uses_the_box_centre() -> None:
    mask = np.full((100, 100), 255, np.uint8)
    mask[:, :50] = 0
    xyxy = np.array([[10, 10, 30, 30], [40, 10, 70, 30], [60, 60, 90, 90]], float)
    boxes = Boxes(xyxy, [0, 0, 1], [0.9] * 3)
    kept = drop_ignored(boxes, mask)
    np.testing.assert_allclose(kept.xyxy, [[40, 10, 70, 30], [60, 60, 90, 90]])  # centre x 55 counts
    assert drop_ignored(boxes, None) is boxes
