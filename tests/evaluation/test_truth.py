"""Which photos are evaluated, with which ground truth: from points.csv or a built data set; bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rookery.data.classes import Classes
from rookery.data.dataset import BuildParams, build_dataset
from rookery.errors import InputError
from rookery.evaluation import from_dataset, from_points, scaled_options
from rookery.evaluation.detection import box_map, split_dirs
from rookery.evaluation.truth import class_mismatch
from rookery.inference import PredictOptions


def _points(survey, *extra: str) -> Path:
    """points.csv of the survey with extra rows appended."""
    path = survey.points.parent / "points_more.csv"
    path.write_text(survey.points.read_text() + "".join(f"{row}\n" for row in extra))
    return path


def test_from_points_counts_points_inside_masks(square_survey) -> None:
    classes = Classes.load(square_survey.classes)
    # a point off the photo (-40, 10) and a photo named but absent ("ghost") are not counted
    points = _points(square_survey, "a,-40,10,red", "ghost,5,5,green")
    s = from_points(points, square_survey.images, classes, square_survey.masks, workers=1)
    assert {p.name: list(p.truth) for p in s.photos} == square_survey.truth
    assert [(k.item, "no image of that name" in k.reason) for k in s.skipped] == [("ghost", True)]
    assert all(p.mask == square_survey.masks / f"{p.name}.png" and p.split is None for p in s.photos)
    # without masks every point inside the photo counts
    s = from_points(points, square_survey.images, classes, workers=1)
    assert {p.name: list(p.truth) for p in s.photos} == square_survey.drawn
    assert all(p.mask is None for p in s.photos)


def test_from_points_reports_a_corrupt_mask_and_goes_on(square_survey) -> None:
    (square_survey.masks / "a.png").write_bytes(b"not a png")
    (square_survey.images / "c.png").write_bytes(b"not a png either")  # no mask: the photo is read
    (square_survey.masks / "c.png").unlink()
    s = from_points(square_survey.points, square_survey.images, Classes.load(square_survey.classes),
                    square_survey.masks, workers=2)  # fmt: skip
    assert [p.name for p in s.photos] == ["b"]
    assert {k.item: k.reason for k in s.skipped} == {
        "a": "a.png is not a readable image (corrupt or not an image file)",
        "c": "c.png is not a readable image (corrupt or not an image file)",
    }


@pytest.fixture
def square_dataset(square_survey, tmp_path: Path) -> Path:
    """The square survey built into a data set: 3 photos split 1/1/1."""
    out = tmp_path / "ds"
    build_dataset(
        square_survey.points, square_survey.images, Classes.load(square_survey.classes), out,
        masks=square_survey.masks, params=BuildParams(split=(0.34, 0.33, 0.33), tile=96, overlap=32), workers=1,
    )  # fmt: skip
    return out


def test_from_dataset_takes_the_split_and_the_manifest_counts(square_survey, square_dataset: Path) -> None:
    manifest, s = from_dataset(square_dataset, "all")
    assert manifest.images_dir == str(square_survey.images.resolve())
    assert manifest.masks_dir == str(square_survey.masks.resolve())
    assert {p.name: list(p.truth) for p in s.photos} == square_survey.truth
    assert {p.name: p.split for p in s.photos} == manifest.split_of()
    assert not s.skipped and not s.warnings and s.scale == 1.0 and s.classes == ["red", "green"]
    for split in ("train", "val", "test"):
        _, one = from_dataset(square_dataset, split)
        assert [p.split for p in one.photos] == [split]


def test_from_dataset_with_moved_or_changed_photos(square_survey, square_dataset: Path, tmp_path: Path) -> None:
    moved = tmp_path / "moved"
    shutil.move(square_survey.images, moved)
    with pytest.raises(InputError, match="does not exist; pass --images"):
        from_dataset(square_dataset, "all")
    (moved / "a.png").write_bytes((moved / "a.png").read_bytes() + b"\0")  # not the photo it was built from
    (moved / "b.png").unlink()
    _, s = from_dataset(square_dataset, "all", images=moved)
    assert sorted(p.name for p in s.photos) == ["a", "c"]
    assert [k.item for k in s.skipped] == ["b"] and "no photo b.png" in s.skipped[0].reason
    assert s.warnings == [
        "1 photo(s) differ from those the data set was built from (a); their ground truth may not match them"
    ]


def test_from_dataset_bad_input(square_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a rookery data set"):
        from_dataset(tmp_path, "all")
    with pytest.raises(InputError, match="split must be one of"):
        from_dataset(square_dataset, "dev")
    # a manifest written before the source folders were recorded still loads, and says what to pass
    raw = json.loads((square_dataset / "manifest.json").read_text())
    del raw["images_dir"], raw["masks_dir"]
    (square_dataset / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(InputError, match="pass --images"):
        from_dataset(square_dataset, "all")
    # with --images only, the masks it was built with are asked for
    with pytest.raises(InputError, match="pass --masks"):
        from_dataset(square_dataset, "all", images=tmp_path)
    # a split without photos
    raw["photos"] = [p for p in raw["photos"] if p["split"] != "test"]
    (square_dataset / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(InputError, match="no photo in the 'test' split"):
        from_dataset(square_dataset, "test")


@pytest.mark.parametrize(
    ("model", "data", "message"),
    [
        (["a", "b"], ["a", "b"], None),  # the same classes in the same order
        (["b", "a"], ["a", "b"], "in another order"),  # swapped: counts would go to the wrong class
        (["a", "b", "c"], ["a", "b"], "differ from the data's"),  # a class more
    ],
)
def test_class_mismatch(model: list[str], data: list[str], message: str | None) -> None:
    got = class_mismatch(model, data)
    assert got is None if message is None else message in got


@pytest.mark.parametrize(
    ("options", "scale", "expected"),
    [
        (PredictOptions(tile=640, overlap=64, imgsz=640), 1.0, (640, 64, 640)),  # unchanged
        (PredictOptions(tile=640, overlap=64, imgsz=640), 0.5, (1280, 128, 640)),  # half-size data: 2x the tile
        (PredictOptions(tile=128, overlap=16, imgsz=64), 0.25, (512, 64, 64)),  # the network input stays
        (PredictOptions(tile=640, overlap=64), 2.0, (320, 32, 640)),  # upscaled data; imgsz was the tile
    ],
)
def test_scaled_options(options: PredictOptions, scale: float, expected: tuple[int, int, int]) -> None:
    o = scaled_options(options, scale)
    assert (o.tile, o.overlap, o.imgsz) == expected
    assert o.scale * o.tile == (options.imgsz or options.tile)


def test_box_map_bad_input(square_dataset: Path, tmp_path: Path) -> None:
    assert split_dirs(square_dataset, "all") == [f"images/{s}" for s in ("train", "val", "test")
                                                  if any((square_dataset / "images" / s).iterdir())]  # fmt: skip
    with pytest.raises(InputError, match="split must be one of"):
        split_dirs(square_dataset, "dev")
    with pytest.raises(InputError, match=r"needs Ultralytics \.pt weights"):
        box_map(tmp_path / "model.onnx", square_dataset, ["red", "green"])
    empty = tmp_path / "empty"
    (empty / "images" / "test").mkdir(parents=True)
    (tmp_path / "m.pt").write_bytes(b"x")
    with pytest.raises(InputError, match="no tiles in the 'test' split"):
        box_map(tmp_path / "m.pt", empty, ["red", "green"], split="test")


def test_scaled_options_keep_the_overlap_below_the_tile() -> None:
    o = scaled_options(PredictOptions(tile=8, overlap=7), 4.0)
    assert (o.tile, o.overlap, o.imgsz) == (2, 1, 8)
