"""/metrics with `rookery serve --workers 2`: every scrape, whichever worker answers it, shows the sum of both
workers' counters (prometheus_client's multiprocess mode), and the folder of value files is private and cleaned."""

from __future__ import annotations

import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from serving_helpers import live_server

from rookery.serving.metrics import MULTIPROC_ENV, Metrics, forget_dead_workers, multiprocess_dir

ROUND = 12  # predict requests per round, 6 at a time, each on its own connection so the kernel spreads them


def sample(text: str, name: str, labels: str = "") -> float:
    """One sample's value from Prometheus text (0 when the series is absent)."""
    pattern = rf"^{re.escape(name)}{re.escape(labels)} (\S+)$" if labels else rf"^{re.escape(name)} (\S+)$"
    found = re.search(pattern, text, re.M)
    return float(found.group(1)) if found else 0.0


def images_per_worker(folder: Path) -> dict[str, float]:
    """rookery_images_total of each worker process, read from its own value file (counter_<pid>.db)."""
    from prometheus_client.multiprocess import MultiProcessCollector

    per_pid = {}
    for file in sorted(folder.glob("counter_*.db")):
        value = 0.0
        for metric in MultiProcessCollector.merge([str(file)], accumulate=True):
            value += sum(s.value for s in metric.samples if s.name == "rookery_images_total")
        per_pid[file.stem.removeprefix("counter_")] = value
    return per_pid


def test_two_workers_are_summed_in_every_scrape(trained_model, photo_bytes: bytes, tmp_path: Path):
    folder = tmp_path / "prometheus"  # the operator's folder (kept), so the test can read each worker's file
    folder.mkdir()
    (folder / "counter_999999.db").write_bytes(b"stale")  # a previous run's file: must be cleared at start
    args = ("--workers", "2", "--model", f"models:/rookery/{trained_model.version}")
    env = {MULTIPROC_ENV: str(folder)}

    def predict(_: int) -> int:
        with httpx.Client(base_url=server.url, timeout=120) as fresh:
            files = [("files", ("a.jpg", photo_bytes, "image/jpeg"))]
            return fresh.post("/api/v1/predict", files=files).status_code

    with live_server(tmp_path / "home", trained_model.tracking_uri, *args, env=env) as server:
        assert not (folder / "counter_999999.db").exists()
        sent = 0
        with ThreadPoolExecutor(6) as pool:
            for _ in range(10):  # rounds until both workers have counted photos (bounded; the first nearly always)
                assert list(pool.map(predict, range(ROUND))) == [200] * ROUND
                sent += ROUND
                per_worker = images_per_worker(folder)
                if sum(1 for v in per_worker.values() if v > 0) >= 2:
                    break
        assert sum(1 for v in per_worker.values() if v > 0) == 2, f"one worker took every request: {per_worker}"
        assert sum(per_worker.values()) == sent

        # The request counter is incremented by the access-log middleware just after the answer is sent: wait
        # (bounded) until the last answers are recorded, so the scrapes below compare settled numbers.
        route = '{method="POST",route="/api/v1/predict",status="200"}'
        deadline = time.monotonic() + 10
        while sample(httpx.get(f"{server.url}/metrics", timeout=30).text, "rookery_http_requests_total", route) < sent:
            assert time.monotonic() < deadline, "the last requests were never counted"
            time.sleep(0.1)
        # Every scrape (fresh connections, so both workers answer some) shows the total, not one worker's share.
        for _ in range(8):
            with httpx.Client(base_url=server.url, timeout=30) as fresh:
                text = fresh.get("/metrics").text
            assert sample(text, "rookery_images_total") == sent
            assert sample(text, "rookery_http_requests_total", route) == sent
            assert sample(text, "rookery_inference_duration_seconds_count") == sent
            assert sample(text, "rookery_model_loaded") == 1  # livemin: every worker has its model
            info = re.findall(r'^rookery_model_info\{.*version="(\w+)".*\} 1\.0$', text, re.M)
            assert info == [trained_model.version]
    assert list(folder.glob("gauge_live*.db")) == []  # the stopped workers' live gauges are forgotten
    assert len(list(folder.glob("counter_*.db"))) == 2  # the operator's folder is kept, with what was counted


def test_a_dead_workers_live_gauges_are_forgotten_and_a_live_ones_kept(tmp_path: Path):
    import subprocess

    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that no longer runs
    for pid in (gone.pid, os.getpid()):
        for mode in ("livemax", "livemin"):
            (tmp_path / f"gauge_{mode}_{pid}.db").write_bytes(b"")
        (tmp_path / f"counter_{pid}.db").write_bytes(b"")
    forget_dead_workers(tmp_path)
    left = sorted(p.name for p in tmp_path.iterdir())
    mine = os.getpid()
    assert left == sorted(
        [f"counter_{gone.pid}.db", f"counter_{mine}.db", f"gauge_livemax_{mine}.db", f"gauge_livemin_{mine}.db"]
    )


def test_one_worker_stays_in_process_and_several_get_a_private_folder(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    with multiprocess_dir(1) as folder:
        assert folder is None and MULTIPROC_ENV not in os.environ
    with multiprocess_dir(3) as folder:
        assert folder is not None and folder.is_dir() and os.environ[MULTIPROC_ENV] == str(folder)
        (folder / "counter_1.db").write_bytes(b"")
    assert not folder.exists() and MULTIPROC_ENV not in os.environ  # removed with what the workers wrote


def test_a_single_process_app_keeps_its_own_registry(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    first, second = Metrics(), Metrics()
    first.counted(["pups"], [3], 0.01)
    first.set_model("rookery", "1", "champion", "models:/rookery@champion")
    first.set_model("rookery", "2", "champion", "models:/rookery@champion")  # a swap: version 1 disappears
    text = first.render().decode()
    assert sample(text, "rookery_images_total") == 1
    assert sample(text, "rookery_objects_total", '{class_name="pups"}') == 3
    assert re.findall(r'^rookery_model_info\{.*version="(\w+)".*\} (\S+)$', text, re.M) == [("2", "1.0")]
    assert sample(second.render().decode(), "rookery_images_total") == 0
