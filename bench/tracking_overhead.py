"""Benchmark: what rookery's MLflow tracking costs on top of plain Ultralytics training.

    .venv/bin/python bench/tracking_overhead.py           # 5 epochs at 320 px on a synthetic data set
    .venv/bin/python bench/tracking_overhead.py --quick   # 2 epochs, a smaller data set

Builds one synthetic data set (not timed), then trains the same configuration twice, each in a fresh
process so that both pay their imports: plain Ultralytics (`YOLO(cfg).train(...)` with the identical
Ultralytics arguments rookery passes, its MLflow callback off) and `rookery train` (params, tags, the data
set input, per-epoch metrics, system metrics, artifacts, ONNX export, the packaged pyfunc model and its
registration, into the embedded SQLite store, created before timing). Prints both wall times and,
as its last line, `wall_time_ratio=<rookery/plain>`. Target <= 1.05.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rookery.data.classes import Classes
from rookery.data.dataset import BuildParams, build_dataset
from rookery.data.synthetic import generate_survey


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 epochs on a smaller data set")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--images", type=int, default=12, help="synthetic 1600x1200 photos (tiled at 640)")
    args = parser.parse_args(argv)
    epochs, images = (2, 4) if args.quick else (args.epochs, args.images)
    console = Console()

    with tempfile.TemporaryDirectory(prefix="rookery-bench-") as tmp:
        root = Path(tmp)
        survey = generate_survey(root / "survey", images=images, size=(1600, 1200), num_classes=3, seed=0)
        dataset = root / "dataset"
        classes = Classes.load(survey.out / "classes.yaml")
        params = BuildParams(split=(0.75, 0.25, 0.0))
        build_dataset(survey.out / "points.csv", survey.out / "train", classes, dataset, survey.out / "masks", params)
        env = {**os.environ, "ROOKERY_HOME": str(root / "home")}
        env.pop("ROOKERY_TRACKING_URI", None)
        # The store's tables are created once per store, not per training (several seconds for SQLite):
        # create them before timing, as a user's store already exists from the second training on.
        init = (
            "import mlflow; from rookery.config import get_settings as s; "
            "from rookery.training.tracking import configure_client as c; "
            "c(s().tracking_uri); mlflow.search_experiments()"
        )
        subprocess.run([sys.executable, "-c", init], env=env, check=True, capture_output=True)
        common = dict(data=str(dataset), epochs=epochs, imgsz=args.imgsz, batch=16, device="cpu", workers=2)

        plain_code = textwrap.dedent(f"""
            from pathlib import Path
            from rookery.offline import ensure_offline; ensure_offline()
            from ultralytics import YOLO, settings
            settings.update({{"mlflow": False, "sync": False}})
            from rookery.training.trainer import TrainParams, _ultralytics_args
            p = TrainParams(**{common!r})
            args = _ultralytics_args(p, Path(p.data) / "data.yaml", Path({str(root)!r}) / "plain")
            YOLO("yolov8n.yaml").train(**args)
        """)
        rookery_cmd = [sys.executable, "-m", "rookery", "train", "--data", str(dataset),
                       "--epochs", str(epochs), "--imgsz", str(args.imgsz), "--batch", "16",
                       "--device", "cpu", "--workers", "2"]  # fmt: skip
        rookery_cmd += ["--name", "tracked"]
        plain = _timed([sys.executable, "-c", plain_code], env)
        tracked = _timed(rookery_cmd, env)
        # Ultralytics writes each epoch's cumulative time: the loop alone, without imports and the end.
        plain_loop = _loop_seconds(root / "plain" / "results.csv")
        tracked_loop = _loop_seconds(root / "home" / "runs" / "tracked" / "results.csv")

    table = Table(title=f"training {epochs} epochs at {args.imgsz} px on {images} synthetic photos (CPU)")
    for col in ("run", "wall s"):
        table.add_column(col)
    table.add_column("training loop s")
    table.add_row("plain Ultralytics", f"{plain:.1f}", f"{plain_loop:.1f}")
    table.add_row("rookery train (tracked, ONNX, packaged, registered)", f"{tracked:.1f}", f"{tracked_loop:.1f}")
    console.print(table)
    console.print(
        f"per-epoch tracking: loop ratio {tracked_loop / plain_loop:.3f}; "
        f"fixed cost per training (MLflow import, run, ONNX export, packaging, registration): "
        f"{(tracked - tracked_loop) - (plain - plain_loop):.1f} s"
    )
    ratio = tracked / plain
    print(f"wall_time_ratio={ratio:.3f}")
    return ratio


def _loop_seconds(results_csv: Path) -> float:
    import csv

    with results_csv.open() as f:
        rows = list(csv.DictReader(f))
    return float(rows[-1]["time"])


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"{cmd[:4]} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed


if __name__ == "__main__":
    main()
