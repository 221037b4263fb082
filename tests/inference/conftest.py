"""Fixtures of the inference tests: a real tiny YOLO model trained once per session, and its ONNX twin.

The model is yolov8n trained for one epoch at 64 px on synthetic squares (CPU, ~7 s). After one epoch its
head is still near its initialisation (scores at their prior, ~0.006; boxes wider than a 64 px tile), so
the tests of the plumbing (seams, no cap, masks, batching) use the deterministic fake network of
`inference_fakes.py`, and the real model checks what only it can: that Ultralytics' checkpoint and export
load, give class names, agree anchor by anchor between PyTorch and ONNX Runtime, and match Ultralytics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from inference_fakes import CountingBackend

from rookery.inference import PredictOptions, Predictor, export_onnx

IMGSZ = 64
NAMES = ("light", "dark")


@dataclass(frozen=True)
class TinyModel:
    pt: Path  # the Ultralytics checkpoint (last.pt)
    onnx: Path  # exported from the same weights, dynamic batch and size
    names: tuple[str, ...]
    imgsz: int


def _write_squares(folder: Path, n: int, rng: np.random.Generator) -> None:
    """n images of IMGSZ px, each with 1-2 squares of 15-35 % of the image (YOLO assigns no anchors below)."""
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir(parents=True)
    for i in range(n):
        image = rng.integers(90, 130, size=(IMGSZ, IMGSZ, 3), dtype=np.uint8)
        lines = []
        for _ in range(int(rng.integers(1, 3))):
            cls = int(rng.integers(0, len(NAMES)))
            side = int(rng.integers(14, 24))
            x, y = (int(v) for v in rng.integers(0, IMGSZ - side, size=2))
            image[y : y + side, x : x + side] = (235, 235, 235) if cls == 0 else (20, 20, 60)
            cx, cy = (x + side / 2) / IMGSZ, (y + side / 2) / IMGSZ
            lines.append(f"{cls} {cx:.6f} {cy:.6f} {side / IMGSZ:.6f} {side / IMGSZ:.6f}")
        cv2.imwrite(str(folder / "images" / f"{i}.png"), image)
        (folder / "labels" / f"{i}.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    """yolov8n trained for 1 epoch on 8+4 synthetic 64 px images (CPU), exported to ONNX."""
    from rookery.offline import ensure_offline

    ensure_offline()  # tests/conftest.py did it already; kept here so the fixture stands alone
    from ultralytics import YOLO, settings

    settings.update({"mlflow": False, "sync": False})
    root = tmp_path_factory.mktemp("tiny_model")
    rng = np.random.default_rng(0)
    _write_squares(root / "data" / "train", 8, rng)
    _write_squares(root / "data" / "val", 4, rng)
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(NAMES))
    data_yaml = root / "data.yaml"
    data_yaml.write_text(f"path: {root / 'data'}\ntrain: train/images\nval: val/images\nnames:\n{names}\n")

    model = YOLO("yolov8n.yaml")
    model.train(
        data=str(data_yaml), imgsz=IMGSZ, epochs=1, batch=4, device="cpu", workers=0, amp=False,
        plots=False, project=str(root / "runs"), name="train", exist_ok=True, seed=0, deterministic=True,
        val=False, verbose=False,
    )  # fmt: skip
    pt = root / "runs" / "train" / "weights" / "last.pt"
    onnx_file = export_onnx(pt, imgsz=IMGSZ)  # Ultralytics' export: dynamic batch and size, simplified
    return TinyModel(pt=pt, onnx=onnx_file, names=NAMES, imgsz=IMGSZ)


@pytest.fixture
def fake_predictor() -> Callable[..., Predictor]:
    """Build a Predictor on the fake square-finding network: fake_predictor(tile=..., merge=...)."""

    def build(**options: Any) -> Predictor:
        return Predictor(CountingBackend(), PredictOptions(**options))

    return build
