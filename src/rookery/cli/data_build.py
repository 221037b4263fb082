"""`rookery data build` (points + photos -> tiled YOLO data set) and `rookery data stats`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rookery.cli.options import parse_split


def build(
    points: Annotated[Path, typer.Option(help="points.csv: image,x,y,class - one row per animal.")],
    images: Annotated[
        Path, typer.Option(help="Folder of the clean photos, named like the `image` column (e.g. 8.jpg).")
    ],
    classes: Annotated[
        Path,
        typer.Option(help="classes.yaml: class names in index order; `box:` sets a class's box side in px."),
    ],
    out: Annotated[
        Path, typer.Option(help="Data set folder to create; a previous rookery data set there is replaced.")
    ],
    masks: Annotated[
        Path | None,
        typer.Option(help="Folder of <image>.png masks: 255 = annotated, 0 = ignore (blacked out in tiles)."),
    ] = None,
    split: Annotated[
        str, typer.Option(help="Fractions of photos (not tiles) for train,val,test; they must sum to 1.")
    ] = "0.7,0.2,0.1",
    seed: Annotated[int, typer.Option(help="Seed of the photo split and of the choice of negative tiles.")] = 0,
    tile: Annotated[int, typer.Option(help="Tile side in pixels (after --scale).")] = 640,
    overlap: Annotated[
        int, typer.Option(help="Pixels shared by neighbouring tiles; keep it above the largest box.")
    ] = 64,
    scale: Annotated[
        float, typer.Option(help="Resize photos, masks and points by this factor before tiling (0.5 = half).")
    ] = 1.0,
    resolution: Annotated[
        float | None,
        typer.Option(
            help="Bring every photo to this fraction of full resolution before tiling (instead of --scale), so "
            "photos of mixed scales show animals at one size; a photo's own fraction is its long side / "
            "--frame-px. 0.5 for the sea lion recipe."
        ),
    ] = None,
    frame_px: Annotated[
        int | None,
        typer.Option(help="With --resolution: the long side of a full-resolution photo [default: the longest given]."),
    ] = None,
    min_visible: Annotated[
        float, typer.Option(help="Keep a box in a tile when at least this fraction of its area is inside.")
    ] = 0.5,
    empty_fraction: Annotated[
        float, typer.Option(help="Fraction of the tiles without any animal kept as negatives (0-1).")
    ] = 0.1,
    workers: Annotated[int, typer.Option(help="Processes, one photo each at a time; 0 = one per CPU core.")] = 0,
) -> None:
    """Cut photos into tiles with YOLO box labels made from the points, split by photo, with a manifest.

    Each point becomes a square box centred on it, of the class's `box:` side from classes.yaml or, where
    not given, estimated from the spacing of the points. Writes data.yaml (for Ultralytics) and
    manifest.json (inputs with sha256, parameters, counts, fingerprint).
    """
    from rich.table import Table

    from rookery.data.classes import Classes
    from rookery.data.dataset import build_dataset
    from rookery.data.manifest import SPLITS
    from rookery.data.photo_tiles import BuildParams
    from rookery.logs import console

    try:
        fractions = parse_split(split)
    except typer.BadParameter as e:
        raise typer.BadParameter(str(e), param_hint="--split") from e
    params = BuildParams(
        split=fractions,
        seed=seed,
        tile=tile,
        overlap=overlap,
        scale=scale,
        resolution=resolution,
        frame_px=frame_px,
        min_visible=min_visible,
        empty_fraction=empty_fraction,
    )
    manifest = build_dataset(
        points, images, Classes.load(classes), out, masks=masks, params=params, workers=workers or None
    )

    for s in manifest.skipped:
        console.print(f"[yellow]skipped[/] {s.item}: {s.reason}", highlight=False, soft_wrap=True)
    for w in manifest.warnings:
        console.print(f"[yellow]warning[/] {w}", highlight=False, soft_wrap=True)
    for name, b in manifest.box_sizes.items():
        how = "estimated" if b.estimated else "classes.yaml"
        console.print(f"box {name}: {b.size:.1f} px ({how})", highlight=False)
    if any(b.estimated for b in manifest.box_sizes.values()):
        console.print(f"estimated box sizes: {manifest.box_size_method}", highlight=False, soft_wrap=True)

    table = Table(title=f"data set {out}", title_justify="left")
    table.add_column("")
    for sp in SPLITS:
        table.add_column(sp, justify="right")
    table.add_row("photos", *(str(sum(p.split == sp for p in manifest.photos)) for sp in SPLITS))
    table.add_row("tiles", *(str(manifest.tiles[sp]) for sp in SPLITS))
    table.add_row("negative tiles", *(str(manifest.negatives[sp]) for sp in SPLITS), end_section=True)
    for c in manifest.classes:
        table.add_row(c, *(str(manifest.objects[sp][c]) for sp in SPLITS))
    console.print(table)
    console.print(f"fingerprint {manifest.fingerprint}", highlight=False)


def stats(
    dataset: Annotated[Path, typer.Argument(help="A data set folder written by `rookery data build`.")],
    plot: Annotated[
        Path | None, typer.Option(help="Where to write the PNG of histograms; default DATASET/stats.png.")
    ] = None,
) -> None:
    """Per split and class: object counts and box sizes (median, min-max), and a PNG of histograms."""
    from rookery.data.stats import dataset_stats, plot_stats, stats_table
    from rookery.logs import console

    result = dataset_stats(dataset)
    console.print(stats_table(result))
    written = plot_stats(result, plot if plot is not None else Path(dataset) / "stats.png")
    console.print(f"plot written to {written}", highlight=False)
