"""`rookery predict --cluster`: a real two-node Ray cluster counts 30 photos with the session's tiny real model.

Each run is the real command in its own process (the driver), pointed at the cluster by address; the local
`rookery predict` of the same photos is the reference: the Ray path must write the same files, byte for byte.
conf=0.001 keeps the weak one-epoch model's proposals, so every photo has detections to compare.
The node-failure test comes last: it replaces the worker node it kills.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from ray_cluster import PHOTOS, RayCluster, ray_env
from typer.testing import CliRunner

from rookery.cli import app

LOW = ["--conf", "0.001", "--no-annotate"]


def _driver(collection: Path, out: Path, cluster: RayCluster, trained_model, log: Path) -> subprocess.Popen:
    """`rookery predict --cluster HOST:PORT` as a process of its own, two photos per part file."""
    env = {**ray_env(out.parent / "home"), "ROOKERY_TRACKING_URI": trained_model.tracking_uri}
    env["ROOKERY_SCALE_PHOTOS_PER_BATCH"] = "2"
    cmd = [sys.executable, "-m", "rookery", "predict", str(collection), "--out", str(out), *LOW,
           "--cluster", cluster.address]  # fmt: skip
    return subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def _run(collection: Path, out: Path, cluster: RayCluster, trained_model) -> str:
    log = out.parent / f"{out.name}.log"
    proc = _driver(collection, out, cluster, trained_model, log)
    assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
    return log.read_text()


def _wait_for_parts(out: Path, proc: subprocess.Popen, log: Path) -> int:
    """Until the run has committed its first part (not a timing assertion: it only decides when to strike)."""
    while not list((out / "parts").glob("counts-*.parquet")):
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.05)
    return len(list((out / "parts").glob("counts-*.parquet")))


def _keys(parts: list[Path]) -> list[str]:
    return [k for p in parts for k in pq.read_table(p, columns=["key"]).column("key").to_pylist()]


@pytest.fixture(scope="module")
def local_out(collection: Path, _trained_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: local `rookery predict` of the same photos with the same model URI."""
    out = tmp_path_factory.mktemp("local") / "out"
    mp = pytest.MonkeyPatch()
    mp.setenv("ROOKERY_TRACKING_URI", _trained_model.tracking_uri)
    mp.setenv("ROOKERY_HOME", str(out.parent / "home"))
    from rookery.config import get_settings

    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["predict", str(collection), "--out", str(out), *LOW])
    finally:
        mp.undo()
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    return out


def _same_files(local: Path, ray: Path) -> None:
    for name in ("counts.csv", "detections.csv", "detections.json"):
        assert (ray / name).read_bytes() == (local / name).read_bytes(), name


def test_ray_counts_equal_local_counts_and_the_corrupt_photo_is_in_the_errors_table(
    ray_cluster: RayCluster, collection: Path, local_out: Path, trained_model, tmp_path: Path
):
    out = tmp_path / "ray"
    output = _run(collection, out, ray_cluster, trained_model)
    _same_files(local_out, out)
    counts = pq.read_table(out / "counts.parquet").to_pydict()
    assert len(counts["image"]) == PHOTOS and sum(counts["total"]) > 0
    assert set(counts["model"]) == {f"models:/rookery/{trained_model.version}"}  # the version behind @champion
    assert len(set(counts["key"])) == PHOTOS
    detections = pq.read_table(out / "detections.parquet").to_pydict()
    assert len(detections["key"]) == sum(counts["total"])
    assert set(detections["key"]) <= set(counts["key"])
    errors = pq.read_table(out / "errors.parquet").to_pylist()
    assert [(e["image"], "not a readable image" in e["error"]) for e in errors] == [("broken", True)]
    assert f"{PHOTOS} photo(s) counted" in output and "1 error(s)" in output
    # the summary run in MLflow, with the counts as an artifact
    from rookery.packaging.client import client

    runs = client(trained_model.tracking_uri).search_runs(
        [client(trained_model.tracking_uri).get_experiment_by_name("rookery-predict").experiment_id],
        filter_string=f"params.out = '{out.resolve()}'",
    )
    assert len(runs) == 1
    assert runs[0].data.metrics["photos"] == PHOTOS and runs[0].data.metrics["errors"] == 1
    artifacts = [a.path for a in client(trained_model.tracking_uri).list_artifacts(runs[0].info.run_id, "counts")]
    assert "counts/counts.csv" in artifacts


def test_a_rerun_after_an_interrupted_run_counts_only_the_rest(
    ray_cluster: RayCluster, collection: Path, local_out: Path, trained_model, tmp_path: Path
):
    out = tmp_path / "ray"
    log = tmp_path / "first.log"
    first = _driver(collection, out, ray_cluster, trained_model, log)
    _wait_for_parts(out, first, log)
    os.killpg(first.pid, signal.SIGKILL)  # the driver dies (kill -9): no clean-up of any kind
    first.wait()
    before = sorted((out / "parts").glob("counts-*.parquet"))
    earlier = _keys(before)
    assert 0 < len(earlier) < PHOTOS
    output = _run(collection, out, ray_cluster, trained_model)
    after = [p for p in sorted((out / "parts").glob("counts-*.parquet")) if p not in before]
    assert not set(_keys(after)) & set(earlier)  # nothing counted twice
    assert len(_keys(after)) == PHOTOS - len(earlier)
    assert f"{PHOTOS - len(earlier)} photo(s) counted" in output and f"{len(earlier)} earlier" in output
    _same_files(local_out, out)


def test_a_worker_node_that_dies_mid_run_still_yields_every_photo_exactly_once(
    ray_cluster: RayCluster, collection: Path, local_out: Path, trained_model, tmp_path: Path
):
    out = tmp_path / "ray"
    log = tmp_path / "run.log"
    proc = _driver(collection, out, ray_cluster, trained_model, log)
    _wait_for_parts(out, proc, log)
    ray_cluster.kill_worker()
    ray_cluster.start_worker()  # a replacement joins, as an autoscaler would bring one
    assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
    counts = pq.read_table(out / "counts.parquet").to_pydict()
    assert sorted(counts["key"]) == sorted(set(counts["key"])) and len(counts["key"]) == PHOTOS
    _same_files(local_out, out)
