"""Reading and writing images with one clear error for anything unreadable."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from rookery.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")

# Full-resolution survey photos are ~5000x3300; allow up to 300 MP, refuse larger (decompression bombs).
MAX_PIXELS = 300_000_000


def read_image(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """Return the image as a uint8 array (BGR for colour, as OpenCV keeps it)."""
    path = Path(path)
    return decode_image(read_bytes(path), path.name, flags)


def read_bytes(path: Path) -> bytes:
    """The file's bytes, or an InputError when there is no such file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    return path.read_bytes()


class ImageTooLarge(InputError):
    """An image whose header claims more pixels than allowed (a decompression bomb, or a mistake)."""

    status_code = 413


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the image header, read lazily (no pixel is decoded); None when PIL cannot read the
    header (OpenCV may still decode the file, or refuse it with its own message). Raises PIL's
    DecompressionBombError past twice PIL's MAX_IMAGE_PIXELS (the server raises that above its own limit)."""
    import io
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
    except Image.DecompressionBombError:
        raise
    except Exception:  # PIL raises many kinds (OSError, SyntaxError, struct.error...) for broken headers
        return None
    return int(width), int(height)


def check_pixels(data: bytes, name: str, max_pixels: int = MAX_PIXELS) -> None:
    """ImageTooLarge when the header claims more than `max_pixels`: checked before decoding, so a tiny file that
    claims 30000x30000 pixels is refused without allocating them. The one check of the CLI, the GPU engine, the
    pyfunc and the server (which passes its own limit, ROOKERY_MAX_PIXELS)."""
    from PIL import Image

    try:
        size = header_size(data)
    except Image.DecompressionBombError as e:  # past PIL's own guard; its message has the pixel count
        claimed = re.search(r"\((\d+) pixels\)", str(e))
        if claimed is None or int(claimed[1]) > max_pixels:
            pixels = f" = {int(claimed[1]):,} pixels" if claimed else ""
            raise ImageTooLarge(f"{name} has more pixels{pixels} than the limit of {max_pixels:,}") from e
        return  # within our limit, past PIL's lower one: OpenCV decodes it
    if size is not None and size[0] * size[1] > max_pixels:
        width, height = size
        raise ImageTooLarge(
            f"{name} has {width}x{height} = {width * height:,} pixels, more than the limit of {max_pixels:,}"
        )


def decode_image(data: bytes, name: str, flags: int = cv2.IMREAD_COLOR, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Encoded image bytes as a uint8 array (BGR for colour), or an InputError naming `name`; an image whose
    header claims more than `max_pixels` is refused before it is decoded."""
    if not data:
        raise InputError(f"{name} is empty")
    check_pixels(data, name, max_pixels)
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if image is None:
        raise InputError(f"{name} is not a readable image (corrupt or not an image file)")
    return image


def write_image(path: Path, image: np.ndarray, quality: int = 95) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if path.suffix.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(path.suffix, image, params)
    if not ok:
        raise InputError(f"could not encode {path.name} as {path.suffix}")
    buf.tofile(str(path))


def list_images(folder: Path) -> list[Path]:
    """The image files directly inside a folder, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def find_image(folder: Path, stem: str) -> Path | None:
    """The image in `folder` whose name without extension is `stem`, if any."""
    for suffix in IMAGE_SUFFIXES:
        for candidate in (folder / f"{stem}{suffix}", folder / f"{stem}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    return None


def sniff_image_type(data: bytes) -> str | None:
    """The image type by its magic bytes ("jpeg", "png", "tiff", "bmp", "webp": what OpenCV decodes), or None.

    Uploads are judged by content, never by the client's file name.
    """
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if data.startswith(b"BM"):
        return "bmp"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None
