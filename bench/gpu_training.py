"""Benchmark (CUDA GPUs): `rookery train` on one GPU and on all of them (Ultralytics' DDP), with the aerial
augmentations on, and the throughput and GPU memory that the MLflow run records.

    python bench/gpu_training.py                    # 32 synthetic 4992x3328 photos, 5 epochs per training
    python bench/gpu_training.py --epochs 10 --work /tmp/gt

Each training is rookery.training.trainer.train (what `rookery train --device D` runs): yolov8n from scratch,
640 px tiles, batch 32 in all (Ultralytics splits it across the GPUs), both flips, random transposes (--rot90
0.5: with the flips, all 8 rotations), Ultralytics' scale and mosaic, logged into its own MLflow run (SQLite
under --work). Read back from each run: `train/images_per_second` per epoch (the training set over the
epoch's wall time, validation included; the median after the first epoch), `train/gpu_mem_gb` (rank 0's
peak reserved memory), MLflow's system metrics of every GPU (peak memory, mean utilisation) and
`best/mAP50`. Prints the device, torch version, batch, a table, then last
`ddp_speedup=<images/s on all GPUs / on one>` (nan on a machine with one GPU). Without CUDA it exits 0.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sliced_inference.py: without_polars


def main(argv: list[str] | None = None) -> float | None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=None, help="working folder; default a temp dir")
    parser.add_argument("--photos", type=int, default=32, help="synthetic photos (default 32)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32, help="images per optimizer step, over all GPUs")
    parser.add_argument("--workers", type=int, default=8, help="data loader processes per GPU")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("gpu_training: torch is not installed; nothing to measure (skipped)")
        return None
    if not torch.cuda.is_available():
        print("gpu_training: no CUDA GPU here (torch.cuda.is_available() is False); skipped")
        return None
    if args.work is not None:
        return run(args, args.work.resolve())
    with tempfile.TemporaryDirectory(prefix="rookery-bench-gpu-training-") as tmp:
        return run(args, Path(tmp))


def run(args: argparse.Namespace, work: Path) -> float:
    import torch

    os.environ["ROOKERY_HOME"] = str(work / "home")
    os.environ.setdefault("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "2")
    from rookery.config import get_settings
    from rookery.data.dataset import BuildParams, build_dataset
    from rookery.data.synthetic import generate_survey
    from rookery.offline import ensure_offline
    from rookery.training.trainer import TrainParams, train
    from sliced_inference import without_polars

    ensure_offline()
    without_polars()
    gpus = torch.cuda.device_count()
    print(
        f"device: {gpus} x {torch.cuda.get_device_name(0)}; torch {torch.__version__}; {os.cpu_count()} CPU "
        f"cores; batch {args.batch} in all, imgsz 640, {args.epochs} epochs, {args.workers} loader workers per GPU"
    )
    t0 = time.perf_counter()
    dataset = work / "dataset"
    if not (dataset / "data.yaml").is_file():
        survey = generate_survey(work / "survey", images=args.photos, size=(4992, 3328), num_classes=3, seed=0)
        params = BuildParams(tile=640, overlap=64, split=(0.8, 0.2, 0.0))
        build_dataset(work / "survey" / "points.csv", work / "survey" / "train", survey.classes, dataset,
                      masks=work / "survey" / "masks", params=params)  # fmt: skip
    print(f"data set ready in {time.perf_counter() - t0:.0f} s: {dataset}")
    devices = ["0"] + ([",".join(str(i) for i in range(gpus))] if gpus > 1 else [])
    rows = []
    for device in devices:
        params = TrainParams(data=dataset, epochs=args.epochs, imgsz=640, batch=args.batch, device=device,
                             workers=args.workers, plots=False, rot90=0.5, name=f"gpu-{device.replace(',', '-')}",
                             export_onnx=False, register_model=False, patience=0)  # fmt: skip
        t0 = time.perf_counter()
        result = train(params)
        wall = time.perf_counter() - t0
        if not result.complete:
            print(f"  device {device}: the run is incomplete: {result.problems}")
        rows.append((device, wall, _read_run(get_settings().tracking_uri, result.run_id)))
        print(f"  device {device}: {wall:.0f} s, run {result.run_id}")

    print()
    header = (f"{'device':<10}{'GPUs':>5}{'wall s':>8}{'images/s':>10}{'rank-0 GB':>11}{'GPU peak MB (each)':>26}"
              f"{'GPU util % (each)':>22}{'mAP50':>8}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for device, wall, m in rows:
        peak = " / ".join(f"{v:.0f}" for v in m["gpu_mb"]) or "-"
        util = " / ".join(f"{v:.0f}" for v in m["gpu_util"]) or "-"
        print(f"{device:<10}{len(device.split(',')):>5}{wall:>8.0f}{m['images_per_second']:>10.0f}"
              f"{m['gpu_mem_gb']:>11.2f}{peak:>26}{util:>22}{m['map50']:>8.3f}")  # fmt: skip
    speedup = rows[-1][2]["images_per_second"] / rows[0][2]["images_per_second"] if len(rows) > 1 else float("nan")
    print(f"ddp_speedup={speedup:.2f}")
    return speedup


def _read_run(tracking_uri: str, run_id: str | None) -> dict:
    """What the run recorded: median images/s after epoch 1, rank 0's memory, each GPU's peak and mean use."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    run = client.get_run(run_id)
    speed = sorted(client.get_metric_history(run_id, "train/images_per_second"), key=lambda m: m.step)
    values = [m.value for m in speed[1:]] or [m.value for m in speed]
    gpu_mb, gpu_util = [], []
    for i in range(16):
        mem = client.get_metric_history(run_id, f"system/gpu_{i}_memory_usage_megabytes")
        if not mem:
            break
        gpu_mb.append(max(m.value for m in mem))
        util = client.get_metric_history(run_id, f"system/gpu_{i}_utilization_percentage")
        gpu_util.append(float(np.mean([m.value for m in util])) if util else float("nan"))
    return {
        "images_per_second": float(np.median(values)) if values else float("nan"),
        "gpu_mem_gb": run.data.metrics.get("train/gpu_mem_gb", float("nan")),
        "gpu_mb": gpu_mb,
        "gpu_util": gpu_util,
        "map50": run.data.metrics.get("best/mAP50", float("nan")),
    }


if __name__ == "__main__":
    main()
