"""A prediction deleted while it is read is a 404, never a 500 (issue 16)."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_a_file_deleted_after_its_lookup_is_404(client, photo_bytes: bytes, tmp_path: Path, monkeypatch):
    response = client.post("/api/v1/predict", files=[("files", ("a.jpg", photo_bytes, "image/jpeg"))])
    result = response.json()["results"][0]
    store = client.app.state.store
    assert client.get(result["image_url"]).status_code == 200
    # the DELETE lands between the route's lookup of the path and the reading of the file
    monkeypatch.setattr(store, "file_path", lambda id, kind: tmp_path / "deleted" / "annotated.jpg")
    for url in (result["image_url"], result["upload_url"]):
        response = client.get(url)
        assert response.status_code == 404, response.text
        assert "no " in response.json()["detail"]


@pytest.mark.parametrize("times", [2])
def test_deleting_twice_is_204_then_404(client, photo_bytes: bytes, times: int):
    result = client.post("/api/v1/predict", files=[("files", ("a.jpg", photo_bytes, "image/jpeg"))]).json()
    pid = result["results"][0]["id"]
    assert client.delete(f"/api/v1/predictions/{pid}").status_code == 204
    assert client.delete(f"/api/v1/predictions/{pid}").status_code == 404
    assert client.get(f"/api/v1/predictions/{pid}/image").status_code == 404


def test_a_full_disk_is_507_and_leaves_nothing_half_written(client, photo_bytes: bytes, monkeypatch):
    import errno

    store = client.app.state.store
    before = sorted(p.name for p in store.files_dir.iterdir())
    real_write = Path.write_bytes
    calls = 0

    def full(self: Path, data: bytes) -> int:  # the first file fits, the second finds the disk full
        nonlocal calls
        calls += 1
        if calls > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    response = client.post("/api/v1/predict", files=[("files", ("a.jpg", photo_bytes, "image/jpeg"))])
    assert response.status_code == 507, response.text
    assert "disk is full" in response.json()["detail"]
    monkeypatch.undo()
    assert sorted(p.name for p in store.files_dir.iterdir()) == before  # no .partial, no half-stored prediction
    assert client.get("/api/v1/predictions").json()["total"] == 0
    assert client.get("/health").status_code == 200
