"""`rookery data convert`: annotations from one format to another, through rookery's own types."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rookery.errors import RookeryError

# Kept literal here so that `rookery --help` does not import the formats; test_data_convert checks them.
_IN = "csv, coco, yolo, cvat or labelstudio"
_OUT = "csv, coco or yolo"


def _format_in(value: str) -> str:
    from rookery.data.formats import FORMATS_IN

    return _known(value, FORMATS_IN)


def _format_out(value: str) -> str:
    from rookery.data.formats import FORMATS_OUT

    return _known(value, FORMATS_OUT)


def _known(value: str, known: tuple[str, ...]) -> str:
    if value.strip().lower() not in known:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(known)}")
    return value.strip().lower()


def convert(
    from_: Annotated[
        str,
        typer.Option(
            "--from",
            callback=_format_in,
            help=f"Format of --input: {_IN}. YOLO is a folder of <image>.txt files; the others are one file.",
        ),
    ],
    input_: Annotated[
        Path,
        typer.Option("--input", help="The annotation file to read (for --from yolo, the folder of txt files)."),
    ],
    to: Annotated[
        str,
        typer.Option(
            callback=_format_out,
            help=f"Format to write: {_OUT}. YOLO needs a box per object: points without one become "
            "squares of their class's 'box' side from classes.yaml.",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            help="Where to write: a file for csv and coco (an existing folder gets points.csv or "
            "annotations.json inside), a folder of <image>.txt files for yolo.",
        ),
    ],
    classes: Annotated[
        Path,
        typer.Option(
            help="classes.yaml: the class names in index order. Labels in --input are matched by name "
            "(YOLO's by index) and must all be listed.",
        ),
    ],
    images: Annotated[
        Path | None,
        typer.Option(
            help="Folder of the images. Needed to read YOLO (coordinates are fractions of the image size) "
            "and to write COCO or YOLO when --input does not give image sizes (csv); only file headers "
            "are read.",
        ),
    ] = None,
) -> None:
    """Convert annotations between formats: points and boxes, with their classes, per image.

    Pixel coordinates are converted exactly between rookery's convention (centre of the top-left
    pixel at 0, 0) and the corner-origin one of COCO, YOLO, CVAT and Label Studio. An image with a
    problem of its own (a broken YOLO file, a bad number) is reported and skipped; the rest are written.
    """
    import numpy as np
    from rich.table import Table

    from rookery.data.classes import Classes
    from rookery.data.formats import output_path, read_annotations_report, write_annotations_report
    from rookery.logs import console

    spec = Classes.load(classes)
    labels, skipped = read_annotations_report(input_, from_, spec, images)
    if not labels:
        reasons = f": {skipped[0]}" + (f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else "")
        raise RookeryError(f"no image could be read from {input_}" + (reasons if skipped else ""))
    skipped += write_annotations_report(labels, out, to, spec, images)
    for s in skipped:
        console.print(f"[yellow]skipped[/] {s}", highlight=False, soft_wrap=True)

    done = {s.item for s in skipped}
    written = [lab for lab in labels if lab.image not in done]
    if not written:
        raise RookeryError(f"no image was written to {out}; each one was skipped for the reason printed above")
    zeros = np.zeros(len(spec), dtype=np.int64)
    objects = sum((lab.points.counts(len(spec)) for lab in written), zeros)
    boxes = sum((lab.boxes.counts(len(spec)) for lab in written if lab.boxes is not None), zeros)
    table = Table(title=f"{from_} -> {to}", title_justify="left")
    table.add_column("class")
    table.add_column("objects", justify="right")
    table.add_column("as boxes in input", justify="right")
    for name, n, b in zip(spec.names, objects.tolist(), boxes.tolist(), strict=True):
        table.add_row(name, str(n), str(b))
    table.add_row("[bold]total", f"[bold]{objects.sum()}", f"[bold]{boxes.sum()}")
    console.print(table)
    console.print(
        f"{len(written)} image(s) written to {output_path(out, to)}, {len(skipped)} skipped",
        highlight=False,
        soft_wrap=True,
    )
