"""Benchmark: counting accuracy on the real sea lions, tiled (rookery) vs the whole downsampled photo, by
leave-one-photo-out over photos 0, 1, 4, 6 and 8 of the shared sample (1/4-scale photos, masks, points).

    python bench/sealions.py                          # on a CUDA GPU: 10 trainings of 420 s, all at once
    python bench/sealions.py --train-seconds 300      # another budget (the same for both approaches)
    python bench/sealions.py --only rookery --scale 2 # one approach only (recipe experiments)
    python bench/sealions.py --folds 1 --epochs 1 --fraction 0.1 --device cpu   # a smoke run on a CPU

For each fold one photo is held out and a yolov8n is trained from scratch on the other four, twice:
  rookery     rookery's tiled data set (rookery.data.dataset.build_dataset: the photo and its points scaled
              by --scale (3: a pup, 3-6 px at this 1/4 scale, becomes 9-18 px, above what the stride-8 head
              finds reliably), cut into --tile (320) px tiles with 64 px overlap, ignore regions blacked
              out), trained at imgsz --tile; counted with rookery's Predictor, sliced (tiles of tile/scale
              photo px resized to the network's imgsz, seam merge, ignore mask).
  whole photo the seed's approach: each photo whole, one image per photo, trained at imgsz 1408 (the long
              side resized to 1408 px); counted on the whole photo at 1408 px, inside the mask.
Both get the same training budget: --train-seconds of wall time each (Ultralytics' `time`), all trainings
side by side (the same GPU and CPU contention), and the same recipe: yolov8n.yaml from scratch, AdamW at
lr0 0.003 (what trains from scratch on little data in rookery's demo), nbs = batch (every batch is an
optimizer step), both flips and random transposes (all 8 rotations of an aerial photo), Ultralytics'
default mosaic and scale, seed 0. A training set under --min-epoch-images images (the 4 whole photos) is
repeated (links) up to that size, so that an epoch is more than one optimizer step and Ultralytics'
per-epoch overhead does not eat the baseline's budget.
Counting threshold: each model's confidence threshold is chosen on its own four training photos (the one
that minimises the competition metric there, from 0.05 to 0.60), never on the held-out photo; the table
also gives the counts at the fixed 0.25 for reference.
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
    parser.add_argument("--train-seconds", type=float, default=420.0, help="training budget per model (wall s)")
    parser.add_argument("--epochs", type=int, default=None, help="a fixed number of epochs instead of a time budget")
    parser.add_argument("--fraction", type=float, default=1.0, help="fraction of the training images (smoke runs)")
    parser.add_argument("--parallel", type=int, default=10, help="trainings at once (default 10: all of them)")
    parser.add_argument("--min-epoch-images", type=int, default=128, help="repeat smaller training sets up to this")
    parser.add_argument("--scale", type=float, default=3.0, help="rookery: photo scale before tiling")
    parser.add_argument("--tile", type=int, default=320, help="rookery: tile side after scaling = imgsz")
    parser.add_argument("--overlap", type=int, default=64, help="rookery: tile overlap after scaling")
    parser.add_argument("--conf", type=float, default=None, help="a fixed counting threshold (default: calibrated)")
    parser.add_argument("--device", default=None, help="'0' (default when CUDA is there) or 'cpu'")
    parser.add_argument("--only", choices=("rookery", "whole"), default=None, help="train one approach only")
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
             WHOLE_IMGSZ, 8),
        )  # fmt: skip
        for method, params, imgsz, batch in specs:
            if args.only and method.split()[0] != args.only:
                continue
            folder = work / f"fold{fold}" / method.replace(" ", "_")
            build_dataset(src / "points.csv", src / "train", classes, folder / "dataset", masks=src / "masks",
                          params=params)  # fmt: skip
            data_yaml = folder / "dataset" / "data.yaml"
            _val_on_train(data_yaml)
            _repeat_small(folder / "dataset", args.min_epoch_images)
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


def _repeat_small(dataset: Path, min_images: int) -> None:
    """Link copies of the training images and labels until there are at least `min_images` of them."""
    images, labels = dataset / "images" / "train", dataset / "labels" / "train"
    originals = sorted(p for p in images.iterdir() if p.is_file())
    copies = -(-min_images // max(1, len(originals)))  # ceil
    for k in range(1, copies):
        for image in originals:
            (images / f"{image.stem}_r{k}{image.suffix}").symlink_to(image.resolve())
            label = labels / f"{image.stem}.txt"
            if label.is_file():
                (labels / f"{image.stem}_r{k}.txt").symlink_to(label.resolve())


def train_all(jobs: list[Job], args: argparse.Namespace) -> None:
    """Run the trainings, `args.parallel` at a time, each in its own process (its own CUDA context)."""
    queue = list(jobs)
    running: list[tuple[Job, subprocess.Popen, float]] = []
    while queue or running:
        while queue and len(running) < args.parallel:
            job = queue.pop(0)
            spec = {"data": str(job.data_yaml), "imgsz": job.imgsz, "batch": job.batch, "out": str(job.folder),
                    "device": args.device, "seconds": args.train_seconds, "epochs": args.epochs,
                    "fraction": args.fraction, "workers": max(2, (os.cpu_count() or 2) // args.parallel)}  # fmt: skip
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

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from sliced_inference import without_polars

    without_polars()  # the epochs are counted from results.csv itself
    yolo_settings.update({"mlflow": False, "sync": False})
    budget = {"epochs": spec["epochs"]} if spec["epochs"] else {"epochs": 1000, "time": spec["seconds"] / 3600}
    from rookery.training.augment import add_transpose

    model = YOLO("yolov8n.yaml")
    model.add_callback("on_pretrain_routine_end", add_transpose)
    model.train(
        data=spec["data"], imgsz=spec["imgsz"], batch=spec["batch"], nbs=spec["batch"], device=spec["device"],
        workers=spec["workers"], project=spec["out"], name="train", exist_ok=True, verbose=False, plots=False,
        val=False, seed=0, optimizer="AdamW", lr0=0.003, fliplr=0.5, flipud=0.5, max_det=3000, patience=0,
        fraction=spec["fraction"], **budget,
    )  # fmt: skip


THRESHOLDS = np.round(np.arange(0.05, 0.601, 0.05), 2)


@dataclass
class FoldResult:
    fold: str
    true: np.ndarray  # per class, inside the held-out photo's mask
    pred: np.ndarray  # per class at the calibrated (or fixed) threshold
    at_025: np.ndarray  # per class at the fixed 0.25
    conf: float  # the threshold used


def evaluate_all(jobs: list[Job], data: Path, classes: object, args: argparse.Namespace, device: str) -> dict:
    """Per method, a FoldResult for each held-out photo."""
    from rookery.evaluation.counting import competition_rmse
    from rookery.evaluation.truth import from_points
    from rookery.inference import Predictor

    out: dict[str, list[FoldResult]] = {}
    for job in jobs:
        weights = job.folder / "train" / "weights"
        pt = next((p for p in (weights / "last.pt", weights / "best.pt") if p.is_file()), None)
        test, train = job.folder.parent / "test", job.folder.parent / "src"
        if not test.is_dir():
            _subset(data, [job.fold], test)
        (held,) = from_points(test / "points.csv", test / "train", classes, masks=test / "masks").photos  # type: ignore[arg-type]
        seen = from_points(train / "points.csv", train / "train", classes, masks=train / "masks").photos  # type: ignore[arg-type]
        truth = np.array(held.truth)
        if pt is None:
            print(f"  fold {job.fold} {job.method}: no trained weights; counted as zero")
            zero = np.zeros_like(truth)
            out.setdefault(job.method, []).append(FoldResult(job.fold, truth, zero, zero, float("nan")))
            continue
        if job.method == "rookery":
            tile = round(args.tile / args.scale)
            options = {"tile": tile, "overlap": round(args.overlap / args.scale), "imgsz": args.tile}
        else:  # the whole photo in one piece, its long side resized to 1408 px
            import cv2

            side = max(cv2.imread(str(held.image)).shape[:2])
            options = {"tile": side, "overlap": 0, "imgsz": WHOLE_IMGSZ}
        predictor = Predictor.from_path(pt, backend="torch", device=device, conf=0.05, batch=32, **options)
        on_train, on_held = _counts_by_threshold(predictor, seen), _counts_by_threshold(predictor, [held])
        if args.conf is not None:
            conf = float(args.conf)
        else:  # the threshold that counts best on the model's own training photos
            train_true = np.array([p.truth for p in seen])
            scores = [competition_rmse(train_true, on_train[:, k]) for k in range(len(THRESHOLDS))]
            conf = float(THRESHOLDS[int(np.argmin(scores))])
        k = int(np.argmin(np.abs(THRESHOLDS - conf)))
        k25 = int(np.argmin(np.abs(THRESHOLDS - 0.25)))
        out.setdefault(job.method, []).append(FoldResult(job.fold, truth, on_held[0, k], on_held[0, k25], conf))
    return out


def _counts_by_threshold(predictor: object, photos: list) -> np.ndarray:
    """Per-class counts of each photo at each of THRESHOLDS: (photos, thresholds, classes).

    One prediction at the lowest threshold, then filtered by score: the same boxes as predicting at each
    threshold, since a box can only be suppressed by a better-scored one (up to seam-cut boxes, which rank
    after whole ones)."""
    nc = len(predictor.class_names)  # type: ignore[attr-defined]
    boxes = predictor.predict_many([p.image for p in photos], [p.mask for p in photos])  # type: ignore[attr-defined]
    return np.array([[np.bincount(b.cls[b.score >= t], minlength=nc)[:nc] for t in THRESHOLDS] for b in boxes])


def report(results: dict[str, list[FoldResult]], names: list[str], folds: tuple) -> float:
    from rookery.evaluation.counting import counting_metrics

    short = [n.replace("_", " ") for n in names]
    overall: dict[str, float] = {}
    for method, rows in results.items():
        print(f"\n{method}: counts per held-out photo (predicted / true), per-class RMSE, competition metric")
        header = f"{'fold':<6}{'conf':>6}" + "".join(f"{n:>17}" for n in short) + f"{'total':>13}{'metric':>9}"
        header += f"{'at 0.25':>9}"
        print(header)
        print("-" * len(header))
        for r in rows:
            m = counting_metrics(r.true[None], r.pred[None], names)
            m25 = counting_metrics(r.true[None], r.at_025[None], names)
            cells = "".join(f"{f'{p}/{t}':>17}" for p, t in zip(r.pred, r.true, strict=True))
            print(f"{r.fold:<6}{r.conf:>6.2f}{cells}{f'{r.pred.sum()}/{r.true.sum()}':>13}"
                  f"{m.competition_rmse:>9.2f}{m25.competition_rmse:>9.2f}")  # fmt: skip
        true = np.array([r.true for r in rows])
        m = counting_metrics(true, np.array([r.pred for r in rows]), names)
        m25 = counting_metrics(true, np.array([r.at_025 for r in rows]), names)
        print(f"{'RMSE':<6}{'':>6}" + "".join(f"{v:>17.2f}" for v in m.rmse) + f"{m.total_rmse:>13.2f}"
              f"{m.competition_rmse:>9.2f}{m25.competition_rmse:>9.2f}")  # fmt: skip
        overall[method] = m.competition_rmse
    zero = counting_metrics(true, np.zeros_like(true), names).competition_rmse
    print("\ncompetition metric (mean over classes of the per-class RMSE over the folds), lower is better:")
    for method, value in overall.items():
        print(f"  {method:<12} {value:.3f}")
    print(f"  {'counting 0':<12} {zero:.3f} (what a model that finds nothing scores)")
    ratio = overall["rookery"] / overall["whole photo"] if len(overall) == 2 else float("nan")
    print(f"metric_ratio_vs_whole_photo={ratio:.3f}")
    return ratio


if __name__ == "__main__":
    main()
