"""The bench model and photos of bench/sliced_inference.py (also used by gpu_throughput.py, ray_batch.py,
gpu_training.py and sealions_methods.py through sliced_inference): a yolov8n trained on a synthetic survey,
cached under the work folder, synthetic full-resolution JPEGs, and its int8 OpenVINO twin."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
from rich.console import Console

SIZE = (4992, 3328)  # a full-resolution survey photo
CLASSES = 5  # the sea lion classes of the synthetic survey
TRAIN_TILE = 320  # training tiles (px)


def without_polars() -> None:
    """Let Ultralytics train where polars is missing (the GPU machine: its 54 MB wheel is too big to carry).

    Ultralytics imports polars only to read results.csv back (into each checkpoint, and for its plots); when
    that read fails it stores {} instead. A stand-in `polars` whose read_csv fails gives that fallback. It goes
    on sys.path, which Ultralytics also copies into its multi-GPU (DDP) worker processes."""
    try:
        import polars  # noqa: F401
    except ImportError:
        folder = Path(tempfile.mkdtemp(prefix="rookery-bench-no-polars-"))
        (folder / "polars").mkdir()
        (folder / "polars" / "__init__.py").write_text(  # a version that optional users (MLflow) refuse
            "__version__ = '0'\n\n\ndef read_csv(*args, **kwargs):\n"
            "    raise RuntimeError('polars is not installed here')\n"
        )
        sys.path.insert(0, str(folder))


def trained_model(work: Path, args: argparse.Namespace, console: Console) -> Path:
    """best.pt of a yolov8n trained on a synthetic survey, cached in `work` (--quick takes any cached one)."""
    full, quick = work / "model-full", work / "model-quick"
    for folder in (full, quick) if args.quick else (full,):
        if (folder / "best.pt").is_file():
            return folder / "best.pt"
    folder = quick if args.quick else full
    import torch

    device = "0" if torch.cuda.is_available() else "cpu"  # training only: inference below runs on the CPU
    scenes, size, epochs = (2, (960, 960), 2) if args.quick else (8, (1600, 1200), args.epochs)
    epochs = epochs or (100 if device == "0" else 30)
    console.print(f"training yolov8n on {device}: {scenes} synthetic scenes {size[0]}x{size[1]}, {epochs} epochs, "
                  f"tiles of {TRAIN_TILE} px, one class")  # fmt: skip
    from ultralytics import YOLO
    from ultralytics import settings as yolo_settings

    from rookery.data.dataset import BuildParams, build_dataset
    from rookery.data.synthetic import generate_survey

    shutil.rmtree(folder, ignore_errors=True)
    survey = generate_survey(folder / "survey", images=scenes, size=size, num_classes=CLASSES, seed=0)
    params = BuildParams(tile=TRAIN_TILE, overlap=TRAIN_TILE // 10, split=(0.75, 0.25, 0.0))
    build_dataset(folder / "survey" / "points.csv", folder / "survey" / "train", survey.classes,
                  folder / "dataset", masks=folder / "survey" / "masks", params=params)  # fmt: skip
    yolo_settings.update({"mlflow": False, "sync": False})  # no MLflow run, no analytics
    without_polars()
    model = YOLO("yolov8n.yaml")
    # Small tiles at the photos' own scale: 4x cheaper per step than 640 on a CPU, and the fully
    # convolutional network then runs on 640 tiles unchanged. One class: the counts compared are totals,
    # and a detector from scratch learns "animal or not" in a few hundred steps, five classes not.
    model.train(
        data=str(folder / "dataset" / "data.yaml"), epochs=epochs, imgsz=TRAIN_TILE, batch=8, device=device,
        workers=2, project=str(folder), name="train", exist_ok=True, verbose=False, plots=False, amp=False,
        single_cls=True, optimizer="SGD", lr0=0.02, warmup_epochs=1, max_det=3000, flipud=0.5, seed=0,
        val=False,
    )  # fmt: skip
    weights = folder / "train" / "weights"
    best = weights / "best.pt" if (weights / "best.pt").is_file() else weights / "last.pt"
    shutil.copyfile(best, folder / "best.pt")
    return folder / "best.pt"


def synthetic_photos(folder: Path, n: int, console: Console, size: tuple[int, int] = SIZE, seed: int = 1) -> list[Path]:
    """JPEGs of synthetic scenes (another seed than the training survey), made once and cached."""
    from rookery.data.synthetic import make_scene

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i}.jpg" for i in range(n)]
    for i, path in enumerate(paths):
        if not path.is_file():
            console.print(f"making synthetic photo {path.name} ({size[0]}x{size[1]})")
            scene = make_scene(size, num_classes=CLASSES, seed=seed, index=i)
            cv2.imwrite(str(path), scene.photo, [cv2.IMWRITE_JPEG_QUALITY, 95])
            # every animal drawn in the photo, inside the ignore regions too (the bench uses no masks)
            path.with_suffix(".json").write_text(json.dumps({"animals": len(scene.points) + scene.hidden}))
    return paths


def int8_model(pt: Path, onnx: Path, args: argparse.Namespace) -> Path:
    """The int8 OpenVINO IR of the bench's model, made once: calibrated on the training survey's photos (the
    same scale and look as the timed photos, but never one of them)."""
    from rookery.inference.quantize import quantize_openvino

    xml = onnx.with_name(f"{onnx.stem}.int8.xml")
    if not xml.is_file():
        photos = sorted((pt.parent / "survey" / "train").glob("*.jpg"))
        quantize_openvino(onnx, photos, xml, tile=args.tile, overlap=args.overlap)
    return xml
