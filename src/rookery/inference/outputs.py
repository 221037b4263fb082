"""The files of a prediction run, written photo by photo so that an interrupted run keeps what it did.

    out/counts.csv        image,<class>...,total,<class>_lo,<class>_hi...,total_lo,total_hi
                          one row per photo counted (the "done" marker), with each count's 90 % interval
    out/detections.csv    image,class,score,x1,y1,x2,y2
    out/detections.json   the same, grouped per photo with its counts (rebuilt from the CSVs at the end)
    out/annotated/<image>.jpg

A photo's detections are appended before its counts row, and both files are flushed after each photo, so
counts.csv lists exactly the photos whose results are complete. Resuming drops any detections of photos
that have no counts row (the run stopped between the two writes) and goes on appending.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from rookery.errors import InputError
from rookery.types import Prediction

DETECTION_COLUMNS = ("image", "class", "score", "x1", "y1", "x2", "y2")


def counts_header(class_names: Sequence[str]) -> list[str]:
    """The columns of counts.csv: image, the classes, total, then each one's interval ends <class>_lo, <class>_hi."""
    names = list(class_names)
    return ["image", *names, "total", *(f"{c}_{end}" for c in (*names, "total") for end in ("lo", "hi"))]


class PredictionWriter:
    """Appends each photo's counts and detections; `done` holds the photos counted (by earlier runs too)."""

    def __init__(self, out: Path, class_names: Sequence[str], resume: bool = False, model: str = "") -> None:
        self.out = Path(out)
        self.class_names = list(class_names)
        self.model = model
        self.counts_path = self.out / "counts.csv"
        self.detections_path = self.out / "detections.csv"
        self.json_path = self.out / "detections.json"
        self.annotated_dir = self.out / "annotated"
        self.out.mkdir(parents=True, exist_ok=True)
        self.done: dict[str, np.ndarray] = {}  # image -> counts per class
        self.intervals: dict[str, np.ndarray] = {}  # image -> (classes, 2) low and high end of the 90 % interval
        self.header = counts_header(self.class_names)
        if resume and self.counts_path.is_file():
            self._load_done()
        else:
            self._write_header(self.counts_path, self.header)
            self._write_header(self.detections_path, DETECTION_COLUMNS)
        self._counts: TextIO = self.counts_path.open("a", newline="")
        self._detections: TextIO = self.detections_path.open("a", newline="")

    def add(self, prediction: Prediction) -> np.ndarray:
        """Record one photo's detections, counts and count intervals; returns the counts per class."""
        image = prediction.image
        boxes = prediction.boxes
        counts = prediction.count_array()
        iv = prediction.interval_bounds()
        score = boxes.score if boxes.score is not None else np.ones(len(boxes))
        rows = [
            (image, self.class_names[c], f"{s:.4f}", *(f"{v:.1f}" for v in xyxy))
            for c, s, xyxy in zip(boxes.cls.tolist(), score.tolist(), boxes.xyxy.tolist(), strict=True)
        ]
        csv.writer(self._detections).writerows(rows)
        self._detections.flush()
        # The total's interval is the sum of the class intervals: conservative (errors of classes partly cancel).
        ends = [int(v) for v in np.vstack([iv, iv.sum(axis=0)]).reshape(-1)]
        csv.writer(self._counts).writerow((image, *(int(v) for v in counts), int(counts.sum()), *ends))
        self._counts.flush()
        self.done[image] = counts
        self.intervals[image] = iv
        return counts

    def annotated_path(self, image: str) -> Path:
        return self.annotated_dir / f"{image}.jpg"

    def close(self) -> None:
        """Close the CSVs and rebuild detections.json from them (all photos, earlier runs included)."""
        self._counts.close()
        self._detections.close()
        self._write_json()

    def __enter__(self) -> PredictionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals ------------------------------------------------------------------------------------

    @staticmethod
    def _write_header(path: Path, columns: Sequence[str]) -> None:
        with path.open("w", newline="") as f:
            csv.writer(f).writerow(columns)

    def _load_done(self) -> None:
        """Photos counted by an earlier run; rows cut short by a crash are dropped (those photos run again)."""
        header = self.header
        nc = len(self.class_names)
        with self.counts_path.open(newline="") as f:
            rows = list(csv.reader(f))
        if not rows or rows[0] != header:
            found = rows[0][1 : nc + 1] if rows else []
            raise InputError(
                f"{self.counts_path} holds counts for the classes {found}, but the model has {self.class_names}; "
                "use another --out folder or run without --resume"
            )
        good = [r for r in rows[1:] if len(r) == len(header) and all(v.isdigit() for v in r[1:])]
        self.done = {r[0]: np.array([int(v) for v in r[1 : nc + 1]], dtype=np.int64) for r in good}
        self.intervals = {r[0]: np.array([int(v) for v in r[nc + 2 : -2]], dtype=np.int64).reshape(nc, 2) for r in good}
        kept: list[list[str]] = []
        if self.detections_path.is_file():
            with self.detections_path.open(newline="") as f:
                det = list(csv.reader(f))
            kept = [r for r in det[1:] if len(r) == len(DETECTION_COLUMNS) and r[0] in self.done]
        self._write_header(self.counts_path, header)
        self._write_header(self.detections_path, DETECTION_COLUMNS)
        with self.counts_path.open("a", newline="") as f:
            csv.writer(f).writerows(good)
        with self.detections_path.open("a", newline="") as f:
            csv.writer(f).writerows(kept)

    def _write_json(self) -> None:
        per_image: dict[str, list[dict[str, Any]]] = {image: [] for image in self.done}
        with self.detections_path.open(newline="") as f:
            for row in csv.DictReader(f):
                if row["image"] in per_image:
                    per_image[row["image"]].append(
                        {"class": row["class"], **{k: float(row[k]) for k in DETECTION_COLUMNS[2:]}}
                    )
        doc = {
            "model": self.model,
            "classes": self.class_names,
            "images": [
                {
                    "image": image,
                    "counts": dict(zip(self.class_names, (int(v) for v in counts), strict=True)),
                    "total": int(counts.sum()),
                    "intervals": dict(zip(self.class_names, self.intervals[image].tolist(), strict=True)),
                    "total_interval": self.intervals[image].sum(axis=0).tolist(),
                    "detections": per_image[image],
                }
                for image, counts in self.done.items()
            ],
        }
        tmp = self.json_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, separators=(",", ":")))
        tmp.replace(self.json_path)
