"""The output folder of a Ray run: atomic part files while counting, one consolidated set of files at the end.

    OUT/parts/run.json                      the classes (a rerun with another model's classes is refused)
    OUT/parts/detections-<part>.parquet     one row per animal of the part's photos
    OUT/parts/errors-<part>.parquet         photos of the part that could not be counted, with the reason
    OUT/parts/counts-<part>.parquet         one row per photo counted: written LAST, it commits the part

    OUT/counts.parquet, OUT/counts.csv       one row per photo, each photo once (counts.csv: local columns)
    OUT/detections.parquet                  one row per animal: key, image, class, score, x, y, x1, y1, x2, y2
    OUT/detections.csv, OUT/detections.json the local files (rookery.inference.outputs), up to CSV_MAX_PHOTOS
    OUT/errors.parquet, OUT/errors.csv      photos that could not be counted (and were not counted since)

Why part files: results arrive block by block from many workers; a part is written to a temporary name and
renamed (atomic on one file system), counts last, so a part either is whole or is not there. A photo is
done when its key is in a committed counts part; a rerun skips those. A part can only repeat a photo when
a batch was computed twice (a retried task after a node died, two runs at once): consolidation keeps the
first committed copy of each key, so the final files hold every photo exactly once.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rookery.errors import InputError
from rookery.inference.outputs import counts_header

# detections.csv/.json (the local formats) hold every detection in memory while they are written
# (outputs.PredictionWriter builds the JSON at once); past this many photos only the Parquet files hold them.
CSV_MAX_PHOTOS = 20_000

DETECTION_FIELDS = ("key", "image", "class", "class_id", "score", "x", "y", "x1", "y1", "x2", "y2")


@dataclass(frozen=True)
class Consolidated:
    photos: int  # counted, each once, over all runs into this folder
    animals: np.ndarray  # per class, summed over those photos
    errors: int  # photos that could not be counted (and were not counted since)
    wrote_csv_detections: bool


class PartStore:
    """Writes committed parts under OUT/parts and knows which photo keys are done."""

    def __init__(self, out: Path, class_names: Sequence[str]) -> None:
        self.out = Path(out)
        self.parts = self.out / "parts"
        self.class_names = list(class_names)
        self.parts.mkdir(parents=True, exist_ok=True)
        self._check_classes()

    def _check_classes(self) -> None:
        manifest = self.parts / "run.json"
        if manifest.is_file():
            found = json.loads(manifest.read_text()).get("classes")
            if found != self.class_names:
                raise InputError(
                    f"{self.out} holds counts for the classes {found}, but the model has {self.class_names}; "
                    "use another --out folder"
                )
        else:
            _atomic_write_text(manifest, json.dumps({"classes": self.class_names}))

    def committed(self) -> list[str]:
        """Part ids whose counts file exists, oldest first (ids start with a timestamp)."""
        return sorted(p.name[len("counts-") : -len(".parquet")] for p in self.parts.glob("counts-*.parquet"))

    def done_keys(self) -> set[str]:
        import pyarrow.parquet as pq

        keys: set[str] = set()
        for part in self.committed():
            keys.update(pq.read_table(self._path("counts", part), columns=["key"]).column("key").to_pylist())
        return keys

    def write_part(self, rows: Any) -> tuple[int, int]:
        """Commit one block of actor results (a pyarrow Table, one row per photo: see counter.RESULT_SCHEMA);
        returns (photos counted, photos with errors)."""
        import pyarrow as pa

        part = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        batch = rows.to_pydict()
        ok = [i for i, err in enumerate(batch["error"]) if not err]
        bad = [i for i, err in enumerate(batch["error"]) if err]
        nc = len(self.class_names)
        det: dict[str, list[Any]] = {k: [] for k in DETECTION_FIELDS}
        counts: dict[str, list[Any]] = {c: [] for c in counts_header(self.class_names)}
        extra: dict[str, list[Any]] = {k: [] for k in ("key", "path", "bytes", "model", "interval_level", "calibrated")}
        for i in ok:
            cls = np.asarray(batch["det_cls"][i], dtype=np.int64)
            xyxy = np.asarray(batch["det_xyxy"][i], dtype=np.float64).reshape(-1, 4)
            det["key"] += [batch["key"][i]] * len(cls)
            det["image"] += [batch["image"][i]] * len(cls)
            det["class"] += [self.class_names[c] for c in cls.tolist()]
            det["class_id"] += cls.tolist()
            det["score"] += list(batch["det_score"][i])
            det["x"] += ((xyxy[:, 0] + xyxy[:, 2]) / 2).tolist()
            det["y"] += ((xyxy[:, 1] + xyxy[:, 3]) / 2).tolist()
            for j, name in enumerate(("x1", "y1", "x2", "y2")):
                det[name] += xyxy[:, j].tolist()
            n = np.bincount(cls, minlength=nc)[:nc]
            iv = np.asarray(batch["intervals"][i], dtype=np.int64).reshape(nc, 2)
            ends = np.vstack([iv, iv.sum(axis=0)]).reshape(-1)  # the total's interval: the sum (as locally)
            values = [batch["image"][i], *n.tolist(), int(n.sum()), *ends.tolist()]
            for column, value in zip(counts, values, strict=True):
                counts[column].append(value)
            for column in extra:
                extra[column].append(batch[column][i])
        errors = {k: [batch[k][i] for i in bad] for k in ("key", "path", "image", "error")}
        for i in ok:  # annotated pictures (when asked for) are views of the counts: written before the commit
            if batch.get("annotated") and batch["annotated"][i]:
                (self.out / "annotated").mkdir(exist_ok=True)
                _atomic_write_bytes(self.out / "annotated" / f"{batch['image'][i]}.jpg", batch["annotated"][i])
        # Detections and errors first, counts last: the counts file is the commit (see the module's docstring).
        self._write(pa.table(det, schema=_detection_schema()), "detections", part)
        self._write(pa.table(errors, schema=_error_schema()), "errors", part)
        self._write(pa.table({**counts, **extra}, schema=_counts_schema(self.class_names)), "counts", part)
        return len(ok), len(bad)

    def consolidate(self, order: dict[str, int], model_uri: str = "") -> Consolidated:
        """Rebuild the final files from the committed parts: each key once (its first committed copy), rows
        in the order of `order` (path -> position in this run's list; other photos after, by path)."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        parts = self.committed()
        schema = _counts_schema(self.class_names)
        tables = []
        for p in parts:
            t = pq.read_table(self._path("counts", p), schema=schema)
            tables.append(t.append_column("part", pa.array([p] * t.num_rows, pa.string())))
        empty = schema.empty_table().append_column("part", pa.array([], pa.string()))
        counts = pa.concat_tables(tables) if tables else empty
        first = _first_of_each(counts.column("key").to_pylist())
        counts = counts.take(pa.array(first, pa.int64()))
        position = [order.get(p, len(order)) for p in counts.column("path").to_pylist()]
        sort_idx = sorted(range(counts.num_rows), key=lambda i: (position[i], counts.column("path")[i].as_py()))
        counts = counts.take(pa.array(sort_idx, pa.int64()))
        winner = dict(zip(counts.column("key").to_pylist(), counts.column("part").to_pylist(), strict=True))
        _atomic_parquet(counts.drop_columns(["part"]), self.out / "counts.parquet")

        # Detections: streamed part by part (memory bounded by one part), only the winning copy of each photo.
        tmp = self.out / ".detections.parquet.tmp"
        with pq.ParquetWriter(tmp, _detection_schema()) as writer:
            for p in parts:
                det = pq.read_table(self._path("detections", p), schema=_detection_schema())
                keep = pc.equal(pc.fill_null(_lookup(det.column("key"), winner), ""), p)
                writer.write_table(det.filter(keep))
        os.replace(tmp, self.out / "detections.parquet")

        errors = self._errors(parts, set(winner))
        _atomic_parquet(errors, self.out / "errors.parquet")
        _atomic_csv(errors.drop_columns(["key"]), self.out / "errors.csv")

        small = counts.num_rows <= CSV_MAX_PHOTOS
        if small:
            self._write_local_files(counts, model_uri)
        else:
            _atomic_csv(counts.select(counts_header(self.class_names)), self.out / "counts.csv")
        animals = np.array([pc.sum(counts.column(c)).as_py() or 0 for c in self.class_names], dtype=np.int64)
        return Consolidated(counts.num_rows, animals, errors.num_rows, small)

    # --- internals ------------------------------------------------------------------------------------

    def _path(self, kind: str, part: str) -> Path:
        return self.parts / f"{kind}-{part}.parquet"

    def _write(self, table: Any, kind: str, part: str) -> None:
        _atomic_parquet(table, self._path(kind, part))

    def _errors(self, parts: Iterable[str], done: set[str]) -> Any:
        """The last reported error of each photo (by path) that is not counted."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        latest: dict[str, dict[str, Any]] = {}
        for p in parts:
            path = self._path("errors", p)
            if path.is_file():
                for row in pq.read_table(path, schema=_error_schema()).to_pylist():
                    if row["key"] not in done:
                        latest[row["path"]] = row
        rows = sorted(latest.values(), key=lambda r: r["path"])
        return pa.Table.from_pylist(rows, schema=_error_schema())

    def _write_local_files(self, counts: Any, model_uri: str) -> None:
        """counts.csv, detections.csv and detections.json through the local writer, so both paths write the
        same bytes for the same photos (number formats, intervals, the JSON layout)."""
        import pyarrow.parquet as pq

        from rookery.inference.outputs import PredictionWriter
        from rookery.types import Boxes, CountIntervals, ModelRef, Prediction

        det = pq.read_table(self.out / "detections.parquet").to_pydict()
        per_key: dict[str, list[int]] = {}
        for i, key in enumerate(det["key"]):
            per_key.setdefault(key, []).append(i)
        names = tuple(self.class_names)
        rows = counts.to_pydict()
        # The JSON names the model as the user gave it (as locally); counts.parquet has each photo's version.
        with PredictionWriter(self.out, names, resume=False, model=model_uri or _one_model(rows["model"])) as w:
            for r, key in enumerate(rows["key"]):
                idx = per_key.get(key, [])
                boxes = Boxes(
                    np.array([[det[c][i] for c in ("x1", "y1", "x2", "y2")] for i in idx], dtype=np.float64),
                    np.array([det["class_id"][i] for i in idx], dtype=np.int64),
                    np.array([det["score"][i] for i in idx], dtype=np.float64),
                )
                bounds = {c: (rows[f"{c}_lo"][r], rows[f"{c}_hi"][r]) for c in names}
                intervals = CountIntervals(rows["interval_level"][r], rows["calibrated"][r], bounds)
                w.add(Prediction(rows["image"][r], names, boxes, intervals, model=ModelRef(rows["model"][r])))


def _one_model(models: list[str]) -> str:
    distinct = list(dict.fromkeys(models))
    return distinct[0] if len(distinct) == 1 else "; ".join(distinct)


def _first_of_each(keys: list[str]) -> list[int]:
    seen: set[str] = set()
    first = []
    for i, key in enumerate(keys):
        if key not in seen:
            seen.add(key)
            first.append(i)
    return first


def _lookup(keys: Any, mapping: dict[str, str]) -> Any:
    import pyarrow as pa

    return pa.array([mapping.get(k) for k in keys.to_pylist()], pa.string())


def _counts_schema(class_names: Sequence[str]) -> Any:
    import pyarrow as pa

    fields = [pa.field("image", pa.string())] + [pa.field(c, pa.int64()) for c in counts_header(class_names)[1:]]
    fields += [pa.field("key", pa.string()), pa.field("path", pa.string()), pa.field("bytes", pa.int64())]
    fields += [pa.field("model", pa.string()), pa.field("interval_level", pa.float64())]
    return pa.schema([*fields, pa.field("calibrated", pa.bool_())])


def _detection_schema() -> Any:
    import pyarrow as pa

    types = {"key": pa.string(), "image": pa.string(), "class": pa.string(), "class_id": pa.int64()}
    return pa.schema([pa.field(f, types.get(f, pa.float64())) for f in DETECTION_FIELDS])


def _error_schema() -> Any:
    import pyarrow as pa

    return pa.schema([pa.field(f, pa.string()) for f in ("key", "path", "image", "error")])


def _atomic_parquet(table: Any, path: Path) -> None:
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _atomic_csv(table: Any, path: Path) -> None:
    import pyarrow.csv as pcsv

    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    pcsv.write_csv(table, tmp, pcsv.WriteOptions(quoting_style="needed"))
    os.replace(tmp, path)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
