"""What clients and terminals see has no passwords and no folders of the server's disk (issue 16)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from serving_helpers import StubHolder, settings_for

from rookery.serving.redact import redact, redact_url


@pytest.mark.parametrize(
    ("text", "kept", "gone"),
    [
        ("cannot read http://bob:hunter2@mlflow:5000/api", "http://bob:***@mlflow:5000/api", "hunter2"),
        ("postgresql+psycopg://rookery:pw@db:5432/rookery", "rookery:***@db", ":pw@"),
        ("https://store/x?token=abc&v=1", "token=***&v=1", "abc"),
        ("/srv/models/1/best.pt: no such file", "…/best.pt: no such file", "/srv"),
        ("C:\\secret\\path\\model.pt was not found", "…/model.pt", "secret"),
        ("sqlite:////home/ann/.rookery/mlflow.db is locked", "sqlite:…/mlflow.db", "/home/ann"),
        ("models:/rookery@champion moved to version 3", "models:/rookery@champion moved to version 3", "…"),
    ],
)
def test_redact(text: str, kept: str, gone: str):
    assert kept in redact(text) and gone not in redact(text)


def test_redact_url_keeps_paths():  # for the terminal of the server's own operator: only the password goes
    assert redact_url("sqlite:////srv/h.db and http://u:p@h/x") == "sqlite:////srv/h.db and http://u:***@h/x"


def test_ready_does_not_leak_paths(tmp_path: Path):
    from rookery.serving.app import create_app

    app = create_app(settings_for(tmp_path / "home"), holder=StubHolder())  # type: ignore[arg-type]
    with TestClient(app) as client:
        response = client.get("/ready")
        assert response.status_code == 503
        assert response.json()["detail"] == "…/model.pt was not found"
        detail = client.get("/api/v1/model").json()["detail"]
        assert "secret" not in detail and "model.pt" in detail


def test_serve_prints_no_password(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    import uvicorn

    from rookery.cli import serve as serve_cli
    from rookery.config import get_settings

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)
    monkeypatch.setattr(serve_cli, "_preflight", lambda settings: None)
    monkeypatch.setenv("ROOKERY_TRACKING_URI", "http://ml:s3cret@mlflow:5000")
    monkeypatch.setenv("ROOKERY_HISTORY_URL", "postgresql+psycopg://rookery:pg-s3cret@db/rookery")
    monkeypatch.setenv("ROOKERY_HOST", "127.0.0.1")  # serve() sets it; restored after the test
    get_settings.cache_clear()
    try:
        serve_cli.serve(model=None, host="127.0.0.1", port=8000, workers=1)
    finally:
        get_settings.cache_clear()
    out = capsys.readouterr().err
    assert "mlflow:5000" in out and "s3cret" not in out


def test_serve_on_every_interface_says_which_hosts_it_answers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    import uvicorn

    from rookery.cli import serve as serve_cli
    from rookery.config import get_settings

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)
    monkeypatch.setattr(serve_cli, "_preflight", lambda settings: None)
    monkeypatch.setenv("ROOKERY_HOST", "127.0.0.1")  # serve() sets it; restored after the test
    monkeypatch.delenv("ROOKERY_ALLOWED_HOSTS", raising=False)
    get_settings.cache_clear()
    try:
        serve_cli.serve(model=None, host="0.0.0.0", port=8000, workers=1)
    finally:
        get_settings.cache_clear()
    assert "ROOKERY_ALLOWED_HOSTS" in capsys.readouterr().err
