"""Benchmark: the same photos counted by plain local `rookery predict` (inference.batch.count_photos) and by the
Ray path (rookery.scale.count_collection) in one run; on a GPU machine also Ray with 1 GPU vs all GPUs.

    .venv/bin/python bench/ray_batch.py                     # 16 synthetic 4992x3328 photos (1500 on GPUs)
    .venv/bin/python bench/ray_batch.py --quick             # 6 photos of 2496x1664, a 2-epoch model if none cached
    .venv/bin/python bench/ray_batch.py --weights best.pt   # any Ultralytics checkpoint (an ONNX twin is exported)

Both paths count the same photo files with the same weights, tile, overlap, conf and iou: locally one process
(ONNX Runtime on the CPU, or the GPU engine on CUDA); on Ray, `ray.init()` in this process (the embedded default,
started before the clock: a cluster is long-lived) with one model actor per CPU (here: --actors, default 2) or
one per GPU. The Ray time runs from the pipeline's start to the last consolidated file, actors' model loading
included; "steady" leaves out the time to the first result block (actor start-up). The photos are
hard links of a few distinct synthetic scenes under distinct names (keys differ by path).

Last line: `ray_vs_local=<Ray photos/s over local photos/s> gpu_scaling_2=<2 GPUs over 1 | n/a>`, where
gpu_scaling_2 is n/a (with the reason above it) on a machine with fewer than 2 GPUs. Both rates leave out
start-up, like for like: local loads its Predictor before its clock starts, and Ray's rate is taken after its
first result block (actor processes, CUDA initialisation, model load and warm-up: ~15 s on an H200, paid once
per run, so it is noise on a season of tens of thousands of photos). The end-to-end ratio, start-up included,
is printed above the last line.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=None, help="cache folder (model, photos); default a temp dir")
    parser.add_argument("--quick", action="store_true", help="6 smaller photos; a cached or 2-epoch model")
    parser.add_argument(
        "--photos", type=int, default=None, help="photos counted by each path (default 16 on a CPU, 1500 on GPUs)"
    )
    parser.add_argument("--weights", type=Path, default=None, help="a trained .pt instead of the bench model")
    parser.add_argument("--actors", type=int, default=2, help="CPU actors on a machine without a GPU (default 2)")
    parser.add_argument("--tile", type=int, default=640)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--iou", type=float, default=0.5)
    parser.add_argument("--batch", type=int, default=None, help="tiles per network call (default 8 CPU, 32 GPU)")
    args = parser.parse_args(argv)
    if args.work is not None:
        run(args, args.work.resolve())
        return
    with tempfile.TemporaryDirectory(prefix="rookery-ray-bench-") as tmp:
        run(args, Path(tmp))


def run(args: argparse.Namespace, work: Path) -> None:
    console = Console(stderr=True)
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("ROOKERY_HOME", str(work / "home"))
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from rookery.offline import ensure_offline

    ensure_offline()
    import torch

    import sliced_inference as si

    gpus = torch.cuda.device_count()
    pt = args.weights or si.trained_model(work, argparse.Namespace(quick=args.quick, epochs=None), console)
    weights = _model(pt, work / "model", gpus > 0)
    size = (2496, 1664) if args.quick else si.SIZE
    # A GPU counts ~80 photos/s: it needs a long stream for a rate that is not start-up.
    n = args.photos or (6 if args.quick else 1500 if gpus else 16)
    scenes = si.synthetic_photos(work / f"scenes-{size[0]}", 4, console, size=size)
    photos = _collection(work / "collection", scenes, n)
    batch = args.batch or (32 if gpus else 8)
    options = {"tile": args.tile, "overlap": args.overlap, "conf": args.conf, "iou": args.iou, "batch": batch}
    load = os.getloadavg()
    console.print(f"{n} photos {size[0]}x{size[1]}, model {weights.name}; {os.cpu_count()} CPU(s), {gpus} GPU(s); "
                  f"load average before: {load[0]:.2f}")  # fmt: skip

    local = _local(weights, photos, work / "out-local", options, console)
    import ray

    ray.init(include_dashboard=False, configure_logging=False, log_to_driver=False)
    try:
        from rookery.scale import count_collection

        rates: dict[int, float] = {}  # steady photos/s (after the first block)
        whole: dict[int, float] = {}  # end to end, start-up included
        for actors in [1, gpus] if gpus >= 2 else [gpus or args.actors]:
            out = work / f"out-ray-{actors}"
            shutil.rmtree(out, ignore_errors=True)
            s = count_collection(photos, out, str(weights), options=options, actors=actors, track=False,
                                 progress=False)  # fmt: skip
            # After the first block (actor start-up left out): telling only when there are many blocks.
            many = s.counted >= 8 * s.first_block_photos
            rates[actors] = s.steady_photos_per_s if many else s.photos_per_s
            whole[actors] = s.photos_per_s
            steady = f" (after the first block: {s.steady_photos_per_s:.3f})" if many else ""
            console.print(
                f"ray, {actors} {s.accelerator} actor(s): {s.counted} photos in {s.seconds:.1f} s = "
                f"{s.photos_per_s:.3f} photos/s{steady}",
                highlight=False,
            )
            same = (out / "counts.csv").read_bytes() == (work / "out-local" / "counts.csv").read_bytes()
            console.print(f"  counts.csv identical to local: {same}", highlight=False)
    finally:
        ray.shutdown()
    console.print(f"load average after: {os.getloadavg()[0]:.2f}", highlight=False)
    first = rates[min(rates)]
    console.print(f"end to end (start-up included): ray_vs_local={whole[min(whole)] / local:.2f}", highlight=False)
    scaling = f"{rates[max(rates)] / first:.2f}" if gpus >= 2 else "n/a"
    if gpus < 2:
        console.print(f"gpu_scaling_2 = n/a: this machine has {gpus} GPU(s); 2 are needed to measure it")
    print(f"ray_vs_local={first / local:.2f} gpu_scaling_2={scaling}")


def _model(weights: Path, folder: Path, gpu: bool) -> Path:
    """The weights each path loads (a copy in the work folder): the .pt on a GPU (the GPU engine), its ONNX twin
    on the CPU."""
    folder.mkdir(parents=True, exist_ok=True)
    pt = folder / "best.pt"
    if not pt.is_file():
        shutil.copyfile(weights, pt)
    if gpu:
        return pt
    onnx = pt.with_suffix(".onnx")
    if not onnx.is_file():
        from rookery.inference import export_onnx

        export_onnx(pt, imgsz=640)
    return onnx


def _collection(folder: Path, scenes: list[Path], n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    photos = []
    for i in range(n):
        path = folder / f"photo{i:03d}.jpg"
        if not path.exists():
            os.link(scenes[i % len(scenes)], path)
        photos.append(path)
    return photos


def _local(weights: Path, photos: list[Path], out: Path, options: dict, console: Console) -> float:
    from rookery.inference.batch import count_photos
    from rookery.packaging.models import load_predictor

    predictor, _ = load_predictor(str(weights), **options)
    count_photos(predictor, photos[:1], out / "warm-up", annotate=False, progress=False)  # imports, ORT warm-up
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    summary = count_photos(predictor, photos, out, annotate=False, progress=False)
    seconds = time.perf_counter() - started
    rate = summary.counted / seconds
    console.print(f"local ({predictor.backend_name} on {predictor.device}): {summary.counted} photos in "
                  f"{seconds:.1f} s = {rate:.3f} photos/s", highlight=False)  # fmt: skip
    return rate


if __name__ == "__main__":
    main()
