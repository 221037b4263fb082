"""imaging.check_pixels (issue 16): a small file that claims a huge image is refused from its header, before any
decoding, wherever photos are read (CLI, pipeline, GPU engine: all through imaging.decode_image)."""

from __future__ import annotations

import struct
import tracemalloc
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from rookery.imaging import MAX_PIXELS, ImageTooLarge, check_pixels, decode_image, header_size, read_image


def png_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (30000, 30000),  # 900 Mpx: past PIL's own guard too
        (20000, 16000),  # 320 Mpx: just over MAX_PIXELS
    ],
)
def test_a_bomb_is_refused_from_its_header_without_decoding(tmp_path: Path, width: int, height: int):
    data = png_claiming(width, height)
    tracemalloc.start()
    with pytest.raises(ImageTooLarge, match="than the limit of 300,000,000"):
        decode_image(data, "bomb.png")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50_000_000  # nothing near width x height x 3 bytes was allocated
    path = tmp_path / "bomb.png"
    path.write_bytes(data)
    with pytest.raises(ImageTooLarge):
        read_image(path)  # the CLI's and the pipeline's reader


def test_a_normal_photo_passes_and_a_lower_limit_applies():
    _ok, buf = cv2.imencode(".jpg", np.zeros((30, 40, 3), np.uint8))
    data = buf.tobytes()
    assert header_size(data) == (40, 30)
    assert decode_image(data, "a.jpg").shape == (30, 40, 3)
    check_pixels(data, "a.jpg", MAX_PIXELS)
    with pytest.raises(ImageTooLarge, match="40x30 = 1,200 pixels"):
        decode_image(data, "a.jpg", max_pixels=1000)
    assert header_size(b"not an image") is None  # OpenCV then says it is not a readable image


def test_the_pyfunc_model_refuses_a_decompression_bomb_from_its_header():
    """The MLflow pyfunc decodes through imaging.decode_image too: a 4xx-mapped error naming the row."""
    pytest.importorskip("mlflow")
    from mlflow.exceptions import MlflowException

    from rookery.packaging.pyfunc import decode_image as decode_row
    from rookery.packaging.pyfunc import encode_image

    with pytest.raises(MlflowException, match="row 0") as err:
        decode_row(encode_image(png_claiming(30000, 30000)), 0)
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    ok, jpeg = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    assert ok
    assert decode_row(encode_image(jpeg.tobytes()), 1).shape == (8, 8, 3)
