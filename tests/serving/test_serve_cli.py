"""`rookery serve` as a user runs it: uvicorn with workers, structured access logs, limits over real HTTP, and a
one-line error when there is no model to serve."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from serving_helpers import live_server, settings_for
from typer.testing import CliRunner

from rookery.cli import app
from rookery.config import get_settings


def test_no_champion_is_one_line_that_says_how_to_get_one(trained_model, monkeypatch: pytest.MonkeyPatch):
    # a registered model name with no versions (the session's store, so no new MLflow database is made)
    monkeypatch.setenv("ROOKERY_MODEL_NAME", "nobody")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["serve", "--port", "1"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: cannot serve: no model 'nobody' with alias 'champion'")
    assert "rookery train" in lines[0] and "rookery model promote" in lines[0]


def test_two_workers_a_fixed_version_access_logs_and_limits(trained_model, photo_bytes: bytes, tmp_path: Path):
    env = {"ROOKERY_MAX_UPLOAD_MB": "1"}
    args = ("--workers", "2", "--model", f"models:/rookery/{trained_model.version}")
    with (
        live_server(tmp_path / "home", trained_model.tracking_uri, *args, env=env) as server,
        httpx.Client(base_url=server.url, timeout=60) as http,
    ):
        model = http.get("/api/v1/model").json()
        assert model["version"] == trained_model.version and model["alias"] is None
        assert model["following_alias"] is False and model["label"] == "rookery v1"
        for _ in range(4):  # both workers answer (the kernel spreads connections; each must be ready)
            with httpx.Client(base_url=server.url, timeout=60) as fresh:
                files = [("files", ("a.jpg", photo_bytes, "image/jpeg"))]
                assert fresh.post("/api/v1/predict", files=files).status_code == 200
        # over the limit (1 MB): a JSON 413 over real HTTP, and the server goes on
        huge = [("files", ("huge.jpg", b"\xff\xd8\xff" + bytes(1_500_000), "image/jpeg"))]
        response = http.post("/api/v1/predict", files=huge)
        assert response.status_code == 413 and "upload limit" in response.json()["detail"]
        assert http.get("/health").json() == {"status": "ok"}
        assert http.get("/docs").status_code == 200 and "swagger" in http.get("/docs").text.lower()
    log = server.output()
    access = [line for line in log.splitlines() if "rookery.access" in line]
    assert any(
        "method=POST path=/api/v1/predict status=200 ms=" in line and "client=127.0.0.1" in line for line in access
    )
    assert any("method=POST path=/api/v1/predict status=413" in line for line in access)
    assert "Started parent process" in log  # uvicorn's process manager: real workers, not a reloader
    assert "Traceback" not in log


def test_a_local_onnx_file_is_served_without_following(trained_model, tmp_path: Path):
    from fastapi.testclient import TestClient
    from serving_helpers import wait_ready

    from rookery.serving.app import create_app

    settings = settings_for(tmp_path / "home", model_uri=str(trained_model.onnx))
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        model = client.get("/api/v1/model").json()
        assert model["name"] is None and model["following_alias"] is False
        assert model["label"] == trained_model.onnx.name and model["backend"] in (
            "onnx",
            "openvino",
        )  # auto: OpenVINO when installed
        assert model["uri"] == f"…/{trained_model.onnx.name}"  # not the folders of the server's disk
        assert client.post("/api/v1/model/reload").json()["changed"] is False
