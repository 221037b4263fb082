"""The two stages that run on the cluster: read each photo's bytes (and its key), then count it in a model actor.

Why the whole per-photo work (decode, tile, network, seam merge) runs inside the actor: that is the local
`Predictor`, so the counts are the local counts by construction, and its producer thread already overlaps
decoding and tiling with the network. Splitting decode+tile into separate Ray tasks would ship ~60 MB of
decoded pixels per survey photo through the object store instead of ~6 MB of JPEG, and the merge needs
all of a photo's tiles in one place anyway. On a GPU actor the bytes go straight to the GPU engine (nvJPEG
decode), so the CPU does not decode at all (docs/scaling.md has the figures).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rookery.types import Boxes, Skipped

RESULT_COLUMNS = (
    "key",
    "path",
    "image",
    "bytes",
    "model",
    "error",
    "interval_level",
    "calibrated",
    "intervals",
    "det_cls",
    "det_score",
    "det_xyxy",
)


def photo_key(path: str, size: int, data: bytes) -> str:
    """The photo's identity across runs: its path, its size and a hash of its content (a photo replaced by
    another of the same name is counted again; a copied folder is a new collection)."""
    # SHA-256 (as Prediction.image_sha256): CPUs with SHA extensions hash it fastest of hashlib's (docs/scaling.md).
    content = hashlib.sha256(data).hexdigest()
    return hashlib.sha256(f"{path}\0{size}\0{content}".encode()).hexdigest()[:32]


def read_photos(batch: dict[str, np.ndarray], done: frozenset[str]) -> dict[str, list[Any]]:
    """Read stage (a CPU task): the bytes and key of each photo; photos already counted are dropped here, so
    a rerun reads every photo once (to hash it) but runs the network only on the rest."""
    out: dict[str, list[Any]] = {k: [] for k in ("key", "path", "image", "bytes", "data", "mask", "error")}
    for path, mask in zip(batch["path"].tolist(), batch["mask"].tolist(), strict=True):
        try:
            data = Path(path).read_bytes()
        except OSError as e:  # vanished, unreadable: reported like a corrupt photo, the others go on
            data, key, error = b"", "", f"could not be read ({e.strerror or e})"
        else:
            key, error = photo_key(path, len(data), data), ""
            if key in done:
                continue
        for column, value in zip(out, (key, path, Path(path).stem, len(data), data, mask, error), strict=True):
            out[column].append(value)
    return out


class PhotoCounter:
    """A model actor: loads the model once (from files shipped through the object store), then counts each
    batch of photos with the local Predictor and returns one row per photo (detections as list columns)."""

    def __init__(
        self,
        files: Any,
        weights: str,
        backend: str,
        device: str,
        options: dict[str, Any],
        model: str,
        annotate: bool = False,
    ) -> None:
        from rookery.offline import ensure_offline
        from rookery.packaging.models import load_predictor

        ensure_offline()  # workers are new processes: Ultralytics must not reach out from them either
        if not isinstance(files, dict):  # an ObjectRef: the model's bytes, put once by the driver
            import ray

            files = ray.get(files)
        # The driver resolved the URI (alias -> version) and checked the weights' sha256; every actor loads
        # those very files, so one run uses one model version even if the alias moves meanwhile.
        folder = Path(tempfile.mkdtemp(prefix="rookery-model-"))
        for name, data in files.items():
            (folder / name).write_bytes(data)
        self.predictor, _ = load_predictor(str(folder / weights), backend=backend, device=device, **options)
        self.model = model
        self.annotate = annotate
        # The GPU engine decodes JPEG bytes itself (nvJPEG); the CPU pipeline takes decoded arrays.
        self.takes_bytes = self.predictor.takes_bytes

    def __call__(self, batch: dict[str, np.ndarray]) -> Any:
        import pyarrow as pa

        rows = {k: batch[k].tolist() for k in ("key", "path", "image", "bytes", "data", "mask", "error")}
        n = len(rows["key"])
        todo = [i for i in range(n) if not rows["error"][i]]
        failed: dict[int, str] = {}
        images: dict[int, np.ndarray] = {}
        stream = self.predictor.iter_predict(
            self._decoded(rows, todo, failed, images),
            [rows["mask"][i] or None for i in todo],
            names=[Path(rows["path"][i]).name for i in todo],
        )
        result: dict[str, list[Any]] = {k: [] for k in (*RESULT_COLUMNS, "annotated")}
        found: dict[int, Boxes] = {}
        errors: dict[int, str] = {i: rows["error"][i] for i in range(n) if rows["error"][i]}
        for j, outcome in stream:
            if isinstance(outcome, Skipped):  # a decoding failure keeps its own (the local) reason
                errors[todo[j]] = failed.get(j) or outcome.reason
            else:
                found[todo[j]] = outcome
        for i in range(n):
            boxes = found.get(i)
            error = errors.get(i, "" if boxes is not None else "no result came back for this photo")
            nc = len(self.predictor.class_names)
            # The local loop's call (inference.batch.count_photos): the same intervals for the same boxes.
            intervals = self.predictor.intervals(self.predictor.counts(boxes)) if boxes is not None else None
            values = {
                "key": rows["key"][i],
                "path": rows["path"][i],
                "image": rows["image"][i],
                "bytes": rows["bytes"][i],
                "model": self.model,
                "error": error,
                "interval_level": intervals.level if intervals is not None else 0.0,
                "calibrated": intervals.calibrated if intervals is not None else False,
                "intervals": intervals.bounds().reshape(-1).tolist() if intervals is not None else [0] * (2 * nc),
                "det_cls": boxes.cls.tolist() if boxes is not None else [],
                "det_score": _scores(boxes),
                "det_xyxy": boxes.xyxy.reshape(-1).tolist() if boxes is not None else [],
                "annotated": self._render(images.get(i), boxes, rows["image"][i]),
            }
            for column, value in values.items():
                result[column].append(value)
        return pa.table(result, schema=result_schema())

    def _decoded(
        self, rows: dict[str, list[Any]], todo: list[int], failed: dict[int, str], images: dict[int, np.ndarray]
    ) -> Iterator[Any]:
        """The photos as the Predictor takes them, decoded lazily in its tiling thread (so decoding photo k+1
        overlaps the network on photo k). A photo that cannot be decoded goes on as an empty array, which the
        Predictor turns into a Skipped; its own reason (the local one) replaces that in `failed`."""
        from rookery.errors import InputError
        from rookery.imaging import decode_image

        for j, i in enumerate(todo):
            data, name = rows["data"][i], Path(rows["path"][i]).name
            if self.takes_bytes and not self.annotate:
                yield data
                continue
            try:
                image = decode_image(data, name)
            except InputError as e:
                failed[j] = str(e)
                yield np.zeros((0, 0, 3), dtype=np.uint8)
                continue
            if self.annotate:
                images[i] = image
            yield image

    def _render(self, image: np.ndarray | None, boxes: Any, title: str) -> bytes:
        if image is None or boxes is None:
            return b""
        import cv2

        from rookery.inference.render import class_colors, render

        names = self.predictor.class_names
        drawn = render(image, boxes, names, class_colors(names), title=title)
        ok, buf = cv2.imencode(".jpg", drawn, [cv2.IMWRITE_JPEG_QUALITY, 90])  # as the local writer does
        return buf.tobytes() if ok else b""


def _scores(boxes: Any) -> list[float]:
    if boxes is None:
        return []
    return boxes.score.tolist() if boxes.score is not None else [1.0] * len(boxes)


def result_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("key", pa.string()),
            pa.field("path", pa.string()),
            pa.field("image", pa.string()),
            pa.field("bytes", pa.int64()),
            pa.field("model", pa.string()),
            pa.field("error", pa.string()),
            pa.field("interval_level", pa.float64()),
            pa.field("calibrated", pa.bool_()),
            pa.field("intervals", pa.list_(pa.int64())),
            pa.field("det_cls", pa.list_(pa.int64())),
            pa.field("det_score", pa.list_(pa.float64())),
            pa.field("det_xyxy", pa.list_(pa.float64())),
            pa.field("annotated", pa.binary()),
        ]
    )
