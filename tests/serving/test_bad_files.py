"""A corpus of bad uploads: each gets a 4xx with one sentence (never a 500), and the server goes on answering.

The files are made here: empty, a truncated JPEG, text named .jpg, a PNG whose header claims 30000x30000 pixels
(a decompression bomb: refused from the header, nothing decoded), a zip, a TIFF/BMP/WebP that is only a header,
and a request larger than a lowered upload limit (with and without Content-Length).
"""

from __future__ import annotations

import base64
import io
import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest


def png_claiming(width: int, height: int) -> bytes:
    """A well-formed PNG whose IHDR claims width x height RGB pixels, with one tiny IDAT (a bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def a_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("photo.jpg", b"\xff\xd8\xff" + b"\x00" * 100)
    return buffer.getvalue()


def _jpeg(width: int = 320, height: int = 240) -> bytes:
    rng = np.random.default_rng(0)
    ok, buf = cv2.imencode(".jpg", rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
    assert ok
    return buf.tobytes()


def _encoded(ext: str) -> bytes:
    ok, buf = cv2.imencode(ext, np.full((40, 50, 3), 128, np.uint8))
    assert ok
    return buf.tobytes()


CORPUS: dict[str, tuple[str, bytes, int, str]] = {
    # case: (file name, bytes, status, a fragment of the sentence)
    "empty": ("empty.jpg", b"", 400, "empty"),
    "truncated jpeg": ("cut.jpg", _jpeg()[:3000], 400, "not a readable image"),
    "jpeg magic only": ("magic.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 20, 400, "not a readable image"),
    "text named .jpg": ("notes.jpg", b"these are field notes, not a photo\n" * 20, 415, "JPEG, PNG, TIFF, BMP or WebP"),
    "30000x30000 png header": ("bomb.png", png_claiming(30000, 30000), 413, "ROOKERY_MAX_PIXELS"),
    "png over the pixel limit": ("wide.png", png_claiming(20000, 10000), 413, "200,000,000 pixels"),
    "zip": ("photos.zip", a_zip(), 415, "judged by its content"),
    "gif": ("anim.gif", b"GIF89a" + b"\x00" * 50, 415, "not a JPEG"),
    "png with a broken body": ("broken.png", _encoded(".png")[:60], 400, "not a readable image"),
    "tiff header only": ("scan.tif", _encoded(".tif")[:16], 400, "not a readable image"),
    "bmp header only": ("paint.bmp", b"BM" + b"\x00" * 30, 400, "not a readable image"),
    "webp header only": ("web.webp", _encoded(".webp")[:20], 400, "not a readable image"),
}


@pytest.mark.parametrize("case", list(CORPUS))
def test_each_bad_file_is_a_4xx_sentence_and_the_server_stays_up(client, case: str):
    name, data, status, fragment = CORPUS[case]
    response = client.post("/api/v1/predict", files=[("files", (name, data, "image/jpeg"))])
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert fragment in detail and "\n" not in detail and len(detail) < 300
    assert name in detail  # the file is named
    # the same bytes through /invocations: a 4xx too
    invocation = client.post("/invocations", json={"dataframe_records": [{"image": base64.b64encode(data).decode()}]})
    assert 400 <= invocation.status_code < 500, invocation.text
    assert client.get("/health").status_code == 200
    assert client.get("/ready").status_code == 200


def test_one_good_and_one_corrupt_file_give_one_result_and_one_named_error(client, photo_bytes: bytes):
    files = [
        ("files", ("good.jpg", photo_bytes, "image/jpeg")),
        ("files", ("corrupt.jpg", _jpeg()[:2000], "image/jpeg")),
    ]
    response = client.post("/api/v1/predict", files=files)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["file_name"] for r in body["results"]] == ["good.jpg"]
    (error,) = body["errors"]
    assert error["file_name"] == "corrupt.jpg" and "corrupt.jpg" in error["detail"]
    assert client.get("/api/v1/predictions").json()["total"] == 1  # only the good photo is in the history


def test_several_bad_files_report_each_with_the_first_status(client):
    files = [("files", ("a.txt", b"text", "text/plain")), ("files", ("b.jpg", b"", "image/jpeg"))]
    response = client.post("/api/v1/predict", files=files)
    assert response.status_code == 415
    detail = response.json()["detail"]
    assert "none of the 2 files" in detail and "a.txt" in detail and "b.jpg" in detail


@pytest.fixture
def small_limit_client(make_client) -> Iterator[object]:
    with make_client(max_upload_mb=1) as client:  # ROOKERY_MAX_UPLOAD_MB=1
        yield client


def test_a_request_over_the_upload_limit_is_413_before_it_is_read(small_limit_client, photo_bytes: bytes):
    client = small_limit_client
    huge = b"\xff\xd8\xff" + bytes(1_500_000)
    files = [("files", ("a.jpg", photo_bytes, "image/jpeg")), ("files", ("huge.jpg", huge, "image/jpeg"))]
    response = client.post("/api/v1/predict", files=files)  # with Content-Length: refused before reading
    assert response.status_code == 413
    assert "upload limit of 1 MB" in response.json()["detail"]
    assert client.get("/health").status_code == 200
    # the photo alone fits
    assert client.post("/api/v1/predict", files=files[:1]).status_code == 200


def test_a_streamed_body_without_content_length_is_cut_at_the_limit(small_limit_client):
    client = small_limit_client
    boundary = "rookeryboundary"

    def body() -> Iterator[bytes]:  # chunked transfer: the server counts bytes as they arrive
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.jpg"\r\n\r\n'.encode()
        for _ in range(40):
            yield b"\xff" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post(
        "/api/v1/predict", content=body(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert response.status_code == 413, response.text
    assert "upload limit" in response.json()["detail"]
    big_json = b'{"dataframe_records": [{"image": "' + b"A" * 2_000_000 + b'"}]}'
    response = client.post("/invocations", content=big_json, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert client.get("/health").status_code == 200


def test_an_image_over_the_pixel_limit_in_a_valid_file(make_client, photo_bytes: bytes, tmp_path: Path):
    with make_client(max_pixels=100_000) as client:  # the 384x288 survey photo has 110,592 pixels
        response = client.post("/api/v1/predict", files=[("files", ("photo.jpg", photo_bytes, "image/jpeg"))])
        assert response.status_code == 413
        assert "384x288" in response.json()["detail"]
