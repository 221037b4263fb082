"""Shared fixtures and the network guard.

The guard fails any test that opens a connection to, or resolves, a host that is not on loopback:
rookery must work offline, so a test that reaches out is a bug (see ../shared/ENVIRONMENT.md).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SEALIONS = Path(os.environ.get("ROOKERY_SEALIONS_DIR", REPO.parent / "shared" / "data" / "sealions"))

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "", None}


def _is_local(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback or str(host) in ("0.0.0.0", "::")
    except ValueError:
        return False


def _network_guard(event: str, args: tuple) -> None:
    if event == "socket.getaddrinfo":
        host = args[0]
        if not _is_local(host):
            raise ConnectionRefusedError(f"test tried to resolve non-loopback host {host!r}")
    elif event == "socket.connect":
        sock, address = args[0], args[1]
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
            raise ConnectionRefusedError(f"test tried to connect to non-loopback address {address!r}")


sys.addaudithook(_network_guard)

# Offline switches and third-party caches (Ultralytics, Matplotlib) for the whole session, outside ~.
from rookery.config import Settings  # noqa: E402
from rookery.offline import ensure_offline  # noqa: E402

ensure_offline(Settings(home=Path(tempfile.mkdtemp(prefix="rookery-test-"))))


@pytest.fixture(autouse=True)
def rookery_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Each test gets its own ROOKERY_HOME, so nothing leaks between tests or into the repo."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("ROOKERY_HOME", str(home))
    for key in ("ROOKERY_TRACKING_URI", "ROOKERY_HISTORY_URL", "ROOKERY_MODEL_URI", "ROOKERY_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    from rookery.config import get_settings

    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def sealions() -> Path:
    """The small real sea lion sample; tests that need it skip with a reason when it is absent."""
    if not (SEALIONS / "points.csv").is_file():
        pytest.skip(f"real sea lion sample not found at {SEALIONS} (set ROOKERY_SEALIONS_DIR)")
    return SEALIONS
