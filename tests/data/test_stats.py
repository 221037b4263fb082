"""Data set statistics: counts and box sizes per split and class, read from the label files; the plot."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from rich.console import Console

from rookery.data.classes import Classes, ClassSpec
from rookery.data.dataset import BuildParams, build_dataset
from rookery.data.manifest import SPLITS
from rookery.data.stats import dataset_stats, plot_stats, stats_table
from rookery.errors import InputError

CLASSES = Classes((ClassSpec("seal", (255, 0, 0), box=14.0), ClassSpec("pup", (0, 255, 0), box=6.0)))


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """Four 300x200 noise photos with animals spread over them, tiled 128/32 (boxes cut at tile edges)."""
    images = tmp_path / "photos"
    images.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i in range(4):
        cv2.imwrite(str(images / f"{i}.png"), rng.integers(0, 255, (200, 300, 3), dtype=np.uint8))
        for _ in range(12):
            rows.append((str(i), rng.uniform(0, 299), rng.uniform(0, 199), "seal" if rng.random() < 0.5 else "pup"))
    with (tmp_path / "points.csv").open("w", newline="") as f:
        csv.writer(f).writerows([("image", "x", "y", "class"), *rows])
    params = BuildParams(tile=128, overlap=32, split=(0.5, 0.25, 0.25), min_visible=0.3)
    build_dataset(tmp_path / "points.csv", images, CLASSES, tmp_path / "ds", params=params, workers=1)
    return tmp_path / "ds"


def test_stats_match_the_manifest_and_the_box_sizes(dataset: Path) -> None:
    from rookery.data.manifest import Manifest

    manifest = Manifest.load(dataset)
    stats = dataset_stats(dataset)
    assert stats.classes == ["seal", "pup"]
    for split in SPLITS:
        assert [stats.count(split, c) for c in range(2)] == [manifest.objects[split][n] for n in stats.classes]
        assert stats.tiles[split] == manifest.tiles[split]
        assert stats.negatives[split] == manifest.negatives[split]
    seals = np.concatenate([stats.sizes[s][0] for s in SPLITS])
    pups = np.concatenate([stats.sizes[s][1] for s in SPLITS])
    # Whole boxes have the class's side; boxes cut by a tile or photo edge are smaller, never larger.
    assert np.median(seals) == pytest.approx(14.0, abs=1e-3) and seals.max() <= 14.0 + 1e-3
    assert np.median(pups) == pytest.approx(6.0, abs=1e-3) and pups.max() <= 6.0 + 1e-3
    assert seals.min() < 14.0  # at least one cut box in this layout


def test_table_and_plot(dataset: Path, tmp_path: Path) -> None:
    stats = dataset_stats(dataset)
    console = Console(record=True, width=140)
    console.print(stats_table(stats))
    text = console.export_text()
    for name in ("train", "val", "test", "seal", "pup", "14.0", "6.0"):
        assert name in text
    png = plot_stats(stats, tmp_path / "plots" / "stats.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = cv2.imread(str(png))
    assert image.shape[0] > 300 and image.shape[1] > 800 and image.std() > 10  # drawn, not blank


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda ds: (ds / "manifest.json").unlink(), "is not a rookery data set"),  # no manifest
        (lambda ds: (ds / "manifest.json").write_text('{"format": 3}'), "not a valid rookery manifest"),
        (lambda ds: _first_label(ds).write_text("0 0.5 0.5\n"), "expected 5 numbers per line"),
        (lambda ds: _first_label(ds).write_text("7 0.5 0.5 0.1 0.1\n"), r"class index outside 0\.\.1"),
    ],
)
def test_damaged_datasets_are_clear_errors(dataset: Path, damage, message: str) -> None:
    damage(dataset)
    with pytest.raises(InputError, match=message):
        dataset_stats(dataset)


def _first_label(ds: Path) -> Path:
    return sorted((ds / "labels" / "train").glob("*.txt"))[0]
