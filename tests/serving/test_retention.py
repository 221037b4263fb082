"""Retention of stored uploads and renders (issue 16): by age and by size, enforced by a periodic task."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient
from serving_helpers import StubHolder, settings_for
from test_store import JPEG, new

from rookery.serving.retention import prune
from rookery.serving.store import PredictionStore


def _store(tmp_path: Path) -> PredictionStore:
    return PredictionStore(f"sqlite:///{tmp_path / 'history.db'}", tmp_path / "files")


def test_the_oldest_go_first_until_the_files_fit(tmp_path: Path):
    store = _store(tmp_path)
    try:
        ids = []
        for i in range(3):
            ids.append(store.add(new(f"{i}.jpg"), upload=JPEG + bytes(1000), annotated_jpeg=JPEG).id)
            time.sleep(0.01)
        assert prune(store) == 0  # off by default
        assert prune(store, max_bytes=2500) == 1  # each takes ~1,130 bytes: two fit
        assert [r.id for r in store.iter_all()] == ids[:0:-1]
        assert not (store.files_dir / ids[0]).exists()
        assert prune(store, max_age_days=1) == 0  # none is a day old
        time.sleep(0.05)
        assert prune(store, max_age_days=0.01 / 86400) == 2  # all older than 10 ms
        assert list(store.iter_all()) == []
    finally:
        store.close()


def test_the_app_prunes_periodically(tmp_path: Path):
    from rookery.serving.app import create_app

    store = _store(tmp_path)
    try:
        pid = store.add(new("old.jpg"), upload=JPEG).id
        time.sleep(0.05)
        settings = settings_for(tmp_path / "home", retention_days=0.01 / 86400, retention_check_seconds=0.05)
        app = create_app(settings, holder=StubHolder(), store=store)  # type: ignore[arg-type]
        with TestClient(app):
            deadline = time.monotonic() + 10
            while store.get(pid) is not None and time.monotonic() < deadline:
                time.sleep(0.05)
        assert store.get(pid) is None and not (store.files_dir / pid).exists()
    finally:
        store.close()
