"""`rookery data convert` through the real Typer app."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from rookery.cli import app
from rookery.data.classes import Classes
from rookery.data.formats import FORMATS_IN, FORMATS_OUT

runner = CliRunner()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """classes.yaml, two images and a COCO file with a box on one and a point on the other."""
    Classes.from_dict(
        {"adult_males": {"color": [243, 8, 5], "box": 40}, "pups": {"color": [38, 174, 21], "box": 10}}
    ).save(tmp_path / "classes.yaml")
    (tmp_path / "images").mkdir()
    for name, (w, h) in {"a": (200, 100), "b": (50, 50)}.items():
        assert cv2.imwrite(str(tmp_path / "images" / f"{name}.png"), np.zeros((h, w), np.uint8))
    doc = {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 200, "height": 100},
            {"id": 2, "file_name": "b.png"},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 100, 50]},
            {"id": 2, "image_id": 2, "category_id": 2, "keypoints": [25, 25, 2]},
        ],
        "categories": [{"id": 1, "name": "adult_males"}, {"id": 2, "name": "pups"}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    return tmp_path


def _plain(output: str) -> str:
    """Typer's rich panels without their borders and line wrapping."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", output).split())


def _convert(project: Path, *args: str) -> list[str]:
    return ["data", "convert", "--classes", str(project / "classes.yaml"), *args]


def test_coco_to_yolo(project: Path) -> None:
    args = _convert(project, "--from", "coco", "--input", str(project / "ann.json"), "--to", "yolo")
    result = runner.invoke(app, [*args, "--out", str(project / "labels"), "--images", str(project / "images")])
    assert result.exit_code == 0, result.output
    # the box keeps its place; the pup point becomes a 10 px square (pups' box side) on the 50x50 image
    assert (project / "labels" / "a.txt").read_text() == "0 0.25 0.25 0.5 0.5\n"
    assert (project / "labels" / "b.txt").read_text() == "1 0.5 0.5 0.2 0.2\n"
    assert f"2 image(s) written to {project / 'labels'}, 0 skipped" in result.output


def test_yolo_with_a_broken_file_to_csv(project: Path) -> None:
    labels = project / "labels"
    labels.mkdir()
    (labels / "a.txt").write_text("0 0.25 0.25 0.5 0.5\n")
    (labels / "b.txt").write_text("1 0.5 0.5\n")
    out = project / "points.csv"
    args = [
        "--from",
        "yolo",
        "--input",
        str(labels),
        "--to",
        "csv",
        "--out",
        str(out),
        "--images",
        str(project / "images"),
    ]
    result = runner.invoke(app, _convert(project, *args))
    assert result.exit_code == 0, result.output
    # the broken file is one line naming it and the reason; the good one is written
    assert "skipped b: b.txt: line 1: expected 'class cx cy w h'" in result.output
    assert out.read_text().splitlines() == ["image,x,y,class", "a,49.5,24.5,adult_males"]
    assert f"1 image(s) written to {out}, 1 skipped" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # a COCO file that is not JSON
        (
            ["--from", "coco", "--input", "{bad}", "--to", "csv"],
            "error: bad.json is not valid JSON (line 1, column 2",
        ),
        # YOLO without the images it needs for sizes
        (
            ["--from", "yolo", "--input", "{images}", "--to", "csv"],
            "error: reading YOLO labels needs the images folder",
        ),
        # CSV has no sizes, and COCO needs them
        (["--from", "csv", "--input", "{csv}", "--to", "coco"], "error: image 'a' has no known size"),
    ],
)
def test_bad_input_exits_1_with_one_line(project: Path, args: list[str], message: str) -> None:
    (project / "bad.json").write_text("{bad")
    (project / "p.csv").write_text("image,x,y,class\na,1,1,pups\n")
    paths = {
        "{bad}": str(project / "bad.json"),
        "{images}": str(project / "images"),
        "{csv}": str(project / "p.csv"),
    }
    args = [paths.get(a, a) for a in args]
    result = runner.invoke(app, _convert(project, *args, "--out", str(project / "out")))
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [result.output.strip()]
    assert result.output.startswith(message)


def test_unknown_format_is_a_usage_error(project: Path) -> None:
    args = ["--from", "voc", "--input", str(project / "ann.json"), "--to", "csv", "--out", str(project / "o")]
    result = runner.invoke(app, _convert(project, *args))
    assert result.exit_code == 2
    assert "'voc' is not one of csv, coco, yolo, cvat, labelstudio" in _plain(result.output)


def test_help_lists_every_format() -> None:
    # the help text spells the formats out without importing them; keep it in step with the library
    result = runner.invoke(app, ["data", "convert", "--help"])
    assert result.exit_code == 0
    text = _plain(result.output)
    assert "csv, coco, yolo, cvat or labelstudio" in text and "csv, coco or yolo" in text
    assert set(FORMATS_IN) == {"csv", "coco", "yolo", "cvat", "labelstudio"}
    assert set(FORMATS_OUT) == {"csv", "coco", "yolo"}


def test_nothing_written_is_an_error(project: Path) -> None:
    # every image is missing from --images, so none has a size for COCO: each is reported, then exit 1
    (project / "p.csv").write_text("image,x,y,class\nx,1,1,pups\ny,2,2,pups\n")
    args = [
        "--from",
        "csv",
        "--input",
        str(project / "p.csv"),
        "--to",
        "coco",
        "--out",
        str(project / "o.json"),
    ]
    result = runner.invoke(app, _convert(project, *args, "--images", str(project / "images")))
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["skipped x", "skipped y", "error"]
    assert "no image was written" in lines[-1] and not (project / "o.json").exists()
