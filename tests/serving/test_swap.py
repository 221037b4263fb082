"""Zero-downtime model swaps: the server follows `champion`, and a move of the alias is loaded beside the old
version and swapped in atomically, while requests keep being answered.

Each test works on a private copy of the session's registry (conftest.private_registry); version 2 is registered
from version 1's files, so the answers differ only by the version that answered.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
from serving_helpers import READY_WAIT_S, add_version, live_server, move_alias


def _version(client: Any) -> str:
    return str(client.get("/api/v1/model").json()["version"])


def test_reload_swaps_in_the_moved_alias_and_counts_it(make_client, private_registry, photo_bytes: bytes):
    # a long poll interval: only the forced check (POST /api/v1/model/reload) can see the move
    with make_client(tracking_uri=private_registry.tracking_uri, registry_poll_seconds=3600) as client:
        assert _version(client) == "1"
        version = add_version(private_registry)
        move_alias(private_registry, version)
        response = client.post("/api/v1/model/reload")
        assert response.status_code == 200, response.text
        assert response.json()["changed"] is True and response.json()["model"]["version"] == version
        assert _version(client) == version and client.get("/ready").json()["model"] == f"rookery v{version} (champion)"
        result = client.post("/api/v1/predict", files=[("files", ("a.jpg", photo_bytes, "image/jpeg"))]).json()
        assert result["results"][0]["model"]["version"] == version
        assert client.post("/api/v1/model/reload").json()["changed"] is False  # nothing moved since
        metrics = client.get("/metrics").text
        assert "rookery_model_swaps_total 1.0" in metrics
        assert f'version="{version}"}} 1.0' in metrics and 'version="1"} 1.0' not in metrics


def test_a_version_that_fails_to_load_leaves_the_old_one_serving(
    make_client, private_registry, photo_bytes: bytes, tmp_path: Path
):
    from rookery.packaging.client import client as mlflow_client

    empty = tmp_path / "not-a-model"
    empty.mkdir()
    (empty / "README.txt").write_text("no model here")
    broken = mlflow_client(private_registry.tracking_uri).create_model_version("rookery", str(empty))
    with make_client(tracking_uri=private_registry.tracking_uri, registry_poll_seconds=3600) as client:
        move_alias(private_registry, str(broken.version))
        response = client.post("/api/v1/model/reload")
        assert response.status_code == 503
        assert "not packaged by rookery" in response.json()["detail"]
        # the old version still answers, and the failure is counted
        assert _version(client) == "1" and client.get("/ready").status_code == 200
        files = [("files", ("a.jpg", photo_bytes, "image/jpeg"))]
        assert client.post("/api/v1/predict", files=files).json()["results"][0]["model"]["version"] == "1"
        assert 'rookery_errors_total{kind="model_load"} 1.0' in client.get("/metrics").text


def test_moving_champion_under_load_fails_no_request_and_switches_the_answers(
    private_registry, photo_bytes: bytes, tmp_path: Path
):
    """A real `rookery serve` polling every 0.5 s; a client thread sends photos without pause throughout."""
    answers: list[str] = []  # the version of each answer, in order
    failures: list[str] = []
    stop = threading.Event()

    def send_continuously(url: str) -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            while not stop.is_set():
                try:
                    r = http.post("/api/v1/predict", files=[("files", ("a.jpg", photo_bytes, "image/jpeg"))])
                    if r.status_code != 200:
                        failures.append(f"{r.status_code}: {r.text[:300]}")
                    else:
                        answers.append(r.json()["results"][0]["model"]["version"])
                except httpx.HTTPError as e:
                    failures.append(f"{type(e).__name__}: {e}")

    env = {"ROOKERY_REGISTRY_POLL_SECONDS": "0.5"}
    with live_server(tmp_path / "home", private_registry.tracking_uri, env=env) as server:
        sender = threading.Thread(target=send_continuously, args=(server.url,), daemon=True)
        sender.start()
        try:
            _wait_for(lambda: len(answers) >= 3, "the first answers")
            new_version = add_version(private_registry)
            move_alias(private_registry, new_version)
            _wait_for(lambda: new_version in answers, "an answer from the new version")
            seen = len(answers)
            _wait_for(lambda: len(answers) >= seen + 3, "more answers after the swap")
        finally:
            stop.set()
            sender.join(120)
        log = server.output()
        with httpx.Client(base_url=server.url) as http:
            assert http.get("/api/v1/model").json()["version"] == new_version
            assert "rookery_model_swaps_total 1.0" in http.get("/metrics").text

    assert failures == [], failures
    assert answers[0] == "1" and answers[-1] == new_version
    switched = answers.index(new_version)
    assert set(answers[:switched]) == {"1"} and set(answers[switched:]) == {new_version}  # never back
    assert f"moved from version 1 to {new_version}" in log


def _wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + READY_WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
