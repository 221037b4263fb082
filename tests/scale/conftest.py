"""A real two-node Ray cluster on loopback for the session (ray_cluster.py), and a synthetic collection of 30 photos."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("ray", reason="the Ray path needs Ray: pip install 'rookery[ray]'")

from ray_cluster import PHOTOS, RAY, RayCluster, node_args, ray_env

from processes import free_port


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    # Ray's socket paths must stay short (107 bytes): a short folder under /tmp, not pytest's.
    temp = Path(tempfile.mkdtemp(prefix="rkray-", dir="/tmp"))
    port = free_port()
    env = ray_env(tmp_path_factory.mktemp("ray-home"))
    cmd = [RAY, "start", "--head", "--block", "--port", str(port), "--include-dashboard", "false", *node_args(temp)]
    log = (temp / "head.log").open("w")
    head = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    cluster = RayCluster(f"127.0.0.1:{port}", temp, env, head)
    try:
        cluster.wait_cpus(1)
        cluster.start_worker()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="session")
def collection(_trained_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 photos of 768x576, each a different mosaic of flipped survey photos (about 40 tiles each), and one
    corrupt JPEG."""
    folder = tmp_path_factory.mktemp("collection")
    sources = [cv2.imread(str(p)) for p in sorted(_trained_model.photos.glob("*.jpg"))]
    rng = np.random.default_rng(7)
    for i in range(PHOTOS):
        picks, flips = rng.integers(0, len(sources), 4), rng.integers(-1, 2, 4)
        tiles = [cv2.flip(sources[int(k)], int(f)) for k, f in zip(picks, flips, strict=True)]
        photo = np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])
        cv2.imwrite(str(folder / f"photo{i:02d}.jpg"), photo, [cv2.IMWRITE_JPEG_QUALITY, 92])
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a whole JPEG")
    return folder
