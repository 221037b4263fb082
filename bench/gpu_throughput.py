"""Benchmark (CUDA GPU): 4992x3328 photos from JPEG bytes to per-class counts, rookery's GPU engine vs the rest.

    python bench/gpu_throughput.py                     # 32 photos streamed; trains (or loads) a yolov8n
    python bench/gpu_throughput.py --quick             # 8 photos, fewer repeats
    python bench/gpu_throughput.py --work /tmp/gb      # cache the model and photos there

Everything runs on the first CUDA GPU with the same weights, tiles (640, overlap 64), conf 0.25, iou 0.5:
  1. rookery: `Predictor.from_path(best.pt)` on CUDA picks the GPU engine (rookery/inference/gpu.py):
     JPEGs decoded 8 per call on the GPU's hardware JPEG engines (nvImageCodec, the `gpu` extra; else
     torchvision's nvJPEG on the SMs, also timed as a variant), tiles as views batched across photos (batch
     32), fp16, the network replayed from a CUDA graph, GPU NMS and seam merge, two batches in flight.
     Variants that each turn one of these off show where the time goes.
  2. Ultralytics predict, fp16, batch 32: the photo decoded by OpenCV, cut into the same tiles, 32 tiles
     per `model.predict(list, half=True)` call; detections offset into the photo and concatenated (no
     merge across seams, so objects in overlaps count twice: a lower bound of its time).
  3. SAHI 0.12.8 on the GPU: `get_sliced_prediction` with the same slices, NMS/IOS postprocess (few
     photos: it runs one slice at a time).
  4. The bare network forward at batch 32 fp16 on random input (the ceiling): Ultralytics' fused model
     `.half()`, NCHW and channels-last, eager and from a CUDA graph, the fastest of the four.
The model is bench/sliced_inference.py's yolov8n trained on a synthetic survey (cached under --work; 100
epochs, ~1 min on a GPU) and the photos its synthetic 4992x3328 scenes (a few distinct ones, streamed
repeatedly: every photo is decoded anew). Prints the device, torch version and batch sizes, the table,
and last `fraction_of_ceiling=<rookery tiles/s over the bare forward's>`. Without CUDA it says so and
exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sliced_inference.py: the model and the photos


def main(argv: list[str] | None = None) -> float | None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=None, help="cache folder (model, photos); default a temp dir")
    parser.add_argument("--quick", action="store_true", help="8 photos, fewer repeats")
    parser.add_argument("--photos", type=int, default=32, help="photos streamed per timed run (default 32)")
    parser.add_argument("--distinct", type=int, default=4, help="distinct synthetic photos (default 4)")
    parser.add_argument("--weights", type=Path, default=None, help="a trained .pt instead of the bench model")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs when no model is cached (100)")
    parser.add_argument("--tile", type=int, default=640)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--iou", type=float, default=0.5)
    parser.add_argument("--sahi-photos", type=int, default=2)
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("gpu_throughput: torch is not installed; nothing to measure (skipped)")
        return None
    if not torch.cuda.is_available():
        print("gpu_throughput: no CUDA GPU here (torch.cuda.is_available() is False); skipped")
        return None
    if args.quick:
        args.photos, args.sahi_photos = min(args.photos, 8), 1
    if args.work is not None:
        return run(args, args.work.resolve())
    with tempfile.TemporaryDirectory(prefix="rookery-bench-gpu-") as tmp:
        return run(args, Path(tmp))


def run(args: argparse.Namespace, work: Path) -> float:
    import torch
    import torchvision
    from rich.console import Console

    console = Console(width=150)
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("ROOKERY_HOME", str(work / "home"))
    from rookery.offline import ensure_offline

    ensure_offline()
    import sliced_inference as si

    t = time.perf_counter()
    pt = args.weights or si.trained_model(work, argparse.Namespace(quick=False, epochs=args.epochs), console)
    console.print(f"model: {pt}, ready in {time.perf_counter() - t:.0f} s")
    paths = si.synthetic_photos(work / "scenes", args.distinct, console)
    blobs = [p.read_bytes() for p in paths]
    stream = [blobs[i % len(blobs)] for i in range(args.photos)]  # each decoded anew
    truth = sum(
        json.loads(paths[i % len(paths)].with_suffix(".json").read_text())["animals"] for i in range(args.photos)
    )
    h, w = cv2.imdecode(np.frombuffer(blobs[0], np.uint8), cv2.IMREAD_COLOR).shape[:2]
    from rookery.data.tiling import tile_grid

    tiles_per_photo = len(tile_grid(w, h, args.tile, args.overlap))
    props = torch.cuda.get_device_properties(0)
    console.print(
        f"device: {props.name} ({props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs); "
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, CUDA {torch.version.cuda}; "
        f"{os.cpu_count()} CPU cores"
    )
    console.print(
        f"photos {w}x{h} ({tiles_per_photo} tiles of {args.tile}, overlap {args.overlap}); stream of "
        f"{args.photos} photos ({len(blobs)} distinct, {sum(map(len, blobs)) / len(blobs) / 1e6:.1f} MB JPEG each); "
        f"batch {args.batch} tiles for rookery, Ultralytics and the bare forward; SAHI 1 slice at a time"
    )
    rows: list[tuple[str, int, float, int]] = []  # method, photos, seconds, count

    def timed(name: str, fn: Callable[[list[bytes]], int], photos: list[bytes], repeats: int) -> None:
        fn(photos[:2])  # warm-up: cuDNN autotuning, lazy imports, allocator growth
        best = None
        for _ in range(repeats):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            count = fn(photos)
            torch.cuda.synchronize()
            s = time.perf_counter() - t0
            best = (s, count) if best is None or s < best[0] else best
        assert best is not None
        rows.append((name, len(photos), best[0], best[1]))
        console.print(f"  {name}: {len(photos) / best[0]:.1f} photos/s ({best[1]} detections)")

    repeats = 2 if args.quick else 3
    from rookery.inference import Predictor

    def rookery_method(**engine: object) -> Callable[[list[bytes]], int]:
        predictor = Predictor.from_path(pt, backend="torch", device="cuda:0", tile=args.tile, overlap=args.overlap,
                                        conf=args.conf, iou=args.iou, batch=args.batch)  # fmt: skip
        gpu = predictor._gpu()
        for key, value in engine.items():  # the decoders are the engine's PhotoLoader's
            setattr(gpu.loader if key in ("decode", "_hw") else gpu, key, value)

        def count(photos: list[bytes]) -> int:
            return int(sum(predictor.counts(b).sum() for b in predictor.predict_many(photos)))  # type: ignore[arg-type]

        return count

    # The engine's own hardware decoder (None without the gpu extra or the engines): timed alone below too.
    hw = Predictor.from_path(pt, backend="torch", device="cuda:0")._gpu().loader._hw
    decoder = "hardware JPEG engines (nvImageCodec)" if hw else "nvJPEG on the SMs (torchvision)"
    timed(f"rookery GPU engine (fp16, batch {args.batch}, CUDA graph, {decoder} x8, GPU merge)", rookery_method(),
          stream, repeats)  # fmt: skip
    if hw:
        timed("rookery, decode nvJPEG on the SMs (torchvision; no nvImageCodec)", rookery_method(_hw=None), stream,
              repeats)  # fmt: skip
    timed("rookery, network eager (no CUDA graph)", rookery_method(cuda_graph=False), stream, repeats)
    timed("rookery, nvJPEG one photo per call", rookery_method(decode_batch=1, _workers=4), stream, repeats)
    timed("rookery, one batch in flight (no post-processing overlap)", rookery_method(depth=1), stream, repeats)
    timed("rookery, seam merge on the CPU (merge.py)", rookery_method(merge_on="cpu"), stream, repeats)
    timed("rookery, decode OpenCV only (8 threads)", rookery_method(decode="cpu", _workers=8, decode_batch=1), stream,
          repeats)  # fmt: skip
    # nvJPEG decodes on the SMs that run the network (decode + forward times add up): CPU threads decoding the
    # photos nvJPEG is too busy for move that work off the GPU.
    cores = os.cpu_count() or 1
    for workers, group in ((cores - 2, 4), (cores - 2, 2), (cores - 4, 2)):
        if workers >= 2:
            timed(f"rookery, decode auto (nvJPEG, else OpenCV; {workers} threads, {group} per call)",
                  rookery_method(decode="auto", _workers=workers, decode_batch=group), stream, repeats)  # fmt: skip
    ultra = ultralytics_method(pt, args)
    timed(f"Ultralytics predict (fp16, batch {args.batch}, no merge)", ultra, stream[: max(4, args.photos // 4)], 1)
    try:
        sahi = sahi_method(pt, args)
        timed("SAHI 0.12.8 on the GPU (NMS IOS)", sahi, stream[: args.sahi_photos], 1)
    except ImportError as e:
        console.print(f"SAHI skipped: {e}")
    ceiling = bare_forward(pt, args, console)
    decode_profile(blobs, hw)
    merge_profile(pt, blobs[0], args, console)

    console.print()
    header = (
        f"{'method':<72} {'photos':>6} {'s':>7} {'photos/s':>9} {'tiles/s':>9} {'of ceiling':>10} {'count/photo':>11}"
    )
    console.print(header, highlight=False)
    console.print("-" * len(header), highlight=False)
    ours = rows[0][1] * tiles_per_photo / rows[0][2]
    for name, n, s, count in rows:
        tps = n * tiles_per_photo / s
        line = f"{name:<72} {n:>6} {s:>7.2f} {n / s:>9.2f} {tps:>9.0f} {tps / ceiling:>10.3f} {count / n:>11.1f}"
        console.print(line, highlight=False)
    console.print(f"{'bare forward, batch ' + str(args.batch) + ' fp16 (ceiling)':<72} {'':>6} {'':>7} "
                  f"{ceiling / tiles_per_photo:>9.2f} {ceiling:>9.0f} {1.0:>10.3f}", highlight=False)  # fmt: skip
    console.print(f"true animals per photo: {truth / args.photos:.1f} (the plain Ultralytics rows count seam "
                  "overlaps twice)", highlight=False)  # fmt: skip
    ultra_tps = next((r[1] * tiles_per_photo / r[2] for r in rows if r[0].startswith("Ultralytics")), None)
    if ultra_tps:
        console.print(f"rookery vs Ultralytics predict: {ours / ultra_tps:.2f}x", highlight=False)
    fraction = ours / ceiling
    console.print(f"fraction_of_ceiling={fraction:.3f}", highlight=False)
    return fraction


def ultralytics_method(pt: Path, args: argparse.Namespace) -> Callable[[list[bytes]], int]:
    from ultralytics import YOLO

    from rookery.data.tiling import tile_grid

    model = YOLO(str(pt))

    def count(photos: list[bytes]) -> int:
        total = 0
        for blob in photos:
            image = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
            tiles = tile_grid(image.shape[1], image.shape[0], args.tile, args.overlap)
            crops = [t.crop(image) for t in tiles]
            for i in range(0, len(crops), args.batch):
                results = model.predict(crops[i : i + args.batch], imgsz=args.tile, conf=args.conf, iou=args.iou,
                                        half=True, device=0, max_det=10000, verbose=False)  # fmt: skip
                for t, r in zip(tiles[i : i + args.batch], results, strict=True):
                    xyxy = r.boxes.xyxy.cpu().numpy() + np.array([t.x0, t.y0, t.x0, t.y0], np.float32)
                    total += len(xyxy)
        return total

    return count


def sahi_method(pt: Path, args: argparse.Namespace) -> Callable[[list[bytes]], int]:
    from sahi import AutoDetectionModel
    from sahi.predict import get_sliced_prediction

    model = AutoDetectionModel.from_pretrained(
        model_type="ultralytics", model_path=str(pt), confidence_threshold=args.conf, device="cuda:0",
        image_size=args.tile,
    )  # fmt: skip
    model.model.overrides.update(iou=args.iou, max_det=10000)
    ratio = args.overlap / args.tile

    def count(photos: list[bytes]) -> int:
        total = 0
        for blob in photos:
            rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            result = get_sliced_prediction(
                rgb, model, slice_height=args.tile, slice_width=args.tile, overlap_height_ratio=ratio,
                overlap_width_ratio=ratio, perform_standard_pred=False, postprocess_type="NMS",
                postprocess_match_metric="IOS", postprocess_match_threshold=args.iou, verbose=0,
            )  # fmt: skip
            total += len(result.object_prediction_list)
        return total

    return count


def bare_forward(pt: Path, args: argparse.Namespace, console: object) -> float:
    """Tiles/s of the network alone at the batch size, fp16: NCHW and channels-last, eager and replayed from a
    CUDA graph; the fastest of the four is the ceiling (the strictest one)."""
    import copy

    import torch

    from rookery.inference import TorchBackend

    base = TorchBackend.from_checkpoint(pt, "cuda:0").module.half().eval()
    torch.backends.cudnn.benchmark = True
    best = 0.0
    for layout in (torch.contiguous_format, torch.channels_last):
        m = copy.deepcopy(base).to(memory_format=layout)
        x = torch.rand(args.batch, 3, args.tile, args.tile, device="cuda:0").half().contiguous(memory_format=layout)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode():
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(10):
                    m(x)
            torch.cuda.current_stream().wait_stream(side)
            with torch.cuda.graph(graph):
                m(x)
            for mode, step in (("eager", lambda: m(x)), ("CUDA graph", graph.replay)):  # noqa: B023
                for _ in range(5):
                    step()
                torch.cuda.synchronize()
                n, t0 = 60, time.perf_counter()
                for _ in range(n):
                    step()
                torch.cuda.synchronize()
                tps = n * args.batch / (time.perf_counter() - t0)
                name = "NCHW" if layout is torch.contiguous_format else "channels-last"
                print(f"  bare forward, batch {args.batch} fp16, {name}, {mode}: {tps:.0f} tiles/s")
                best = max(best, tps)
    return best


def decode_profile(blobs: list[bytes], hw: tuple[Any, Any] | None) -> None:
    """Seconds per photo of each decoder alone: nvJPEG one at a time, nvJPEG given a list, OpenCV, and the hardware
    engines given the list when `hw` (the engine's (nvimgcodec, Decoder)) is there."""
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    data = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]
    decode_jpeg(data[0], mode=ImageReadMode.RGB, device="cuda")
    lines = []
    for name, fn in (
        ("nvJPEG, one call per photo", lambda: [decode_jpeg(d, mode=ImageReadMode.RGB, device="cuda") for d in data]),
        ("nvJPEG, one call for the list", lambda: decode_jpeg(data, mode=ImageReadMode.RGB, device="cuda")),
        ("OpenCV, 1 thread", lambda: [cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR) for b in blobs]),
        *_hardware_decode(blobs, hw),
    ):
        fn()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        lines.append(f"{name}: {(time.perf_counter() - t0) / len(blobs) * 1e3:.1f} ms/photo")
    print("  decode alone, " + "; ".join(lines))


def merge_profile(pt: Path, blob: bytes, args: argparse.Namespace, console: object) -> None:
    """The seam merge of one photo's detections: merge.py on the CPU vs the dense GPU rule."""
    import torch

    from rookery.inference import Predictor
    from rookery.inference.merge import merge_detections, merge_nms_torch

    predictor = Predictor.from_path(pt, backend="torch", device="cuda:0", tile=args.tile, overlap=args.overlap,
                                    conf=args.conf, iou=args.iou, batch=args.batch)  # fmt: skip
    (boxes,) = predictor.predict_many([blob])
    n = len(boxes)  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    # the merged boxes plus jittered copies stand in for the duplicates that seams give
    xyxy = np.concatenate([boxes.xyxy, boxes.xyxy + rng.normal(0, 1, boxes.xyxy.shape)])  # type: ignore[union-attr]
    cls = np.concatenate([boxes.cls, boxes.cls])  # type: ignore[union-attr]
    score = np.concatenate([boxes.score, boxes.score * 0.9])  # type: ignore[union-attr]
    cut = rng.uniform(size=len(xyxy)) < 0.1
    t0 = time.perf_counter()
    for _ in range(10):
        merge_detections(xyxy, cls, score, cut, "nms", args.iou)
    cpu = (time.perf_counter() - t0) / 10
    tensors = [torch.from_numpy(a).cuda() for a in (xyxy, cls, score, cut)]
    merge_nms_torch(tensors[0], tensors[1], tensors[2], tensors[3], args.iou)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(10):
        merge_nms_torch(tensors[0], tensors[1], tensors[2], tensors[3], args.iou).cpu()
    gpu = (time.perf_counter() - t0) / 10
    print(f"  seam merge of {len(xyxy)} boxes ({n} objects): merge.py on the CPU {cpu * 1e3:.2f} ms, "
          f"on the GPU {gpu * 1e3:.2f} ms")  # fmt: skip


def _hardware_decode(blobs: list[bytes], hw: tuple[Any, Any] | None) -> list[tuple[str, Callable[[], object]]]:
    """The hardware-engine row of the decode profile, when the engine has that decoder."""
    if hw is None:
        return []
    nv, decoder = hw
    return [("hardware engines (nvImageCodec), one call for the list",
             lambda: decoder.decode([nv.CodeStream(b) for b in blobs]))]  # fmt: skip


if __name__ == "__main__":
    main()
