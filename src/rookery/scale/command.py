"""The `--cluster` branch of `rookery predict`: the same inputs, counted on Ray, with a summary at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rookery.types import Skipped


def predict_on_cluster(
    photos: list[Path],
    skipped: list[Skipped],
    *,
    out: Path,
    model_uri: str,
    cluster: str,
    backend: str,
    device: str,
    options: dict[str, Any],
    masks: Path | None,
    annotate: bool,
) -> None:
    """Count on Ray, print the per-class table and one summary line; a RookeryError when nothing could be
    counted (exit status 1, as locally)."""
    from rich.table import Table

    from rookery.errors import RookeryError
    from rookery.logs import console
    from rookery.scale.run import count_collection

    summary = count_collection(
        photos, out, model_uri, cluster=cluster, backend=backend, device=device, options=options,
        masks=masks, annotate=annotate,
    )  # fmt: skip
    table = Table(title=f"{summary.photos} photo(s) in {out}")
    table.add_column("class")
    table.add_column("this run", justify="right")
    table.add_column("all photos", justify="right")
    for name, now, total in zip(summary.class_names, summary.animals_now, summary.animals, strict=True):
        table.add_row(name, str(int(now)), str(int(total)))
    console.print(table)
    for item in [*skipped, *summary.errors]:  # one line each, with the reason
        console.print(f"[yellow]skipped[/] {item}", highlight=False)
    files = "counts.csv, counts.parquet, detections.parquet, errors.csv" + (", annotated/" if annotate else "")
    console.print(f"results in {out}/ ({files}; detections.csv/.json up to 20,000 photos)", highlight=False)
    if summary.interrupted:
        console.print("interrupted: rerun the same command to count the rest", highlight=False)
    console.print(summary.line(), highlight=False)
    if summary.counted == 0 and summary.errors:
        raise RookeryError(f"none of the {len(summary.errors)} photo(s) could be counted; see the reasons above")
