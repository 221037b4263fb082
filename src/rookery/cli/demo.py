"""`rookery demo`: the whole pipeline on a synthetic survey, with no configuration.

Today it runs what exists: a synthetic survey -> dots found in the painted photos -> a tiled data set ->
its statistics. Training, evaluation, registration and serving join it as they land (README roadmap).
Re-running reuses what already exists under the demo folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rookery.logs import console


def demo(
    out: Annotated[
        Path | None, typer.Option(help="Folder for the demo's survey and data set [default: <home>/demo].")
    ] = None,
    images: Annotated[int, typer.Option(min=2, help="Synthetic photos to generate.")] = 12,
    size: Annotated[str, typer.Option(help="Photo size WIDTHxHEIGHT.")] = "1600x1200",
    seed: Annotated[int, typer.Option(help="Random seed of the survey and the split.")] = 0,
    rebuild: Annotated[bool, typer.Option(help="Regenerate the survey and the data set.")] = False,
) -> None:
    """Run the whole pipeline on a synthetic survey (reuses what exists; --rebuild starts over)."""
    import shutil

    from rookery.cli.options import parse_size
    from rookery.config import get_settings
    from rookery.data.classes import Classes
    from rookery.data.dataset import BuildParams, build_dataset
    from rookery.data.dots import find_dots
    from rookery.data.points_csv import write_points_csv
    from rookery.data.stats import dataset_stats, stats_table
    from rookery.data.synthetic import generate_survey

    settings = get_settings()
    root = (out or settings.home / "demo").resolve()
    survey, dataset = root / "survey", root / "dataset"
    if rebuild and root.exists():
        shutil.rmtree(root)

    if not (survey / "points.csv").is_file():
        console.rule("1. A synthetic survey")
        generate_survey(survey, images=images, size=parse_size(size), num_classes=3, seed=seed)
    classes = Classes.load(survey / "classes.yaml")

    found = survey / "found_points.csv"
    if not found.is_file():
        console.rule("2. Dots -> points (pair mode: clean photo vs painted twin)")
        report = find_dots(survey / "dotted", classes, images_dir=survey / "train", masks_out=survey / "found_masks")
        for skipped in report.skipped:
            console.print(f"skipped {skipped}")
        write_points_csv(found, report.labels, classes)

    if not (dataset / "manifest.json").is_file():
        console.rule("3. Points -> boxes -> tiles -> data set")
        build_dataset(
            found,
            survey / "train",
            classes,
            dataset,
            masks=survey / "found_masks",
            params=BuildParams(seed=seed),
        )

    console.rule("4. The data set")
    console.print(stats_table(dataset_stats(dataset)))
    console.print(f"data set: {dataset}\nnext: training arrives with the next release (see the README's roadmap)")
