"""Box mAP50 and mAP50-95 of a .pt model on the tiles of a built data set, through Ultralytics' validator.

This measures the detector on what it was trained on (tiles and their box labels), beside the counting
error on whole photos (counting.py). Ultralytics is imported here only, offline, with its MLflow
callback off (rookery logs the evaluation itself), and writes its scratch files into a temporary folder.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from rookery.data.manifest import SPLITS
from rookery.errors import InputError, RookeryError, first_line
from rookery.imaging import IMAGE_SUFFIXES


@dataclass(frozen=True)
class DetectionMetrics:
    split: str
    tiles: int
    map50: float
    map50_95: float
    precision: float
    recall: float
    per_class_map50_95: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def mlflow_metrics(self) -> dict[str, float]:
        return {"eval/mAP50": self.map50, "eval/mAP50-95": self.map50_95}


def split_dirs(dataset: Path, split: str) -> list[str]:
    """The data set's tile folders of `split` ("all": every split) that hold at least one tile."""
    names = SPLITS if split == "all" else (split,)
    if any(n not in SPLITS for n in names):
        raise InputError(f"split must be one of {', '.join((*SPLITS, 'all'))}, got {split!r}")
    return [f"images/{n}" for n in names if _count_tiles(dataset / "images" / n)]


def _count_tiles(folder: Path) -> int:
    return sum(1 for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else 0


def box_map(
    weights: Path,
    dataset: Path,
    classes: list[str],
    split: str = "test",
    imgsz: int = 640,
    device: str | None = None,
    batch: int = 16,
    workers: int = 0,
    max_det: int = 3000,
) -> DetectionMetrics:
    """mAP of an Ultralytics checkpoint on the tiles of one split (or all) of a rookery data set.

    A data.yaml is written into a temporary folder pointing at the data set where it is now (its own
    data.yaml holds the absolute path it was built at), with the chosen tiles as the `val` split.
    """
    from rookery.offline import ensure_offline

    ensure_offline()
    dataset = Path(dataset).resolve()
    weights = Path(weights)
    if weights.suffix != ".pt" or not weights.is_file():
        raise InputError(f"box mAP needs Ultralytics .pt weights, got {weights}")
    dirs = split_dirs(dataset, split)
    if not dirs:
        raise InputError(f"data set {dataset} has no tiles in the {split!r} split")
    tiles = sum(_count_tiles(dataset / d) for d in dirs)

    from ultralytics import settings as yolo_settings
    from ultralytics.models import YOLO

    # rookery logs the evaluation; never a second run (SettingsManager.update is unannotated)
    yolo_settings.update({"mlflow": False})  # type: ignore[no-untyped-call]
    with tempfile.TemporaryDirectory(prefix="rookery-val-") as tmp:
        data_yaml = Path(tmp) / "data.yaml"
        spec = {"path": str(dataset), "train": dirs[0], "val": dirs, "names": dict(enumerate(classes))}
        data_yaml.write_text(yaml.safe_dump(spec, sort_keys=False))
        try:
            model = YOLO(str(weights))
            names = [model.names[i] for i in sorted(model.names)]
            if names != list(classes):
                raise InputError(f"the model's classes {names} differ from the data set's {list(classes)}")
            metrics = model.val(
                data=str(data_yaml),
                split="val",
                imgsz=imgsz,
                batch=batch,
                device=device or None,
                workers=workers,
                max_det=max_det,
                plots=False,
                save_json=False,
                verbose=False,
                project=str(Path(tmp) / "runs"),  # absolute: a relative one lands in site-packages
                name="val",
                exist_ok=True,
            )
        except RookeryError:
            raise
        except Exception as e:  # Ultralytics raises bare exceptions for bad data or weights
            raise RookeryError(f"box mAP on {dataset.name} ({split}) failed: {first_line(e, 300)}") from e
    box = metrics.box
    per_class = {
        classes[int(c)]: float(v) for c, v in zip(metrics.ap_class_index, box.maps[metrics.ap_class_index], strict=True)
    }
    return DetectionMetrics(
        split=split,
        tiles=tiles,
        map50=float(box.map50),
        map50_95=float(box.map),
        precision=float(box.mp),
        recall=float(box.mr),
        per_class_map50_95=per_class,
    )
