"""`rookery data synth`: writes a survey, prints per-class counts, and maps bad input to exit codes."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from rookery.cli import app
from rookery.data.classes import Classes
from rookery.data.points_csv import read_counts_csv, read_points_csv

runner = CliRunner()
SMALL = ["--images", "2", "--size", "480x360", "--object-scale", "0.5", "--workers", "1"]


def test_synth_writes_a_survey_and_prints_counts(tmp_path):
    out = tmp_path / "survey"
    result = runner.invoke(app, ["data", "synth", "--out", str(out), *SMALL, "--classes", "5", "--format", "png"])
    assert result.exit_code == 0, result.output
    for sub in ("train", "dotted", "masks"):
        assert sorted(p.name for p in (out / sub).iterdir()) == ["0.png", "1.png"]
    classes = Classes.load(out / "classes.yaml")
    assert len(classes) == 5
    counts = read_counts_csv(out / "counts.csv", classes)
    points = read_points_csv(out / "points.csv", classes)
    total = sum(int(c.sum()) for c in counts.values())
    assert total == sum(len(lab.points) for lab in points.values()) > 0
    # The table: every class, and the total over the survey.
    for name in classes.names:
        assert name in result.output
    total_line = next(line for line in result.output.splitlines() if "total" in line)
    assert str(total) in total_line


def test_synth_defaults_to_jpg_and_three_classes(tmp_path):
    result = runner.invoke(app, ["data", "synth", "--out", str(tmp_path), *SMALL])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "train" / "0.jpg").is_file() and (tmp_path / "dotted" / "1.jpg").is_file()
    assert Classes.load(tmp_path / "classes.yaml").names == ["adult_males", "adult_females", "pups"]


@pytest.mark.parametrize(
    "args, option",
    [
        (["--size", "0x0"], "--size"),  # zero width and height
        (["--size", "big"], "--size"),  # not WIDTHxHEIGHT
        (["--images", "0"], "--images"),  # nothing to generate
        (["--classes", "0"], "--classes"),  # no class
        (["--classes", "6"], "--classes"),  # more classes than the palette has
        (["--format", "gif"], "--format"),  # only jpg and png
        (["--object-scale", "0"], "--object-scale"),  # objects need a size
    ],
)
def test_bad_options_are_usage_errors(tmp_path, args, option):
    result = runner.invoke(app, ["data", "synth", "--out", str(tmp_path / "out"), *args])
    assert result.exit_code == 2
    assert option in result.output
    assert not (tmp_path / "out").exists()


def test_out_is_required():
    result = runner.invoke(app, ["data", "synth"])
    assert result.exit_code == 2 and "--out" in result.output


@pytest.mark.parametrize("below", ["", "sub"])  # --out is a file; --out would be inside a file
def test_out_that_cannot_be_a_folder_is_one_line_and_status_1(tmp_path, below):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker / below if below else blocker
    result = runner.invoke(app, ["data", "synth", "--out", str(out), *SMALL])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and str(blocker) in lines[0]
    assert blocker.read_text() == "x"
