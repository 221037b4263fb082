"""The part store without a cluster: a part repeated by a retried task is kept once, the columns of counts.csv are
the local writer's, and bad input gets one clear sentence before any cluster is touched."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rookery.errors import ConfigError, InputError
from rookery.scale.counter import photo_key, result_schema
from rookery.scale.store import PartStore

NAMES = ("adult_females", "pups")


def _block(*photos: tuple[str, list[int]], error: str = "") -> pa.Table:
    """Actor results: one row per (name, classes of its boxes)."""
    rows = []
    for name, classes in photos:
        data = name.encode()
        rows.append({
            "key": photo_key(f"/p/{name}.jpg", len(data), data), "path": f"/p/{name}.jpg", "image": name,
            "bytes": len(data), "model": "models:/rookery/1", "error": error, "interval_level": 0.9,
            "calibrated": False, "intervals": [0, 9, 0, 9], "det_cls": classes, "det_score": [0.5] * len(classes),
            "det_xyxy": [float(v) for _ in classes for v in (1, 2, 3, 4)], "annotated": b"",
        })  # fmt: skip
    return pa.Table.from_pylist(rows, schema=result_schema())


def test_a_photo_committed_twice_is_kept_once_and_errors_of_counted_photos_are_dropped(tmp_path: Path):
    store = PartStore(tmp_path, NAMES)
    store.write_part(_block(("a", [0, 1]), ("b", [1])))
    store.write_part(_block(("b", [1]), ("c", [])))  # a retried batch: b again
    store.write_part(_block(("d", []), error="d.jpg is not a readable image"))
    assert len(store.committed()) == 3 and len(store.done_keys()) == 3
    result = store.consolidate({"/p/c.jpg": 0, "/p/b.jpg": 1, "/p/a.jpg": 2}, model_uri="models:/rookery@champion")
    assert result.photos == 3 and result.animals.tolist() == [1, 2] and result.errors == 1
    counts = pq.read_table(tmp_path / "counts.parquet").to_pydict()
    assert counts["image"] == ["c", "b", "a"]  # the order of the run's list of photos
    assert pq.read_table(tmp_path / "detections.parquet").num_rows == 3  # b's box once, not twice
    assert (tmp_path / "counts.csv").read_text().splitlines()[1:] == ["c,0,0,0,0,9,0,9,0,18", "b,0,1,1,0,9,0,9,0,18",
                                                                     "a,1,1,2,0,9,0,9,0,18"]  # fmt: skip
    assert "d.jpg is not a readable image" in (tmp_path / "errors.csv").read_text()


def test_an_unfinished_part_is_not_done(tmp_path: Path):
    store = PartStore(tmp_path, NAMES)
    store.write_part(_block(("a", [0])))
    (counts,) = (tmp_path / "parts").glob("counts-*.parquet")
    counts.unlink()  # the run died after writing the detections, before the commit
    assert store.done_keys() == set()
    assert store.consolidate({}).photos == 0
    assert pq.read_table(tmp_path / "detections.parquet").num_rows == 0


def test_another_models_classes_are_refused_in_the_same_folder(tmp_path: Path):
    PartStore(tmp_path, NAMES)
    with pytest.raises(InputError, match="use another --out folder"):
        PartStore(tmp_path, ("seals",))


def test_bad_input_is_refused_before_any_cluster_is_used(tmp_path: Path, _trained_model):
    from rookery.scale import count_collection

    with pytest.raises(InputError, match="no photos to count"):
        count_collection([], tmp_path, str(_trained_model.onnx))
    photo = next(_trained_model.photos.glob("*.jpg"))
    with pytest.raises(ConfigError, match="is not one of: ray"):
        count_collection([photo], tmp_path / "out", str(_trained_model.onnx), cluster="yarn")
    with pytest.raises(ConfigError, match="at least 1"):
        count_collection([photo], tmp_path / "out", str(_trained_model.onnx), photos_per_batch=0)
