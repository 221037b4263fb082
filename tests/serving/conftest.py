"""Fixtures of the serving tests: the session's tiny real model (tests/conftest.py), apps built on it, photos.

The model is trained once per session (1 epoch at 64 px): its counts may be zero at the default confidence, so
tests that need boxes ask for conf=0.001. Tests that move an alias work on a private copy of the registry (the
session's SQLite store is copied; the artifacts it points to are shared read-only), never on the session's store.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from serving_helpers import Registry, settings_for, wait_ready

from rookery.config import get_settings


@pytest.fixture
def photos(trained_model) -> list[Path]:
    """The survey photos the session model was trained on (384x288 JPEGs)."""
    found = sorted(trained_model.photos.glob("*.jpg"))
    assert found
    return found


@pytest.fixture
def photo_bytes(photos: list[Path]) -> bytes:
    return photos[0].read_bytes()


@pytest.fixture
def private_registry(trained_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    """A copy of the session's registry that a test may change (new versions, alias moves)."""
    source = trained_model.tracking_uri.removeprefix("sqlite:///")
    target = tmp_path / "registry" / "mlflow.db"
    target.parent.mkdir()
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)  # consistent even if another process reads the store meanwhile
    uri = f"sqlite:///{target}"
    monkeypatch.setenv("ROOKERY_TRACKING_URI", uri)
    get_settings.cache_clear()
    return Registry(uri, trained_model.version, trained_model.run_id)


AppFactory = Callable[..., Any]


@pytest.fixture
def make_client(trained_model, tmp_path: Path) -> Iterator[AppFactory]:
    """make_client(**settings) -> a started TestClient whose model is loaded (a context manager)."""
    from rookery.serving.app import create_app

    @contextmanager
    def start(home: Path | None = None, **overrides: Any) -> Iterator[TestClient]:
        settings = settings_for(home or tmp_path / "app-home", **overrides)
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            wait_ready(client)
            yield client

    yield start


@pytest.fixture
def client(make_client: AppFactory) -> Iterator[TestClient]:
    with make_client() as c:
        yield c
