"""Bounded work per request (issue 16, High): tile and overlap within bounds, a budget of decoded pixels and of
tiles x network input pixels per request, the same on /api/v1/predict and /invocations."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from rookery.data.tiling import tile_grid
from rookery.serving.budget import Budget, Tiling, WorkTooLarge


@pytest.mark.parametrize(
    ("width", "height", "tile", "overlap"),
    [
        (1000, 1000, 32, 15),  # many small tiles
        (384, 288, 128, 8),  # the survey photo at the session model's tile
        (100, 50, 640, 64),  # smaller than one tile
        (5616, 3744, 640, 64),  # a full-resolution survey photo
    ],
)
def test_the_tile_count_is_tile_grids_without_building_it(width: int, height: int, tile: int, overlap: int):
    assert Tiling(tile, overlap, tile).tiles(width, height) == len(tile_grid(width, height, tile, overlap))


def test_the_issues_example_is_refused_by_the_budget_before_any_work():
    # tile 32, overlap 15 on 1000x1000: 3,481 tiles of 32x32 network pixels = 3.6 Mpx: over a 1 Mpx budget
    budget = Budget(Tiling(32, 15, 32), max_pixels=10**9, max_work=1_000_000)
    with pytest.raises(WorkTooLarge, match="ROOKERY_MAX_REQUEST_WORK_MEGAPIXELS"):
        budget.add("a.jpg", 1000, 1000)


def _upload(client, photos: list[tuple[str, bytes]], **form: str):
    files = [("files", (name, data, "image/jpeg")) for name, data in photos]
    return client.post("/api/v1/predict", files=files, data=form)


def _invoke(client, images: list[bytes], **params: object):
    body = {"dataframe_records": [{"image": base64.b64encode(i).decode()} for i in images], "params": params}
    return client.post("/invocations", json=body)


@pytest.mark.parametrize(
    ("form", "words"),
    [
        ({"tile": "48"}, "ROOKERY_MIN_TILE"),  # below the minimum tile
        ({"tile": "64", "overlap": "32"}, "half the tile"),  # overlap of half the tile: ~4x the tiles
        ({"tile": "96", "overlap": "60"}, "half the tile"),
    ],
)
def test_tiling_out_of_bounds_is_422_on_both_routes(client, photo_bytes: bytes, form: dict[str, str], words: str):
    response = _upload(client, [("a.jpg", photo_bytes)], **form)
    assert response.status_code == 422 and words in response.json()["detail"], response.text
    params = {k: int(v) for k, v in form.items()}
    response = _invoke(client, [photo_bytes], **params)
    assert response.status_code == 422 and words in response.json()["detail"], response.text


def test_the_request_budget_is_413_naming_the_setting_on_both_routes(make_client, photos: list[Path]):
    # 384x288 photos (0.11 Mpx); the model's tiling (128 px, overlap 16, network 64 px) takes 12 tiles = 0.05 Mpx
    # of network input per photo; tile 64 with overlap 31 takes 88 tiles of 32 px = 0.09 Mpx
    data = [p.read_bytes() for p in photos[:2]]
    with make_client(max_request_megapixels=0.2, max_request_work_megapixels=0.08) as client:
        assert _upload(client, [("a.jpg", data[0])]).status_code == 200
        response = _upload(client, [("a.jpg", data[0]), ("b.jpg", data[1])])
        assert response.status_code == 413, response.text
        assert "ROOKERY_MAX_REQUEST_MEGAPIXELS" in response.json()["detail"]
        response = _upload(client, [("a.jpg", data[0])], tile="64", overlap="31")
        assert response.status_code == 413, response.text
        assert "ROOKERY_MAX_REQUEST_WORK_MEGAPIXELS" in response.json()["detail"]
        assert client.get("/api/v1/predictions").json()["total"] == 1  # the refused requests counted nothing
        response = _invoke(client, data)
        assert response.status_code == 413 and "ROOKERY_MAX_REQUEST_MEGAPIXELS" in response.json()["detail"]
        response = _invoke(client, data[:1], tile=64, overlap=31)
        assert response.status_code == 413 and "ROOKERY_MAX_REQUEST_WORK_MEGAPIXELS" in response.json()["detail"]
        assert _invoke(client, data[:1]).status_code == 200


def test_invocations_has_the_file_limit_of_predict(client):
    tiny = base64.b64encode(b"\xff\xd8\xff").decode()
    body = {"dataframe_records": [{"image": tiny}] * 101}
    response = client.post("/invocations", json=body)
    assert response.status_code == 413 and "at most 100" in response.json()["detail"], response.text
