"""`rookery data synth`: write a synthetic aerial survey in the layout of the real sea lion data."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from rookery.cli.options import parse_size


class ImageFormat(StrEnum):
    jpg = "jpg"
    png = "png"


def synth(
    out: Annotated[
        Path,
        typer.Option(
            help="Folder to write the survey into (created if needed): train/, dotted/, masks/, points.csv, "
            "counts.csv, classes.yaml. Numbered photos of an earlier survey there are replaced."
        ),
    ],
    images: Annotated[int, typer.Option(min=1, help="How many photos to generate.")] = 8,
    size: Annotated[
        Any,  # a (width, height) tuple, parsed from WIDTHxHEIGHT by parse_size
        typer.Option(
            parser=parse_size,
            metavar="WIDTHxHEIGHT",
            help="Photo size in pixels; a full-resolution survey photo is 4992x3328.",
        ),
    ] = "4992x3328",
    classes: Annotated[
        int,
        typer.Option(
            min=1,
            max=5,
            help="Number of classes, taken in this order: adult_females, pups, adult_males, juveniles, "
            "subadult_males (so 3 includes the small pups).",
        ),
    ] = 3,
    seed: Annotated[int, typer.Option(min=0, help="Random seed: the same seed and options give the same files.")] = 0,
    object_scale: Annotated[
        float,
        typer.Option(
            min=0.1,
            max=4.0,
            help="Multiplies every animal size and the dot radius: 1 = a full-resolution survey (adult males "
            "60-80 px long, dots of radius 4); e.g. 0.5 for small, quick demo scenes.",
        ),
    ] = 1.0,
    image_format: Annotated[
        ImageFormat,
        typer.Option("--format", help="jpg (quality 95, as the real photos) or png (lossless: exact dots)."),
    ] = ImageFormat.jpg,
    workers: Annotated[int, typer.Option(min=0, help="Processes to use; 0 = one per CPU core.")] = 0,
) -> None:
    """Generate a synthetic survey: clean photos, painted twins with exact dots, masks, points and counts."""
    import time

    from rich.table import Table

    from rookery.data.synthetic import generate_survey
    from rookery.errors import RookeryError
    from rookery.logs import console

    start = time.perf_counter()
    summary = generate_survey(
        out,
        images=images,
        size=size,
        num_classes=classes,
        seed=seed,
        workers=workers,
        object_scale=object_scale,
        image_format=image_format.value,
    )
    for skipped in summary.skipped:
        console.print(f"skipped photo {skipped}", highlight=False, soft_wrap=True)
    if not summary.images:
        raise RookeryError(f"no photo could be written into {out}; see the reasons above")

    total, n = summary.total, len(summary.images)
    table = Table(title=f"{n} synthetic photos ({size[0]}x{size[1]}) in {summary.out}")
    for name, justify in (("class", "left"), ("dot", "center"), ("length px", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    table.add_column("animals", justify="right")
    table.add_column("per photo", justify="right")
    for spec, count in zip(summary.classes, total, strict=True):
        r, g, b = spec.color
        table.add_row(spec.name, f"[rgb({r},{g},{b})]●[/]", f"{spec.box:g}", str(count), f"{count / n:.1f}")
    table.add_section()
    table.add_row("total", "", "", str(total.sum()), f"{total.sum() / n:.1f}")
    console.print(table)
    console.print(f"done in {time.perf_counter() - start:.1f} s", highlight=False)
