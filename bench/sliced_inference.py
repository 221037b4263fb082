"""Benchmark: sliced inference on whole photos, rookery's engine vs SAHI vs a plain Ultralytics loop (CPU).

    .venv/bin/python bench/sliced_inference.py                    # 5 synthetic 4992x3328 photos + real photos
    .venv/bin/python bench/sliced_inference.py --quick            # 1 photo each, a cached or tiny model
    .venv/bin/python bench/sliced_inference.py --work /tmp/rb     # keep the trained model and photos there
    .venv/bin/python bench/sliced_inference.py --int8             # + a timed row for the NNCF int8 model

Needs the peer: `pip install -e '.[bench]'` (SAHI 0.12.8's own requirements install beside rookery's pins).
The same trained weights, tile (640), overlap (64), conf (0.25) and iou (0.5) for all three methods:
  1. rookery: `Predictor.from_path(best.onnx)` with the default backend on a CPU (--backend auto: OpenVINO
     when installed, else ONNX Runtime), batch 8; the photo is read from its path in rookery's tiling thread.
  2. SAHI: `get_sliced_prediction(path, AutoDetectionModel(ultralytics, best.pt))` with the same slices,
     no full-image pass. The seam rule is the same on both sides (--merge): "greedy" (the default) is
     rookery's greedy merge against SAHI's own default, GREEDYNMM with IOS, so that the counts can agree;
     "nms" is rookery's default rule (IoU, plus IoS for boxes cut by a tile edge) against SAHI's NMS with
     --sahi-metric (IOS by default: with IOU, SAHI keeps both the whole view of an animal and the fragment
     of it that the next tile's edge cuts, so it counts animals on seams twice). The untimed table of seam
     rules shows every pair's counts. The synthetic photos' true counts are printed beside.
     SAHI's Ultralytics wrapper leaves Ultralytics' per-slice NMS at its defaults (iou 0.7, 300 boxes),
     so the model's overrides are set to iou and max_det 10000 here: all three then run the same per-tile
     NMS. Ultralytics' predict also takes its input size from the checkpoint's training (320 here) unless
     told: SAHI gets image_size=tile and the loop imgsz=tile, so that every method runs the network on
     the 640 px tiles as they are.
  3. plain loop: `YOLO(best.pt).predict(tile)` for each tile of rookery's grid, boxes offset into the
     photo and simply concatenated: NO merge across seams (an object in an overlap counts twice), so its
     count is higher and its time a lower bound of a plain approach.
The weights are a yolov8n trained here on a small synthetic survey (cached under --work; 320 px tiles at
the photos' scale, one class, 30 epochs on a CPU or 100 on a CUDA GPU), so detections and counts are real;
--quick without a cached model trains for 2 epochs only, and that model finds next to nothing.
Sources: the synthetic photos, the real sea lion sample at 1/4 scale (shared/data/sealions/train) and at full
resolution (shared/data/sealions-fullres/train, 4992x3328; a model trained on synthetic animals finds few of
them, so these rows time real JPEGs and compare counts between methods, not against the truth).
With --int8 a second rookery row runs the int8 model (rookery.inference.quantize, calibrated on the training
survey's photos, never on the timed ones) on OpenVINO: its count change against the float model is printed.
Each method is warmed up once; then the methods take turns photo by photo (a busy
spell of a shared machine hits them all) and each is timed from the JPEG path to the count.
Prints a profile of rookery's stages, the comparison table and, last, `speedup_vs_sahi=<x>` (the median
seconds per 4992x3328 photo of SAHI over rookery's).
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
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The model and photos live in sliced_setup.py; other benches import them from here, as before.
from sliced_setup import SIZE, int8_model, synthetic_photos, trained_model, without_polars  # noqa: F401

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sealions"
FULLRES = REAL.with_name("sealions-fullres")
Method = Callable[[Path], int]  # JPEG path -> number of detections


def main(argv: list[str] | None = None) -> float | None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=None, help="cache folder (model, photos); default a temp dir")
    parser.add_argument("--quick", action="store_true", help="1 timed photo per source; a cached or tiny model")
    parser.add_argument("--photos", type=int, default=5, help="timed synthetic 4992x3328 photos (default 5)")
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="training epochs of the detector (default 30 on a CPU, 100 on a CUDA GPU)",
    )
    parser.add_argument("--real", type=Path, default=REAL, help="the real sea lion sample (its train/ photos)")
    parser.add_argument("--fullres", type=Path, default=FULLRES, help="the full-resolution sample (its train/)")
    parser.add_argument("--backend", choices=["auto", "onnx", "openvino", "torch"], default="auto")
    parser.add_argument("--precision", choices=["f32", "bf16"], default="f32", help="OpenVINO's float precision")
    parser.add_argument("--int8", action="store_true", help="also time the NNCF int8 model on OpenVINO")
    parser.add_argument("--merge", choices=["greedy", "nms"], default="greedy", help="the seam rule of both sides")
    parser.add_argument("--prepare-only", action="store_true", help="train (or load) the model, make the photos, stop")
    parser.add_argument("--tile", type=int, default=640)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--iou", type=float, default=0.5)
    parser.add_argument("--sahi-metric", choices=["IOS", "IOU"], default="IOS", help="SAHI's postprocess match metric")
    args = parser.parse_args(argv)
    console = Console(width=150)
    if args.work is not None:
        return run(args, args.work.resolve(), console)
    with tempfile.TemporaryDirectory(prefix="rookery-bench-sliced-") as tmp:
        return run(args, Path(tmp), console)


def run(args: argparse.Namespace, work: Path, console: Console) -> float | None:
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("ROOKERY_HOME", str(work / "home"))  # Ultralytics' settings file lands there
    from rookery.offline import ensure_offline

    ensure_offline()
    t = time.perf_counter()
    pt = trained_model(work, args, console)
    from rookery.inference import export_onnx

    onnx = pt.with_suffix(".onnx")
    if not onnx.is_file():
        onnx = export_onnx(pt, imgsz=args.tile)
    console.print(f"model: {pt} (+ .onnx), ready in {time.perf_counter() - t:.0f} s")

    n = 1 if args.quick else args.photos
    synthetic = synthetic_photos(work / "scenes", n, console)
    warmup = synthetic_photos(work / "warmup", 1, console, size=(SIZE[0] // 2, SIZE[1] // 2), seed=2)[0]
    if args.prepare_only:
        return None
    methods = make_methods(pt, onnx, args)
    for method in methods.values():
        method(warmup)  # first-call allocations, kernel choices, lazy imports

    sources: list[tuple[str, list[Path]]] = [(f"synthetic {SIZE[0]}x{SIZE[1]}", synthetic)]
    for folder, what in ((args.real, "1/4 scale"), (args.fullres, "full resolution")):
        real = sorted((folder / "train").glob("*.jpg"), key=lambda p: int(p.stem) if p.stem.isdigit() else 0)
        if real:
            sources.append((f"real sea lions {what} (~{_size(real[0])})", real[:1] if args.quick else real))
        else:
            console.print(f"real sea lion photos skipped: no {folder / 'train'}/*.jpg (the shared sample is absent)")

    truth = {"synthetic": sum(_truth(p) for p in synthetic)}
    results = {name: time_methods(methods, photos) for name, photos in sources}
    profile_rookery(onnx, synthetic[0], args, console)
    merge_agreement(pt, onnx, synthetic, truth["synthetic"], args, console)
    return report(results, sources, truth, args, console)


def make_methods(pt: Path, onnx: Path, args: argparse.Namespace) -> dict[str, Method]:
    import importlib.util

    if importlib.util.find_spec("sahi") is None:  # the peer is not a rookery dependency (its pins move opencv)
        sys.exit("this benchmark needs SAHI: .venv/bin/pip install --no-deps sahi==0.12.8 tqdm shapely")
    from ultralytics import YOLO

    from rookery.data.tiling import tile_grid

    def counter(predictor: Any) -> Method:
        def rookery(path: Path) -> int:
            (boxes,) = predictor.predict_many([path])
            if not hasattr(boxes, "xyxy"):
                raise RuntimeError(f"rookery skipped {path}: {boxes}")
            return len(boxes)

        return rookery

    predictor = rookery_predictor(onnx, args)
    rows: dict[str, Method] = {f"rookery ({_label(predictor)}, batch {args.batch})": counter(predictor)}
    if args.int8:
        int8 = rookery_predictor(onnx, args, weights=int8_model(pt, onnx, args))
        rows[f"rookery ({_label(int8)}, batch {args.batch})"] = counter(int8)
    sahi_count = sahi_counter(pt, args)
    kind, metric = ("GREEDYNMM", "IOS") if args.merge == "greedy" else ("NMS", args.sahi_metric)

    def sahi(path: Path) -> int:
        return sahi_count(path, kind, metric)

    yolo = YOLO(str(pt))

    def plain(path: Path) -> int:
        image = cv2.imread(str(path))
        boxes = []
        for t in tile_grid(image.shape[1], image.shape[0], args.tile, args.overlap):
            (res,) = yolo.predict(t.crop(image), imgsz=args.tile, conf=args.conf, iou=args.iou, max_det=10000,
                                  verbose=False, device="cpu")  # fmt: skip
            boxes.append(res.boxes.xyxy.numpy() + np.array([t.x0, t.y0, t.x0, t.y0], np.float32))
        return sum(len(b) for b in boxes)

    return {**rows, f"SAHI (ultralytics .pt, {kind} {metric})": sahi, "plain loop (.pt, no merge)": plain}


def rookery_predictor(
    onnx: Path, args: argparse.Namespace, merge: str | None = None, weights: Path | None = None
) -> Any:
    """rookery's Predictor on the CPU with the bench's options: --backend (auto: OpenVINO when installed), or
    OpenVINO at --precision bf16, or the int8 IR `weights`."""
    from rookery.inference import PredictOptions, Predictor
    from rookery.inference.backends import open_backend

    options = PredictOptions(tile=args.tile, overlap=args.overlap, conf=args.conf, iou=args.iou, batch=args.batch,
                             merge=merge or args.merge)  # fmt: skip
    if weights is None and args.precision != "f32":
        from rookery.inference.openvino_backend import OpenVinoBackend

        return Predictor(OpenVinoBackend(onnx, precision=args.precision), options)
    return Predictor(open_backend(weights or onnx, "openvino" if weights else args.backend, "cpu"), options)


def _label(predictor: Any) -> str:
    backend = predictor.backend
    if backend.name != "openvino":
        return backend.name
    return "openvino int8" if backend.quantized else f"openvino {backend.precision}"


def time_methods(methods: dict[str, Method], photos: list[Path]) -> dict[str, tuple[list[float], int]]:
    """Per method: seconds per photo and the total count; the methods take turns photo by photo."""
    times: dict[str, list[float]] = {name: [] for name in methods}
    counts = dict.fromkeys(methods, 0)
    for photo in photos:
        for name, method in methods.items():
            t = time.perf_counter()
            counts[name] += method(photo)
            times[name].append(time.perf_counter() - t)
    return {name: (times[name], counts[name]) for name in methods}


def profile_rookery(onnx: Path, photo: Path, args: argparse.Namespace, console: Console) -> None:
    """Where rookery's time goes on one photo, stage by stage, run serially (the pipeline overlaps the
    reading and tiling with the network in a second thread)."""
    from rookery.data.tiling import tile_grid
    from rookery.imaging import read_image
    from rookery.inference.decode import decode
    from rookery.inference.merge import cut_flags, merge_detections
    from rookery.inference.pipeline import _make_batch

    predictor = rookery_predictor(onnx, args, merge="nms")
    backend, nc = predictor.backend, len(predictor.class_names)
    network = f"network ({_label(predictor)})"
    stages = dict.fromkeys(["read JPEG", "tile + pack + to float", network, "decode + tile NMS",
                            "merge across seams"], 0.0)  # fmt: skip
    for _ in range(2):  # the first pass warms up; the second is reported
        stages = dict.fromkeys(stages, 0.0)
        t = time.perf_counter()
        image = read_image(photo)
        stages["read JPEG"] = time.perf_counter() - t
        h, w = image.shape[:2]
        tiles = tile_grid(w, h, args.tile, args.overlap)
        parts = []
        for i in range(0, len(tiles), args.batch):
            chunk = tiles[i : i + args.batch]
            t = time.perf_counter()
            batch = _make_batch(backend, [(None, tile, image) for tile in chunk])  # type: ignore[misc]
            t1 = time.perf_counter()
            raw = backend.run(batch.prepared)
            t2 = time.perf_counter()
            wh = np.array([[c.width, c.height] for c in chunk], dtype=np.float64)
            det = decode(raw, wh, nc, args.conf, args.iou)
            inner = np.array([[c.x0 > 0, c.y0 > 0, c.x1 < w, c.y1 < h] for c in chunk]).reshape(-1, 4)
            offset = np.array([[c.x0, c.y0] for c in chunk], dtype=np.float64) - 0.5
            cut = cut_flags(det.xyxy, wh[det.tile], inner[det.tile])
            parts.append((det.xyxy + np.tile(offset[det.tile], 2), det.cls, det.score, cut))
            t3 = time.perf_counter()
            stages["tile + pack + to float"] += t1 - t
            stages[network] += t2 - t1
            stages["decode + tile NMS"] += t3 - t2
        t = time.perf_counter()
        xyxy, cls, score, cut = (np.concatenate(p) for p in zip(*parts, strict=True))
        merged = merge_detections(xyxy, cls, score, cut, "nms", args.iou)
        stages["merge across seams"] = time.perf_counter() - t
    total = sum(stages.values())
    table = Table(title=f"rookery, one {w}x{h} photo, {len(tiles)} tiles, stages run serially ({len(merged)} boxes)")
    table.add_column("stage")
    table.add_column("s", justify="right")
    table.add_column("share", justify="right")
    for name, s in stages.items():
        table.add_row(name, f"{s:.3f}", f"{s / total:.0%}")
    table.add_row("total (serial)", f"{total:.3f}", "100%")
    console.print(table)


def sahi_counter(pt: Path, args: argparse.Namespace) -> Callable[[Path, str, str], int]:
    """SAHI on the .pt with the same slices and per-slice NMS; (path, postprocess, metric) -> count."""
    from sahi import AutoDetectionModel
    from sahi.predict import get_sliced_prediction

    model = AutoDetectionModel.from_pretrained(
        model_type="ultralytics", model_path=str(pt), confidence_threshold=args.conf, device="cpu",
        image_size=args.tile,
    )  # fmt: skip
    model.model.overrides.update(iou=args.iou, max_det=10000)  # the same per-slice NMS as the others
    ratio = args.overlap / args.tile

    def count(path: Path, kind: str, metric: str) -> int:
        result = get_sliced_prediction(
            str(path), model, slice_height=args.tile, slice_width=args.tile, overlap_height_ratio=ratio,
            overlap_width_ratio=ratio, perform_standard_pred=False, postprocess_type=kind,
            postprocess_match_metric=metric, postprocess_match_threshold=args.iou, verbose=0,
        )  # fmt: skip
        return len(result.object_prediction_list)

    return count


def merge_agreement(
    pt: Path, onnx: Path, photos: list[Path], truth: int, args: argparse.Namespace, console: Console
) -> None:
    """Total counts of each seam-merge rule, rookery's and SAHI's, on the same weights and photos (untimed).

    The timed rows compare rookery's default ("nms": IoU, plus IoS for boxes cut by a tile edge) with
    SAHI's NMS. The like-for-like pair is rookery's "greedy" merge and SAHI's GREEDYNMM with IOS, the
    same rule: there the counts show whether the engines see the same detections per tile.
    """
    sahi = sahi_counter(pt, args)
    counts: dict[str, int] = {}
    for merge in ("nms", "greedy"):
        predictor = rookery_predictor(onnx, args, merge=merge)
        counts[f"rookery {merge}"] = sum(len(b) for b in predictor.predict_many(photos))  # type: ignore[arg-type]
    for kind, metric in (("NMS", "IOU"), ("NMS", "IOS"), ("GREEDYNMM", "IOS")):
        counts[f"SAHI {kind} {metric}"] = sum(sahi(p, kind, metric) for p in photos)
    timed = "the same rule, timed above" if args.merge == "greedy" else "the same rule"
    pairs = [("rookery greedy", "SAHI GREEDYNMM IOS", timed),
             ("rookery nms", "SAHI NMS IOS", "timed above" if args.merge == "nms" else ""),
             ("rookery nms", "SAHI NMS IOU", "")]  # fmt: skip
    table = Table(title=f"seam merge rules, total count on the {len(photos)} synthetic photos ({truth} animals)")
    for col in ("rookery", "count", "SAHI", "count", "rookery vs SAHI", "rookery vs truth", "SAHI vs truth", ""):
        table.add_column(col, justify="left" if col in ("rookery", "SAHI", "") else "right")
    for a, b, note in pairs:
        table.add_row(a, str(counts[a]), b, str(counts[b]), _change(counts[a], counts[b]),
                      _change(counts[a], truth), _change(counts[b], truth), note)  # fmt: skip
    console.print(table)


def report(
    results: dict[str, dict[str, tuple[list[float], int]]],
    sources: list[tuple[str, list[Path]]],
    truth: dict[str, int],
    args: argparse.Namespace,
    console: Console,
) -> float | None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    table = Table(title=f"sliced inference on {cores} CPU cores: tile {args.tile}, overlap {args.overlap}, "
                  f"conf {args.conf}, iou {args.iou}; median s / photo")  # fmt: skip
    columns = ("source (photos)", "method", "s / photo", "total count", "count vs SAHI", "count vs rookery",
               "count vs truth", "rookery speedup")  # fmt: skip
    for col in columns:
        table.add_column(col, justify="left" if col in ("source (photos)", "method") else "right")
    speedup = None
    for source, photos in sources:
        res = results[source]
        med = {name: float(np.median(times)) for name, (times, _) in res.items()}
        rk = next(iter(res))
        sahi = next(name for name in res if name.startswith("SAHI"))
        sahi_count, rk_count = res[sahi][1], res[rk][1]
        true = truth.get(source.split()[0])
        for name, (_, count) in res.items():
            agree, vs_rk, vs_truth = _change(count, sahi_count), _change(count, rk_count), _change(count, true)
            gain = "-" if name == rk else f"{med[name] / med[rk]:.2f}x"
            table.add_row(f"{source} ({len(photos)})" if name == rk else "", name, f"{med[name]:.2f}", str(count),
                          "" if name == sahi else agree, "" if name == rk else vs_rk, vs_truth, gain)  # fmt: skip
        if true:
            table.add_row("", "truth (animals drawn)", "", str(true), _change(true, sahi_count), "", "", "")
        table.add_section()
        console.print(f"{source}: speedup_vs_sahi={med[sahi] / med[rk]:.2f}")
        if source.startswith("synthetic"):
            speedup = med[sahi] / med[rk]
    console.print(table)
    console.print("'rookery speedup' = that method's s / photo over rookery's; the plain loop does not merge "
                  "across seams (objects in overlaps count twice).")  # fmt: skip
    if speedup is not None:
        console.print(f"speedup_vs_sahi={speedup:.2f}")
    return speedup


def _change(count: int, reference: int | None) -> str:
    """count vs reference as a signed percentage; "-" when there is no reference or it is 0 (a quick model
    that finds nothing must not stop the bench before its last line)."""
    return f"{count / reference - 1:+.1%}" if reference else "-"


def _truth(photo: Path) -> int:
    return int(json.loads(photo.with_suffix(".json").read_text())["animals"])


def _size(path: Path) -> str:
    image = cv2.imread(str(path))
    return f"{image.shape[1]}x{image.shape[0]}" if image is not None else "?"


if __name__ == "__main__":
    main()
