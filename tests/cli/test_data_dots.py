"""`rookery data dots`: points.csv from painted photos, skipped photos and unknown colours reported."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rookery.cli import app
from rookery.data.classes import SEALION_CLASSES, Classes
from rookery.data.points_csv import read_counts_csv, read_points_csv
from rookery.data.synthetic import SurveySummary, generate_survey
from rookery.imaging import read_image

runner = CliRunner()


@pytest.fixture(scope="module")
def synth_survey(tmp_path_factory: pytest.TempPathFactory) -> SurveySummary:
    """One lossless synthetic photo of 800x600 with 3 classes (adult males, adult females, pups)."""
    out = tmp_path_factory.mktemp("survey")
    return generate_survey(out, images=1, size=(800, 600), num_classes=3, seed=3, workers=1, image_format="png")


def _sample(sealions: Path, dest: Path, names: list[str]) -> Path:
    """A copy of a few pairs of the real sample, and its classes.yaml."""
    for sub in ("train", "dotted"):
        (dest / sub).mkdir(parents=True)
        for name in names:
            shutil.copy(sealions / sub / f"{name}.jpg", dest / sub / f"{name}.jpg")
    SEALION_CLASSES.save(dest / "classes.yaml")
    return dest


def _args(root: Path, *extra: str) -> list[str]:
    return ["data", "dots", "--dotted", str(root / "dotted"), "--classes", str(root / "classes.yaml"), *extra]


def test_pair_mode_on_the_real_sample_writes_points_and_prints_counts(sealions, tmp_path):
    root = _sample(sealions, tmp_path / "s", ["1", "4"])
    out = tmp_path / "points.csv"
    args = _args(root, "--images", str(root / "train"), "--out", str(out), "--masks-out", str(tmp_path / "m"))
    result = runner.invoke(app, [*args, "--workers", "1"])
    assert result.exit_code == 0, result.output
    points = read_points_csv(out, SEALION_CLASSES)
    truth = read_counts_csv(sealions / "counts.csv", SEALION_CLASSES)
    assert sorted(points) == ["1", "4"]
    for name in ("1", "4"):
        assert abs(len(points[name].points) - int(truth[name].sum())) <= 0.05 * truth[name].sum() + 1
        mask = read_image(tmp_path / "m" / f"{name}.png", 0)
        expected = read_image(sealions / "masks" / f"{name}.png", 0)
        assert np.mean((mask > 127) == (expected > 127)) > 0.99
    # The summary: one row per class with its count, and the total.
    counts = sum(lab.points.counts(5) for lab in points.values())
    for spec, count in zip(SEALION_CLASSES, counts, strict=True):
        row = next(line for line in result.output.splitlines() if spec.name in line)
        assert f" {count} " in row
    assert "pair mode" in result.output and "skipped" not in result.output


def test_painted_only_mode_on_the_full_resolution_photo(sealions, tmp_path):
    (tmp_path / "dotted").mkdir()
    shutil.copy(sealions / "dotted_fullres" / "8.jpg", tmp_path / "dotted" / "8.jpg")
    SEALION_CLASSES.save(tmp_path / "classes.yaml")
    out = ["--out", str(tmp_path / "p.csv"), "--masks-out", str(tmp_path / "m"), "--clean-out", str(tmp_path / "c")]
    result = runner.invoke(app, [*_args(tmp_path, *out), "--workers", "1"])
    assert result.exit_code == 0, result.output
    points = read_points_csv(tmp_path / "p.csv", SEALION_CLASSES)["8"].points
    truth = read_counts_csv(sealions / "counts.csv", SEALION_CLASSES)["8"]
    np.testing.assert_array_equal(points.counts(5), truth)
    assert "painted photos only" in result.output
    # The photo with its dots removed: a JPEG of the same size, no longer the colour of a dot at any dot.
    painted, clean = read_image(tmp_path / "dotted" / "8.jpg"), read_image(tmp_path / "c" / "8.jpg")
    assert clean.shape == painted.shape and read_image(tmp_path / "m" / "8.png", 0).shape == painted.shape[:2]
    rows, cols = np.rint(points.xy[:, 1]).astype(int), np.rint(points.xy[:, 0]).astype(int)
    colours = np.array([c[::-1] for c in SEALION_CLASSES.colors])[points.cls]
    assert np.linalg.norm(painted[rows, cols].astype(float) - colours, axis=1).max() <= 45
    assert np.linalg.norm(clean[rows, cols].astype(float) - colours, axis=1).min() > 20
    assert "1 photo with the dots removed" in result.output


def test_clean_out_writes_what_data_build_reads(synth_survey, tmp_path):
    """--clean-out: the photos without their dots, their masks and points.csv make a data set; a
    corrupt photo is reported and skipped."""
    root = tmp_path / "s"
    (root / "dotted").mkdir(parents=True)
    shutil.copy(synth_survey.out / "dotted" / "0.png", root / "dotted" / "0.png")
    (root / "dotted" / "broken.jpg").write_bytes(b"this is not a photo")
    synth_survey.classes.save(root / "classes.yaml")
    survey = tmp_path / "survey"
    cleaned = ["--out", str(survey / "points.csv"), "--masks-out", str(survey / "masks")]
    result = runner.invoke(app, [*_args(root, *cleaned, "--clean-out", str(survey / "train")), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (survey / "train").iterdir()) == ["0.png"]  # lossless in, lossless out
    assert sorted(p.name for p in (survey / "masks").iterdir()) == ["0.png"]
    skipped = [line for line in result.output.splitlines() if line.startswith("skipped photo")]
    assert len(skipped) == 1 and "broken" in skipped[0] and "not a readable image" in skipped[0]
    assert "1 photo with the dots removed" in result.output
    build = ["data", "build", "--points", str(survey / "points.csv"), "--images", str(survey / "train")]
    build += ["--masks", str(survey / "masks"), "--classes", str(root / "classes.yaml"), "--out", str(tmp_path / "ds")]
    result = runner.invoke(app, [*build, "--split", "1,0,0", "--tile", "320", "--overlap", "32", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "skipped" not in result.output and (tmp_path / "ds" / "manifest.json").is_file()


@pytest.mark.parametrize(
    "extra, words",
    [
        ([], "needs --masks-out"),  # the blacked-out regions would be lost
        (["--masks-out", "m", "--images", "."], "is for painted photos alone"),  # pair mode has clean photos
    ],
)
def test_clean_out_without_what_it_needs_is_a_usage_error(synth_survey, tmp_path, extra, words):
    synth_survey.classes.save(tmp_path / "classes.yaml")
    args = _args(synth_survey.out, "--out", str(tmp_path / "p.csv"), "--clean-out", str(tmp_path / "c"), *extra)
    args[args.index("--classes") + 1] = str(tmp_path / "classes.yaml")
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and words in " ".join(result.output.split())
    assert not (tmp_path / "c").exists() and not (tmp_path / "p.csv").exists()


def test_a_corrupt_photo_is_reported_and_the_others_written(synth_survey, tmp_path):
    root = tmp_path / "s"
    (root / "dotted").mkdir(parents=True)
    shutil.copy(synth_survey.out / "dotted" / "0.png", root / "dotted" / "0.png")
    (root / "dotted" / "broken.jpg").write_bytes(b"this is not a photo")
    synth_survey.classes.save(root / "classes.yaml")
    out = tmp_path / "points.csv"
    result = runner.invoke(app, [*_args(root, "--out", str(out)), "--workers", "2"])
    assert result.exit_code == 0, result.output
    skipped = [line for line in result.output.splitlines() if line.startswith("skipped photo")]
    assert len(skipped) == 1 and "broken" in skipped[0] and "not a readable image" in skipped[0]
    points = read_points_csv(out, synth_survey.classes)
    assert list(points) == ["0"] and len(points["0"].points) == int(synth_survey.counts["0"].sum())
    assert "1 skipped" in result.output


def test_unknown_colours_are_listed_one_per_line(synth_survey, tmp_path):
    root = tmp_path / "s"
    (root / "dotted").mkdir(parents=True)
    shutil.copy(synth_survey.out / "dotted" / "0.png", root / "dotted" / "0.png")
    Classes(tuple(s for s in synth_survey.classes if s.name != "pups")).save(root / "classes.yaml")
    result = runner.invoke(app, [*_args(root, "--out", str(tmp_path / "p.csv")), "--workers", "1"])
    assert result.exit_code == 0, result.output
    pups = synth_survey.counts["0"][synth_survey.classes.index("pups")]
    unknown = [line for line in result.output.splitlines() if line.startswith("unknown colour: 0: ")]
    assert len(unknown) == pups > 0
    assert f"{pups} dots of unknown colour not counted" in result.output


@pytest.mark.parametrize(
    "setup, words",
    [
        ("empty", "holds no images"),  # an empty folder
        ("corrupt_only", "no photo in"),  # every photo unreadable
        ("no_classes", "classes file"),  # classes.yaml missing
    ],
)
def test_nothing_processed_exits_with_1(synth_survey, tmp_path, setup, words):
    root = tmp_path / "s"
    (root / "dotted").mkdir(parents=True)
    if setup == "corrupt_only":
        (root / "dotted" / "a.png").write_bytes(b"garbage")
    if setup != "no_classes":
        synth_survey.classes.save(root / "classes.yaml")
    out = tmp_path / "points.csv"
    result = runner.invoke(app, _args(root, "--out", str(out)))
    assert result.exit_code == 1
    assert words in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_missing_required_option_is_a_usage_error(tmp_path):
    result = runner.invoke(app, ["data", "dots", "--dotted", str(tmp_path), "--out", str(tmp_path / "p.csv")])
    assert result.exit_code == 2 and "--classes" in result.output
