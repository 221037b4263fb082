"""What every request passes before a route runs (issue 16): the API key before the body is read, the Host header
(DNS rebinding), the same-origin rule for state-changing requests, and the security headers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from serving_helpers import StubHolder, settings_for

from rookery.config import Settings
from rookery.serving.guards import host_name


def _app(tmp_path: Path, **overrides: Any) -> Any:
    from rookery.serving.app import create_app

    return create_app(settings_for(tmp_path / "home", **overrides), holder=StubHolder())  # type: ignore[arg-type]


def test_the_api_key_is_checked_before_the_body_is_read(tmp_path: Path):
    app = _app(tmp_path, api_key="s3cret")
    reads = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"x" * 65536, "more_body": reads < 1600}  # 100 MB, if read

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    for path in ("/api/v1/predict", "/invocations"):
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"localhost"), (b"content-type", b"multipart/form-data; boundary=x")],
            "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        sent.clear()
        asyncio.run(app(scope, receive, send))
        assert sent[0]["status"] == 401 and reads == 0, path


def test_with_the_key_the_request_goes_through_and_without_one_it_is_401(tmp_path: Path):
    with TestClient(_app(tmp_path, api_key="s3cret")) as client:
        assert client.get("/api/v1/predictions").status_code == 401
        assert client.get("/api/v1/predictions", headers={"X-API-Key": "s3cret"}).status_code == 200
        assert client.get("/api/v1/predictions", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.get("/api/v1/predictions", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/health").status_code == 200  # public


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("localhost:8000", 200),
        ("127.0.0.1", 200),
        ("[::1]:8000", 200),  # IPv6 with a port (Starlette's TrustedHostMiddleware cuts it at the first colon)
        ("attacker.example:8000", 400),  # DNS rebinding: the page's own host name
        ("localhost.attacker.example", 400),
    ],
)
def test_only_the_servers_own_host_names_are_answered(tmp_path: Path, host: str, status: int):
    with TestClient(_app(tmp_path, allowed_hosts=[])) as client:
        response = client.get("/api/v1/predictions", headers={"Host": host})
        assert response.status_code == status, response.text
        if status == 400:
            assert "ROOKERY_ALLOWED_HOSTS" in response.json()["detail"]


def test_the_default_hosts_are_loopback_and_the_bind_address(monkeypatch: pytest.MonkeyPatch):
    assert set(Settings(host="10.0.0.5").hosts()) >= {"localhost", "127.0.0.1", "::1", "10.0.0.5"}
    assert "0.0.0.0" not in Settings(host="0.0.0.0").hosts()
    monkeypatch.setenv("ROOKERY_ALLOWED_HOSTS", "counts.example.org, localhost")
    assert Settings().hosts() == ["counts.example.org", "localhost"]
    assert host_name("[::1]:8000") == "::1" and host_name("Example.org:80") == "example.org"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 200),  # not a browser: curl, scripts
        ({"Origin": "http://testserver"}, 200),  # the page itself
        ({"Referer": "http://testserver/history"}, 200),
        ({"Origin": "http://evil.example"}, 403),  # a form or fetch on another site
        ({"Origin": "null"}, 403),
        ({"Referer": "http://evil.example/page"}, 403),
        ({"Sec-Fetch-Site": "cross-site"}, 403),
    ],
)
def test_state_changing_requests_must_be_same_origin(tmp_path: Path, headers: dict[str, str], status: int):
    with TestClient(_app(tmp_path)) as client:
        response = client.delete("/api/v1/predictions/nothing", headers=headers)
        assert response.status_code == (404 if status == 200 else 403), response.text
        assert client.get("/api/v1/predictions", headers=headers).status_code == 200  # reading is never refused


def test_security_headers(tmp_path: Path):
    with TestClient(_app(tmp_path)) as client:
        api = client.get("/api/v1/predictions")
        assert api.headers["x-content-type-options"] == "nosniff" and api.headers["referrer-policy"] == "same-origin"
        page = client.get("/history")
        csp = page.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/api/v1/predictions/abc", "DELETE, GET"),  # two routes on one path: both methods
        ("PUT", "/api/v1/predictions/abc", "DELETE, GET"),
        ("OPTIONS", "/api/v1/predict", "POST"),
        ("PATCH", "/health", "GET"),
    ],
)
def test_405_names_every_method_of_the_path(tmp_path: Path, method: str, path: str, allow: str):
    with TestClient(_app(tmp_path)) as client:
        response = client.request(method, path)
        assert response.status_code == 405 and response.headers["allow"] == allow
