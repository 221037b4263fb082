"""Benchmark: counting accuracy on the real sea lions, by folds of photos, for rookery's counting recipes.

    python bench/sealions.py                        # on a CUDA GPU: 4 folds x 3 methods, all trainings at once
    python bench/sealions.py --seconds 300          # the GPU budget per method and fold (wall seconds)
    python bench/sealions.py --work W               # resumable: a fold's finished methods are kept in W
    python bench/sealions.py --methods heatmap      # some methods only
    python bench/sealions.py --device cpu --seconds 20 --folds 2 --photos 4,6,42,50   # a smoke run

The photos: the 13 shared photos with truth — 0, 1, 4, 6, 8 at 1/4 scale (../shared/data/sealions) and 41, 42,
44, 45, 49, 50, 100, 640 at full resolution (../shared/data/sealions-fullres; the painted-only 41, 45, 49, 100
and 640 with a disc around each known dot inpainted by OpenCV's Telea method). They are dealt into --folds
folds (by photo; each photo is scored once, by models that never saw it). For each fold and method, one
budget of --seconds:

  heatmap      rookery's default recipe (rookery.training.recipe): data set at 1/2 of full resolution
               (`data build --resolution 0.5 --frame-px 4992`, 384 px tiles), the heatmap point network,
               per-class thresholds and count intervals cross-fitted on the training photos' own folds.
  yolo tiles   the same data set, yolov8n from scratch on the tiles (Ultralytics), counted sliced at the same
               resolution; threshold chosen on its training photos (from 0.05 to 0.60).
  whole photo  the seed's approach: each photo whole, its long side resized to 1408 px (a resolution of
               1408/4992 by the frame rule), yolov8n trained and counted at imgsz 1408; threshold as above.
  counting 0   predicts no animal.

All trainings run side by side (each in its own process). Truth: the points inside each photo's mask. The
table gives per-class RMSE and the competition metric (the mean over the 5 classes of the per-class RMSE),
the total-count % error per photo and the coverage of the 90 % intervals (share of photo x class pairs with a
true or predicted animal whose truth lies in the interval). Last line:
`loo_ratio_vs_whole=<heatmap/whole photo> loo_ratio_vs_zero=<heatmap/counting 0> coverage90=<heatmap>`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUARTER = ("0", "1", "4", "6", "8")
PAIRS = ("42", "44", "50")
PAINTED = ("41", "45", "49", "100", "640")
FRAME_PX = 4992
WHOLE_IMGSZ = 1408
METHODS = ("heatmap", "yolo tiles", "whole photo")


def _data_dir(name: str) -> Path:
    """The repo's git-ignored copy (.sealions, .sealions-fullres: carried to a GPU machine), else ../shared."""
    local = ROOT / f".{name}"
    return local if (local / "points.csv").is_file() else ROOT.parent / "shared" / "data" / name


def main(argv: list[str] | None = None) -> float | None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=None, help="working folder (resumable); default a temp dir")
    parser.add_argument("--folds", type=int, default=4, help="folds of photos (default 4)")
    parser.add_argument("--seconds", type=float, default=240.0, help="training budget per method and fold (wall s)")
    parser.add_argument("--methods", default=",".join(m.split()[0] for m in METHODS), help="heatmap,yolo,whole")
    parser.add_argument("--photos", default=None, help="a comma-separated subset of the 13 photos (smoke runs)")
    parser.add_argument("--device", default=None, help="'0' (default when CUDA is there) or 'cpu'")
    parser.add_argument("--job", type=Path, default=None, help=argparse.SUPPRESS)  # internal: one training
    args = parser.parse_args(argv)
    if args.job is not None:
        run_job(json.loads(args.job.read_text()))
        return None
    import torch

    if args.device is None:
        if not torch.cuda.is_available():
            print("sealions: no CUDA GPU here; this benchmark trains 12 models (pass --device cpu to force); skipped")
            return None
        args.device = "0"
    quarter, full = _data_dir("sealions"), _data_dir("sealions-fullres")
    for d in (quarter, full):
        if not (d / "points.csv").is_file():
            print(f"sealions: the sea lion sample is not at {d} (no points.csv); skipped")
            return None
    if args.work is not None:
        return run(args, quarter, full, args.work.resolve())
    with tempfile.TemporaryDirectory(prefix="rookery-bench-sealions-") as tmp:
        return run(args, quarter, full, Path(tmp))


def run(args: argparse.Namespace, quarter: Path, full: Path, work: Path) -> float:
    os.environ.setdefault("ROOKERY_HOME", str(work / "home"))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from rookery.data.classes import Classes
    from sealions_data import assign_folds, gather_photos, subset

    classes = Classes.load(ROOT / "examples" / "sealions" / "classes.yaml")
    t0 = time.perf_counter()
    photos = gather_photos(quarter, full, work / "photos", QUARTER, PAIRS, PAINTED)
    names = [p for p in photos.stems if args.photos is None or p in args.photos.split(",")]
    folds = assign_folds(photos, names, args.folds)
    wanted = [m for m in METHODS if m.split()[0] in args.methods.split(",")]
    layout = "; ".join(f"{k}: {','.join(f)}" for k, f in enumerate(folds))
    print(f"photos: {len(names)} ({', '.join(names)}), {args.folds} folds: {layout}; methods {', '.join(wanted)}; "
          f"{args.seconds:.0f} s each; prepared in {time.perf_counter() - t0:.0f} s")  # fmt: skip
    jobs = []
    for k, held in enumerate(folds):
        train = [n for n in names if n not in held]
        fold = work / f"fold{k}"
        subset(photos.root, train, fold / "train_src")
        subset(photos.root, held, fold / "test_src")
        for method in wanted:
            out = fold / method.replace(" ", "_")
            if (out / "result.json").is_file():
                continue  # resumable: this fold and method are done
            spec = {"method": method, "src": str(fold / "train_src"), "test": str(fold / "test_src"),
                    "out": str(out), "seconds": args.seconds, "device": args.device, "fold": k}  # fmt: skip
            out.mkdir(parents=True, exist_ok=True)
            (out / "job.json").write_text(json.dumps(spec))
            jobs.append(out)
    run_all(jobs)
    results = {m: [json.loads((work / f"fold{k}" / m.replace(" ", "_") / "result.json").read_text())
                   for k in range(len(folds)) if (work / f"fold{k}" / m.replace(" ", "_") / "result.json").is_file()]
               for m in wanted}  # fmt: skip
    from sealions_report import report

    return report(results, classes.names)


def run_all(jobs: list[Path]) -> None:
    """Every training at once, each in its own process (its own CUDA context), then wait for all."""
    procs = []
    cpus = os.cpu_count() or 2
    for out in jobs:
        log = (out / "train.log").open("w")
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, cpus // max(1, len(jobs))))}
        procs.append((out, subprocess.Popen([sys.executable, __file__, "--job", str(out / "job.json")],
                                            stdout=log, stderr=log, env=env), time.perf_counter()))  # fmt: skip
    for out, proc, started in procs:
        proc.wait()
        status = "ok" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
        print(f"  {out.parent.name} {out.name:<12} {time.perf_counter() - started:.0f} s, {status}", flush=True)
        if proc.returncode != 0:
            print((out / "train.log").read_text()[-3000:])


def run_job(spec: dict) -> None:
    """One fold and method, in its own process: build, train, count the held-out photos, write result.json."""
    os.environ["ROOKERY_HOME"] = str(Path(spec["out"]) / "home")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from sealions_methods import run_method

    result = run_method(spec)
    Path(spec["out"], "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
