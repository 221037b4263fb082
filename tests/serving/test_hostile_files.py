"""A corpus of hostile files (issue 16) through the API, `rookery predict` and the pyfunc's decoding: each gets a
clear error or a count, never a crash, a 500 or a hang, and a batch keeps the good files."""

from __future__ import annotations

import io
import struct
import time
import zipfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from rookery.errors import InputError
from rookery.imaging import decode_image


def _png_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def corpus(photo: bytes) -> dict[str, bytes]:
    """name -> bytes; the names' extensions are what a careless client would send."""
    image = cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR)
    png = cv2.imencode(".png", image)[1].tobytes()
    tiff16 = cv2.imencode(".tif", (image.astype(np.uint16) * 257))[1].tobytes()
    cmyk = io.BytesIO()
    Image.fromarray(image[:, :, ::-1]).convert("CMYK").save(cmyk, "JPEG")
    zip_buffer = io.BytesIO()
    with zipfile.ZipFile(zip_buffer, "w") as z:
        z.writestr("payload.html", "<script>alert(1)</script>")
    exif = b"\xff\xe1" + struct.pack(">H", 65535) + b"Exif\0\0" + b"A" * 65527  # one maximal APP1 segment
    return {
        "zero.jpg": b"",
        "truncated.jpg": photo[: len(photo) // 3],
        "truncated.png": png[: len(png) // 2],
        "bomb.png": _png_claiming(40000, 40000),
        "wide-bomb.png": _png_claiming(1_000_000, 1),
        "polyglot.jpg": photo + zip_buffer.getvalue(),  # a JPEG that is also a ZIP
        "html.jpg": b"<html><script>alert(1)</script></html>",
        "huge-exif.jpg": photo[:2] + exif * 8 + photo[2:],
        "16bit.tif": tiff16,
        "cmyk.jpg": cmyk.getvalue(),
        "png-named.jpg": png,  # wrong extension: judged by content
        "zip.jpg": zip_buffer.getvalue(),
    }


def test_the_api_answers_each_hostile_file_and_keeps_the_good_ones(client, photo_bytes: bytes):
    files = [("files", ("good.jpg", photo_bytes, "image/jpeg"))]
    files += [("files", (name, data, "image/jpeg")) for name, data in corpus(photo_bytes).items()]
    started = time.monotonic()
    response = client.post("/api/v1/predict", files=files)
    assert time.monotonic() - started < 120
    assert response.status_code == 200, response.text
    body = response.json()
    counted = {r["file_name"] for r in body["results"]}
    failed = {e["file_name"]: e["detail"] for e in body["errors"]}
    assert counted | set(failed) == {name for _, (name, _, _) in files}  # every file is accounted for
    assert {"good.jpg", "polyglot.jpg", "png-named.jpg", "16bit.tif", "cmyk.jpg", "huge-exif.jpg"} <= counted
    assert {"zero.jpg", "bomb.png", "wide-bomb.png", "html.jpg", "zip.jpg"} <= set(failed)
    for name, detail in failed.items():
        assert name in detail and len(detail) < 300 and "Traceback" not in detail
    assert client.get("/health").status_code == 200


def test_the_cli_reader_refuses_or_decodes_each(photo_bytes: bytes):
    for name, data in corpus(photo_bytes).items():
        try:
            image = decode_image(data, name)  # rookery predict, the pipeline and the GPU engine read through it
        except InputError as e:
            assert name in str(e)
        else:
            assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, name


def test_the_pyfunc_model_refuses_or_counts_each(trained_model, photo_bytes: bytes):
    """MLflow's pyfunc (what `mlflow models serve` runs) on the same corpus: a 4xx-mapped error naming the row
    for each unreadable file, detections for each readable one, never a crash."""
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from rookery.packaging.models import load_predictor
    from rookery.packaging.pyfunc import encode_image, predict_frame

    predictor, _ = load_predictor(str(trained_model.onnx))
    for name, data in corpus(photo_bytes).items():
        frame = pd.DataFrame({"image": [encode_image(photo_bytes), encode_image(data)]})
        try:
            out = predict_frame(predictor, frame)
        except MlflowException as e:
            assert e.error_code == "INVALID_PARAMETER_VALUE" and "row 1" in str(e), name
        else:
            assert set(out["image"]) <= {0, 1}, name


@pytest.mark.parametrize("name", ["bomb.png", "wide-bomb.png", "zero.jpg", "html.jpg"])
def test_rookery_predict_names_the_bad_file_and_counts_the_rest(trained_model, tmp_path: Path, name: str):
    from typer.testing import CliRunner

    from rookery.cli import app

    folder = tmp_path / "photos"
    folder.mkdir()
    good = sorted(trained_model.photos.glob("*.jpg"))[0]
    (folder / good.name).write_bytes(good.read_bytes())
    (folder / name).write_bytes(corpus(good.read_bytes())[name])
    result = CliRunner().invoke(app, ["predict", str(folder), "--out", str(tmp_path / "out"), "--no-annotate"])
    assert result.exit_code == 0, result.output
    assert name in result.output and "1 photo(s) counted" in result.output
