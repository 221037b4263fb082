"""Benchmark: painted survey photos -> points (dots) -> tiled YOLO data set, in photos per second.

    .venv/bin/python bench/data_build.py            # 20 synthetic 4992x3328 photos
    .venv/bin/python bench/data_build.py --quick    # 4 photos

Generates a synthetic survey first (not timed), then times the two stages a user runs on a survey:
`find_dots` on the painted photos alone (writing points.csv and the masks it derives from the blacked-out
regions) and `build_dataset` on the clean photos with those masks (read, blank, tile, encode, write).
Prints a table of seconds per stage and, as its last line, `photos_per_second=<x>` for both stages
together. The target is >= 1 photo/s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from rookery.data.dataset import BuildParams, build_dataset
from rookery.data.dots import find_dots
from rookery.data.points_csv import read_counts_csv, write_points_csv
from rookery.data.synthetic import generate_survey
from rookery.imaging import list_images
from rookery.parallel import resolve_workers

SIZE = (4992, 3328)  # a full-resolution survey photo


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20, help="synthetic photos to generate (default 20)")
    parser.add_argument("--quick", action="store_true", help="a reduced run: 4 photos")
    parser.add_argument("--workers", type=int, default=0, help="processes; 0 = one per CPU core")
    parser.add_argument("--classes", type=int, default=5, help="synthetic classes (1-5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None, help="write everything here and keep it")
    args = parser.parse_args(argv)
    n = 4 if args.quick else args.images
    workers = resolve_workers(args.workers, n)
    console = Console(stderr=False)

    with tempfile.TemporaryDirectory(prefix="rookery-bench-") as tmp:
        root = args.keep or Path(tmp)
        survey_dir, work = root / "survey", root / "work"
        t = time.perf_counter()
        survey = generate_survey(survey_dir, images=n, size=SIZE, num_classes=args.classes, seed=args.seed,
                                 workers=workers)  # fmt: skip
        generated = time.perf_counter() - t

        t, c = time.perf_counter(), _cpu()
        report = find_dots(survey_dir / "dotted", survey.classes, masks_out=work / "masks", workers=workers)
        labels = list(report.labels)
        write_points_csv(work / "points.csv", labels, survey.classes)
        dots_s, dots_cpu = time.perf_counter() - t, _cpu() - c

        masks = work / "masks"
        if not (masks.is_dir() and list_images(masks)):
            masks = survey_dir / "masks"  # the finder wrote none: use the generator's
        t, c = time.perf_counter(), _cpu()
        manifest = build_dataset(
            work / "points.csv", survey_dir / "train", survey.classes, work / "dataset", masks=masks,
            params=BuildParams(), workers=workers,
        )  # fmt: skip
        build_s, build_cpu = time.perf_counter() - t, _cpu() - c

        truth = read_counts_csv(survey_dir / "counts.csv", survey.classes)
        found = sum(len(lab.points) for lab in labels)
        expected = int(sum(np.sum(v) for v in truth.values()))
        tiles = sum(manifest.tiles.values())

    total = dots_s + build_s
    table = Table(title=f"{n} photos of {SIZE[0]}x{SIZE[1]}, {workers} worker(s), {os.cpu_count()} core(s)")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    table.add_column("s / photo", justify="right")
    table.add_column("photos / s", justify="right")
    table.add_column("CPU s / photo", justify="right")
    stages = (
        ("dots (find_dots + points.csv)", dots_s, dots_cpu),
        ("build (tile + write)", build_s, build_cpu),
        ("total", total, dots_cpu + build_cpu),
    )
    for name, secs, cpu in stages:
        table.add_row(name, f"{secs:.2f}", f"{secs / n:.3f}", f"{n / secs:.2f}", f"{cpu / n:.3f}")
    console.print(table)
    console.print(f"generation (not timed): {generated:.1f} s")
    console.print(f"points found {found} of {expected} annotated; {tiles} tiles written; "
                  f"skipped: dots {len(report.skipped)}, build {len(manifest.skipped)}")  # fmt: skip
    rate = n / total
    print(f"photos_per_second={rate:.3f}")
    return rate


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the worker pools): a figure that other
    programs on a shared machine do not inflate the way they inflate wall time."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


if __name__ == "__main__":
    main(sys.argv[1:])
