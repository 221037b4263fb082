"""Benchmark: counting accuracy on the real sea lions, tiled (rookery) vs the whole downsampled photo, by
leave-one-photo-out over photos 0, 1, 4, 6 and 8 of the shared sample (1/4-scale photos, masks, points).

    python bench/sealions.py                          # on a CUDA GPU: 10 trainings of 35 s, 2 at a time
    python bench/sealions.py --train-seconds 60       # another budget (the same for both approaches)
    python bench/sealions.py --folds 1 --epochs 1 --fraction 0.1 --device cpu   # a smoke run on a CPU

For each fold one photo is held out and a yolov8n is trained from scratch on the other four, twice:
  rookery     rookery's tiled data set (rookery.data.dataset.build_dataset: the photo and its points scaled
              by --scale (2), cut into --tile (320) px tiles with 64 px overlap, ignore regions blacked out),
              trained at imgsz --tile; counted with rookery's Predictor, sliced (tiles of tile/scale photo
              px resized to the network's imgsz, seam merge, ignore mask).
  whole photo the seed's approach: each photo whole, one image per photo, trained at imgsz 1408 (the long
              side resized to 1408 px); counted on the whole photo at 1408 px, inside the mask.
Both get the same training budget: --train-seconds of wall time each (Ultralytics' `time`), run side by
side in pairs (the same GPU contention), the same recipe otherwise (yolov8n.yaml from scratch, both flips,
Ultralytics' default mosaic and scale, nbs = batch so that every batch is an optimizer step; seed 0).
The ground truth is the points inside each photo's mask (rookery.evaluation.truth.from_points); the
metrics are rookery.evaluation.counting's: per-class RMSE and the competition metric (the mean over the
five classes of the per-class RMSE). Prints a table per fold and overall for each approach, then last
`metric_ratio_vs_whole_photo=<rookery overall / whole photo overall>` (< 1: tiling counts better).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ("0", "1", "4", "6", "8")
WHOLE_IMGSZ = 1408


def default_data() -> Path:
    """The repo's git-ignored copy (.sealions, carried to a GPU machine) when complete, else ../shared."""
    local = ROOT / ".sealions"
    if (local / "train").is_dir() and (local / "points.csv").is_file() and (local / "masks").is_dir():
        return local
    return ROOT.parent / "shared" / "data" / "sealions"


def main(argv: list[str] | None = None) -> float | None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="the sample: train/, masks/, points.csv")
    parser.add_argument("--work", type=Path, default=None, help="working folder; default a temp dir")
    parser.add_argument("--folds", type=int, default=len(PHOTOS), help="how many folds to run (default all 5)")
    parser.add_argument("--train-seconds", type=float, default=35.0, help="training budget per model (wall s)")
    parser.add_argument("--epochs", type=int, default=None, help="a fixed number of epochs instead of a time budget")
    parser.add_argument("--fraction", type=float, default=1.0, help="fraction of the training images (smoke runs)")
    parser.add_argument("--parallel", type=int, default=2, help="trainings at once (default 2: both of a fold)")
    parser.add_argument("--scale", type=float, default=2.0, help="rookery: photo scale before tiling")
    parser.add_argument("--tile", type=int, default=320, help="rookery: tile side after scaling = imgsz")
    parser.add_argument("--overlap", type=int, default=64, help="rookery: tile overlap after scaling")
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--device", default=None, help="'0' (default when CUDA is there) or 'cpu'")
    parser.add_argument("--train-job", type=Path, default=None, help=argparse.SUPPRESS)  # internal: one training
    args = parser.parse_args(argv)
    if args.train_job is not None:
        train_one(json.loads(args.train_job.read_text()))
        return None
    import torch

    if args.device is None:
        if not torch.cuda.is_available():
            print("sealions: no CUDA GPU here; this benchmark trains 10 models (pass --device cpu to force); skipped")
            return None
        args.device = "0"
    data = (args.data or default_data()).resolve()
    if not (data / "points.csv").is_file():
        print(f"sealions: the sea lion sample is not at {data} (no points.csv); skipped")
        return None
    if args.work is not None:
        return run(args, data, args.work.resolve())
    with tempfile.TemporaryDirectory(prefix="rookery-bench-sealions-") as tmp:
        return run(args, data, Path(tmp))


@dataclass
class Job:
    fold: str
    method: str  # "rookery" or "whole photo"
    folder: Path
    data_yaml: Path
    imgsz: int
    batch: int


def run(args: argparse.Namespace, data: Path, work: Path) -> float:
    os.environ.setdefault("ROOKERY_HOME", str(work / "home"))
    from rookery.offline import ensure_offline

    ensure_offline()
    import torch

    from rookery.data.classes import Classes
    from rookery.data.dataset import BuildParams, build_dataset

    classes = Classes.load(ROOT / "examples" / "sealions" / "classes.yaml")
    folds = PHOTOS[: args.folds]
    device = f"cuda:{args.device}" if args.device != "cpu" else "cpu"
    name = torch.cuda.get_device_name(0) if device != "cpu" else "CPU"
    budget = f"{args.epochs} epochs" if args.epochs else f"{args.train_seconds:.0f} s wall time"
    print(f"device: {name}; torch {torch.__version__}; data {data}; folds {', '.join(folds)}; budget per model "
          f"{budget}, {args.parallel} trainings at once")  # fmt: skip
    t0 = time.perf_counter()
    jobs: list[Job] = []
    for fold in folds:
        train = [p for p in PHOTOS if p != fold]
        src = work / f"fold{fold}" / "src"
        _subset(data, train, src)
        specs = (
            ("rookery", BuildParams(split=(1.0, 0.0, 0.0), tile=args.tile, overlap=args.overlap, scale=args.scale),
             args.tile, 32),
            ("whole photo", BuildParams(split=(1.0, 0.0, 0.0), tile=WHOLE_IMGSZ, overlap=0, scale=1.0),
             WHOLE_IMGSZ, 4),
        )  # fmt: skip
        for method, params, imgsz, batch in specs:
            folder = work / f"fold{fold}" / method.replace(" ", "_")
            build_dataset(src / "points.csv", src / "train", classes, folder / "dataset", masks=src / "masks",
                          params=params)  # fmt: skip
            data_yaml = folder / "dataset" / "data.yaml"
            _val_on_train(data_yaml)
            jobs.append(Job(fold, method, folder, data_yaml, imgsz, batch))
    print(f"data sets built in {time.perf_counter() - t0:.0f} s")
    train_all(jobs, args)
    results = evaluate_all(jobs, data, classes, args, device)
    return report(results, classes.names, folds)


def _subset(data: Path, stems: list[str], out: Path) -> None:
    """A folder with only these photos (links), their masks and their rows of points.csv."""
    for sub in ("train", "masks"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for stem in stems:
        for sub, suffix in (("train", ".jpg"), ("masks", ".png")):
            link = out / sub / f"{stem}{suffix}"
            if not link.exists():
                link.symlink_to(data / sub / f"{stem}{suffix}")
    with (data / "points.csv").open() as f, (out / "points.csv").open("w", newline="") as g:
        reader, writer = csv.reader(f), csv.writer(g)
        writer.writerow(next(reader))
        writer.writerows(row for row in reader if row[0] in stems)


def _val_on_train(data_yaml: Path) -> None:
    """No photo is spared for validation (4 per fold): Ultralytics' closing validation reads the train tiles."""
    import yaml

    spec = yaml.safe_load(data_yaml.read_text())
    spec["val"] = spec["train"]
    spec.pop("test", None)
    data_yaml.write_text(yaml.safe_dump(spec, sort_keys=False))


def train_all(jobs: list[Job], args: argparse.Namespace) -> None:
    """Run the trainings, `args.parallel` at a time, each in its own process (its own CUDA context)."""
    queue = list(jobs)
    running: list[tuple[Job, subprocess.Popen, float]] = []
    while queue or running:
        while queue and len(running) < args.parallel:
            job = queue.pop(0)
            spec = {"data": str(job.data_yaml), "imgsz": job.imgsz, "batch": job.batch, "out": str(job.folder),
                    "device": args.device, "seconds": args.train_seconds, "epochs": args.epochs,
                    "fraction": args.fraction}  # fmt: skip
            path = job.folder / "job.json"
            path.write_text(json.dumps(spec))
            log = (job.folder / "train.log").open("w")
            proc = subprocess.Popen([sys.executable, __file__, "--train-job", str(path)], stdout=log, stderr=log)
            running.append((job, proc, time.perf_counter()))
        time.sleep(0.5)
        for item in list(running):
            job, proc, started = item
            if proc.poll() is None:
                continue
            running.remove(item)
            epochs = _epochs_done(job.folder)
            status = "ok" if proc.returncode == 0 else f"FAILED (exit {proc.returncode}, see {job.folder}/train.log)"
            print(f"  fold {job.fold} {job.method:<11}: {epochs} epochs at imgsz {job.imgsz}, batch {job.batch}, "
                  f"{time.perf_counter() - started:.0f} s, {status}", flush=True)  # fmt: skip
            if proc.returncode != 0:
                print((job.folder / "train.log").read_text()[-3000:])


def _epochs_done(folder: Path) -> int:
    results = folder / "train" / "results.csv"
    return max(0, len(results.read_text().splitlines()) - 1) if results.is_file() else 0


def train_one(spec: dict) -> None:
    """One training (in its own process): yolov8n from scratch with the fixed recipe."""
    os.environ.setdefault("ROOKERY_HOME", str(Path(spec["out"]) / "home"))
    from rookery.offline import ensure_offline

    ensure_offline()
    from ultralytics import YOLO
    from ultralytics import settings as yolo_settings
    from ultralytics.engine.trainer import BaseTrainer

    # The checkpoint's copy of results.csv is read with polars, which the GPU machine lacks; nothing here
    # needs it (the epochs are counted from the CSV file itself).
    BaseTrainer.read_results_csv = lambda self: {}  # type: ignore[method-assign]
    yolo_settings.update({"mlflow": False, "sync": False})
    budget = {"epochs": spec["epochs"]} if spec["epochs"] else {"epochs": 1000, "time": spec["seconds"] / 3600}
    YOLO("yolov8n.yaml").train(
        data=spec["data"], imgsz=spec["imgsz"], batch=spec["batch"], nbs=spec["batch"], device=spec["device"],
        workers=6, project=spec["out"], name="train", exist_ok=True, verbose=False, plots=False, val=False,
        seed=0, fliplr=0.5, flipud=0.5, max_det=3000, patience=0, fraction=spec["fraction"], **budget,
    )  # fmt: skip


def evaluate_all(
    jobs: list[Job], data: Path, classes: object, args: argparse.Namespace, device: str
) -> dict[str, list[tuple[str, np.ndarray, np.ndarray]]]:
    """Per method: (fold, true counts, predicted counts) of each held-out photo, counted inside its mask."""
    from rookery.evaluation.counting import count_photos
    from rookery.evaluation.truth import from_points
    from rookery.inference import Predictor

    out: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {}
    for job in jobs:
        weights = job.folder / "train" / "weights"
        pt = next((p for p in (weights / "last.pt", weights / "best.pt") if p.is_file()), None)
        test = job.folder.parent / "test"
        if not test.is_dir():
            _subset(data, [job.fold], test)
        (photo,) = from_points(test / "points.csv", test / "train", classes, masks=test / "masks").photos  # type: ignore[arg-type]
        truth = np.array(photo.truth)
        if pt is None:
            print(f"  fold {job.fold} {job.method}: no trained weights; counted as zero")
            out.setdefault(job.method, []).append((job.fold, truth, np.zeros_like(truth)))
            continue
        if job.method == "rookery":
            tile = round(args.tile / args.scale)
            options = {"tile": tile, "overlap": round(args.overlap / args.scale), "imgsz": args.tile}
        else:  # the whole photo in one piece, its long side resized to 1408 px
            import cv2

            side = max(cv2.imread(str(photo.image)).shape[:2])
            options = {"tile": side, "overlap": 0, "imgsz": WHOLE_IMGSZ}
        predictor = Predictor.from_path(pt, backend="torch", device=device, conf=args.conf, batch=32, **options)
        result = count_photos(predictor, [photo])
        if result.skipped:
            raise RuntimeError(f"fold {job.fold}: {result.skipped[0]}")
        true, pred = result.arrays()
        out.setdefault(job.method, []).append((job.fold, true[0], pred[0]))
    return out


def report(results: dict[str, list[tuple[str, np.ndarray, np.ndarray]]], names: list[str], folds: tuple) -> float:
    from rookery.evaluation.counting import counting_metrics

    short = [n.replace("_", " ") for n in names]
    overall: dict[str, float] = {}
    for method, rows in results.items():
        print(f"\n{method}: counts per held-out photo (predicted / true), per-class RMSE, competition metric")
        header = f"{'fold':<6}" + "".join(f"{n:>17}" for n in short) + f"{'total':>13}{'metric':>9}"
        print(header)
        print("-" * len(header))
        for fold, true, pred in rows:
            m = counting_metrics(true[None], pred[None], names)
            cells = "".join(f"{f'{p}/{t}':>17}" for p, t in zip(pred, true, strict=True))
            print(f"{fold:<6}{cells}{f'{pred.sum()}/{true.sum()}':>13}{m.competition_rmse:>9.2f}")
        true = np.array([r[1] for r in rows])
        pred = np.array([r[2] for r in rows])
        m = counting_metrics(true, pred, names)
        print(f"{'RMSE':<6}" + "".join(f"{v:>17.2f}" for v in m.rmse) + f"{m.total_rmse:>13.2f}"
              f"{m.competition_rmse:>9.2f}")  # fmt: skip
        overall[method] = m.competition_rmse
    print("\ncompetition metric (mean over classes of the per-class RMSE over the folds), lower is better:")
    for method, value in overall.items():
        print(f"  {method:<12} {value:.3f}")
    ratio = overall["rookery"] / overall["whole photo"] if overall.get("whole photo") else float("nan")
    print(f"metric_ratio_vs_whole_photo={ratio:.3f}")
    return ratio


if __name__ == "__main__":
    main()
