"""`rookery data build` and `rookery data stats` through the Typer app."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from rookery.cli import app

runner = CliRunner()

CLASSES_YAML = "seal: {color: [255, 0, 0], box: 12}\npup: [0, 255, 0]\n"


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    """Three 240x160 photos, one of them corrupt, masks with an ignore strip, a points.csv, classes.yaml."""
    photos, masks = tmp_path / "photos", tmp_path / "masks"
    photos.mkdir()
    masks.mkdir()
    rng = np.random.default_rng(1)
    rows = []
    for name in ("a", "b", "c"):
        cv2.imwrite(str(photos / f"{name}.jpg"), rng.integers(0, 255, (160, 240, 3), dtype=np.uint8))
        mask = np.full((160, 240), 255, np.uint8)
        mask[:20] = 0
        cv2.imwrite(str(masks / f"{name}.png"), mask)
        for k in range(10):
            rows.append((name, 30 + 18 * k, 40 + 9 * k, "seal" if k % 2 else "pup"))
    (photos / "c.jpg").write_bytes(b"\xff\xd8 truncated")
    with (tmp_path / "points.csv").open("w", newline="") as f:
        csv.writer(f).writerows([("image", "x", "y", "class"), *rows])
    (tmp_path / "classes.yaml").write_text(CLASSES_YAML)
    return {
        "points": tmp_path / "points.csv",
        "images": photos,
        "masks": masks,
        "classes": tmp_path / "classes.yaml",
    }


def _args(inputs: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return [
        "data", "build",
        "--points", str(inputs["points"]),
        "--images", str(inputs["images"]),
        "--masks", str(inputs["masks"]),
        "--classes", str(inputs["classes"]),
        "--out", str(out),
        "--tile", "128", "--overlap", "32", "--workers", "1",
        *extra,
    ]  # fmt: skip


def test_build_prints_a_summary_the_skipped_photo_and_the_fingerprint(inputs, tmp_path: Path) -> None:
    result = runner.invoke(app, _args(inputs, tmp_path / "ds", "--split", "0.5,0.5,0", "--seed", "3"))
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert f"fingerprint {manifest['fingerprint']}" in result.output
    assert "skipped c: c.jpg is not a readable image" in result.output
    assert "box seal: 12.0 px (classes.yaml)" in result.output
    assert "box pup:" in result.output and "(estimated)" in result.output
    assert "nearest neighbour" in result.output  # how the pup size was estimated
    for word in ("train", "val", "test", "tiles", "negative tiles", "seal", "pup"):
        assert word in result.output
    assert manifest["params"]["seed"] == 3 and manifest["params"]["split"] == [0.5, 0.5, 0.0]
    assert sorted(p["split"] for p in manifest["photos"]) == ["train", "val"]
    assert (tmp_path / "ds" / "data.yaml").is_file()


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (("--split", "0.7,0.2"), 2, "expected three non-negative fractions"),  # a usage error
        (("--overlap", "128"), 1, "overlap between 0 and tile - 1"),  # overlap = tile
        (("--empty-fraction", "2"), 1, "empty_fraction must be between 0 and 1"),
    ],
)
def test_bad_options(inputs, tmp_path: Path, extra: tuple[str, ...], code: int, message: str) -> None:
    result = runner.invoke(app, _args(inputs, tmp_path / "ds", *extra))
    assert result.exit_code == code
    assert message in " ".join(result.output.split())


def test_unknown_class_and_foreign_output_folder_exit_1(inputs, tmp_path: Path) -> None:
    inputs["classes"].write_text("seal: [255, 0, 0]\n")
    result = runner.invoke(app, _args(inputs, tmp_path / "ds"))
    assert result.exit_code == 1
    assert "class 'pup' is not in classes.yaml" in result.output
    inputs["classes"].write_text(CLASSES_YAML)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("mine")
    result = runner.invoke(app, _args(inputs, tmp_path / "busy"))
    assert result.exit_code == 1 and "not a rookery data set" in result.output


def test_stats_prints_a_table_and_writes_the_plot(inputs, tmp_path: Path) -> None:
    assert runner.invoke(app, _args(inputs, tmp_path / "ds")).exit_code == 0
    result = runner.invoke(app, ["data", "stats", str(tmp_path / "ds")])
    assert result.exit_code == 0, result.output
    assert "seal" in result.output and "median" in result.output
    assert (tmp_path / "ds" / "stats.png").read_bytes()[:4] == b"\x89PNG"
    result = runner.invoke(app, ["data", "stats", str(tmp_path / "ds"), "--plot", str(tmp_path / "p.png")])
    assert result.exit_code == 0 and (tmp_path / "p.png").is_file()


def test_stats_of_a_folder_that_is_not_a_dataset_exits_1(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "stats", str(tmp_path)])
    assert result.exit_code == 1 and "is not a rookery data set" in result.output
