"""What a built data set holds: per split and class, object counts and box sizes, as a table and a plot.

Read from the label files themselves (not only the manifest), so the figures describe what training sees.
A box's size is sqrt(width * height) in pixels of its tile: the side for a square box, and smaller for a
box clipped at a tile edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.table import Table

from rookery.data.manifest import SPLITS, Manifest
from rookery.errors import InputError


@dataclass(frozen=True)
class DatasetStats:
    classes: list[str]
    photos: dict[str, int]  # per split
    tiles: dict[str, int]  # per split, label files found
    negatives: dict[str, int]  # per split, empty label files
    sizes: dict[str, list[np.ndarray]]  # per split, per class index: box sizes in px

    def count(self, split: str, cls: int) -> int:
        return len(self.sizes[split][cls])


def dataset_stats(dataset: Path) -> DatasetStats:
    """Count the boxes of every label file of the data set, per split and class, with their sizes."""
    dataset = Path(dataset)
    manifest = Manifest.load(dataset)
    n = len(manifest.classes)
    tile, scale = int(manifest.params["tile"]), float(manifest.params["scale"])
    photo_size = {
        p.image: (min(tile, max(1, round(p.width * scale))), min(tile, max(1, round(p.height * scale))))
        for p in manifest.photos
    }
    photos = dict.fromkeys(SPLITS, 0)
    for p in manifest.photos:
        photos[p.split] += 1
    tiles = dict.fromkeys(SPLITS, 0)
    negatives = dict.fromkeys(SPLITS, 0)
    sizes: dict[str, list[np.ndarray]] = {}
    for split in SPLITS:
        per_class: list[list[np.ndarray]] = [[] for _ in range(n)]
        folder = dataset / "labels" / split
        for path in sorted(folder.glob("*.txt")) if folder.is_dir() else []:
            rows = _read_labels(path, n)
            tiles[split] += 1
            negatives[split] += len(rows) == 0
            stem = path.stem.rsplit("_", 2)[0]
            tw, th = photo_size.get(stem, (tile, tile))
            side = np.sqrt(rows[:, 3] * tw * rows[:, 4] * th)
            for c in range(n):
                per_class[c].append(side[rows[:, 0] == c])
        sizes[split] = [np.concatenate(p) if p else np.zeros(0) for p in per_class]
    return DatasetStats(manifest.classes, photos, tiles, negatives, sizes)


def _read_labels(path: Path, num_classes: int) -> np.ndarray:
    text = path.read_text().split()
    if len(text) % 5:
        raise InputError(f"{path} is not a YOLO label file: expected 5 numbers per line")
    try:
        rows = np.array(text, dtype=np.float64).reshape(-1, 5)
    except ValueError as e:
        raise InputError(f"{path} is not a YOLO label file: {e}") from e
    if len(rows) and (rows[:, 0].min() < 0 or rows[:, 0].max() >= num_classes):
        raise InputError(f"{path} uses a class index outside 0..{num_classes - 1}")
    return rows


def stats_table(stats: DatasetStats) -> Table:
    table = Table(title="objects and box sizes (px) per split", title_justify="left")
    table.add_column("split")
    table.add_column("class")
    table.add_column("objects", justify="right")
    table.add_column("median", justify="right")
    table.add_column("min-max", justify="right")
    for split in SPLITS:
        for c, name in enumerate(stats.classes):
            s = stats.sizes[split][c]
            rng = f"{s.min():.1f}-{s.max():.1f}" if len(s) else "-"
            table.add_row(split, name, str(len(s)), f"{np.median(s):.1f}" if len(s) else "-", rng)
        table.add_row(
            f"[bold]{split}[/]",
            f"{stats.photos[split]} photos, {stats.tiles[split]} tiles ({stats.negatives[split]} negatives)",
            str(sum(len(s) for s in stats.sizes[split])),
            "",
            "",
            end_section=True,
        )
    return table


def plot_stats(stats: DatasetStats, path: Path) -> Path:
    """Write a PNG: objects per class per split (bars) and the box size distribution per class."""
    # The Agg canvas directly, not pyplot: no display needed and no global figure state.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(12, 4.5))
    FigureCanvasAgg(fig)
    ax_counts, ax_sizes = fig.subplots(1, 2)
    x = np.arange(len(stats.classes))
    width = 0.8 / len(SPLITS)
    for k, split in enumerate(SPLITS):
        counts = [stats.count(split, c) for c in range(len(stats.classes))]
        ax_counts.bar(x + (k - 1) * width, counts, width, label=split)
    ax_counts.set_xticks(x, stats.classes, rotation=30, ha="right")
    ax_counts.set_ylabel("objects in tile labels")
    ax_counts.set_title("objects per class and split")
    ax_counts.legend()
    all_sizes = [np.concatenate([stats.sizes[s][c] for s in SPLITS]) for c in range(len(stats.classes))]
    nonempty = [s for s in all_sizes if len(s)]
    if nonempty:
        hi = max(float(s.max()) for s in nonempty)
        bins = np.linspace(0, hi * 1.05 + 1e-9, 40)
        for name, s in zip(stats.classes, all_sizes, strict=True):
            if len(s):
                ax_sizes.hist(s, bins=bins, histtype="step", linewidth=1.5, label=name)
        ax_sizes.legend()
    ax_sizes.set_xlabel("box size sqrt(w*h), px")
    ax_sizes.set_ylabel("objects")
    ax_sizes.set_title("box size per class (all splits)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path
