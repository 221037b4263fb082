"""`rookery data dots`: painted dots -> points.csv (one row per animal), and optionally the painted
photos with their dots removed, ready for `rookery data build`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def dots(
    dotted: Annotated[
        Path,
        typer.Option(
            help="Folder of painted photos: one coloured dot per object, ignore regions blacked out.",
            file_okay=False,
        ),
    ],
    classes: Annotated[
        Path,
        typer.Option(
            help="classes.yaml: one 'name: [R, G, B]' entry per class, the colour of its dots. The order "
            "of the entries is the class order of points.csv."
        ),
    ],
    out: Annotated[Path, typer.Option(help="points.csv to write: image,x,y,class, one row per dot.")],
    images: Annotated[
        Path | None,
        typer.Option(
            help="Folder of the clean photos, named as the painted ones (pair mode: the dots are what "
            "differs, which also works on downscaled JPEG copies). Without it, dots are found by colour "
            "in the painted photos alone, which needs full-resolution photos.",
            file_okay=False,
        ),
    ] = None,
    masks_out: Annotated[
        Path | None,
        typer.Option(help="Folder to write <image>.png per photo into: 255 = annotated, 0 = blacked out."),
    ] = None,
    clean_out: Annotated[
        Path | None,
        typer.Option(
            help="Painted-only mode: folder to write each photo with its dots removed into (<image>.jpg, "
            "JPEG quality 95; <image>.png for a lossless photo). Each dot found is inpainted from its "
            "surroundings over its colour plus 3 px; nothing else changes. Needs --masks-out, so that "
            "training ignores the blacked-out regions.",
            file_okay=False,
        ),
    ] = None,
    workers: Annotated[int, typer.Option(min=0, help="Processes to use; 0 = one per CPU core.")] = 0,
) -> None:
    """Find the painted dots in survey photos and write one point per dot to points.csv.

    Painted photos without a clean twin become training data with their dots removed (--clean-out):

    rookery data dots --dotted painted/ --classes classes.yaml --out survey/points.csv
    --masks-out survey/masks --clean-out survey/train

    and then: rookery data build --points survey/points.csv --images survey/train --masks survey/masks ...
    """
    import time

    from rich.table import Table

    from rookery.data.classes import Classes
    from rookery.data.dots import find_dots
    from rookery.data.points_csv import write_points_csv
    from rookery.errors import RookeryError
    from rookery.logs import console

    if clean_out is not None and masks_out is None:
        raise typer.BadParameter(
            "needs --masks-out too: the cleaned photos keep their blacked-out regions, which training must ignore",
            param_hint="--clean-out",
        )
    if clean_out is not None and images is not None:
        raise typer.BadParameter(
            "is for painted photos alone; with --images the clean photos already exist", param_hint="--clean-out"
        )
    start = time.perf_counter()
    spec = Classes.load(classes)
    report = find_dots(dotted, spec, images_dir=images, masks_out=masks_out, workers=workers, clean_out=clean_out)
    for skipped in report.skipped:
        console.print(f"skipped photo {skipped}", highlight=False, soft_wrap=True)
    for unknown in report.unknown:
        console.print(f"unknown colour: {unknown}", highlight=False, soft_wrap=True)
    if not report.labels:
        raise RookeryError(f"no photo in {dotted} could be processed; see the reasons above")
    write_points_csv(out, report.labels, spec)

    counts = report.counts(len(spec))
    n = len(report.labels)
    mode = "pair mode" if images is not None else "painted photos only"
    table = Table(title=f"dots in {n} photo{'s' if n != 1 else ''} ({mode})")
    for name, justify in (("class", "left"), ("dot", "center"), ("dots", "right"), ("per photo", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for s, count in zip(spec, counts, strict=True):
        r, g, b = s.color
        table.add_row(s.name, f"[rgb({r},{g},{b})]●[/]", str(count), f"{count / n:.1f}")
    table.add_section()
    table.add_row("total", "", str(counts.sum()), f"{counts.sum() / n:.1f}")
    console.print(table)
    notes = [f"{len(report.skipped)} skipped"] if report.skipped else []
    notes += [f"{len(report.unknown)} dots of unknown colour not counted"] if report.unknown else []
    if clean_out is not None:
        notes += [f"{n} photo{'s' if n != 1 else ''} with the dots removed in {clean_out}"]
    console.print(
        f"wrote {out} in {time.perf_counter() - start:.1f} s" + (f" ({', '.join(notes)})" if notes else ""),
        highlight=False,
        soft_wrap=True,
    )
