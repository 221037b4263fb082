"""Uploads, checked in order of cost: request size, then type by content, then pixels from the header, then decode.

Every failure is an UploadError whose message is one sentence naming the file, with the HTTP status it maps to
(400 unreadable, 413 too large, 415 not an image). The file type is judged by its first bytes, never by the
client's name or Content-Type. The pixel count is read from the header (PIL opens lazily) before OpenCV decodes,
so a decompression bomb (a small PNG that claims 30000x30000 pixels) is refused without allocating its pixels.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.exceptions import HTTPException

from rookery.errors import InputError
from rookery.imaging import sniff_image_type

IMAGE_TYPES = "JPEG, PNG, TIFF, BMP or WebP"
_NAME_LIMIT = 120  # characters of a client's file name quoted in a message


class UploadError(InputError):
    """A bad upload; `status_code` is the HTTP status the server answers with."""

    status_code = 400
    kind = "bad_image"  # the label of rookery_errors_total
    counted = False  # already counted in rookery_errors_total (per file) when raised for a whole request


class UploadTooLarge(UploadError):
    status_code = 413
    kind = "too_large"


class NotAnImage(UploadError):
    status_code = 415
    kind = "unsupported_type"


def display_name(name: str | None) -> str:
    """The last part of a client's file name, shortened, for messages (never used as a path)."""
    text = str(name or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    text = "".join(c for c in text if c.isprintable())
    if len(text) > _NAME_LIMIT:
        text = text[: _NAME_LIMIT - 1] + "…"
    return text or "the upload"


def megabytes(n_bytes: float) -> str:
    return f"{n_bytes / 1_000_000:.3g} MB"


@dataclass(frozen=True)
class DecodedImage:
    image: np.ndarray  # (H, W, 3) uint8 BGR, EXIF orientation applied (as `rookery predict` reads photos)
    kind: str  # jpeg, png, tiff, bmp, webp
    width: int
    height: int
    sha256: str
    decode_ms: float


def header_size(name: str, data: bytes, max_pixels: int) -> tuple[int, int]:
    """(width, height) from the image header, refusing more than `max_pixels` before anything is decoded (the same
    header reading as rookery.imaging.check_pixels, with the server's statuses and its setting in the message)."""
    from PIL import Image

    from rookery.imaging import header_size as read_header

    try:
        size = read_header(data)
    except Image.DecompressionBombError as e:  # PIL's own guard (MAX_IMAGE_PIXELS, set by the app)
        raise UploadTooLarge(f"{name} has more pixels than the limit of {max_pixels:,} (ROOKERY_MAX_PIXELS)") from e
    if size is None:
        raise UploadError(f"{name} is not a readable image (its header is corrupt or truncated)")
    width, height = size
    if width < 1 or height < 1:
        raise UploadError(f"{name} is not a readable image (it has no pixels)")
    if width * height > max_pixels:
        raise UploadTooLarge(
            f"{name} has {width}x{height} = {width * height:,} pixels, more than the limit of {max_pixels:,} "
            "(ROOKERY_MAX_PIXELS)"
        )
    return width, height


def decode_upload(file_name: str | None, data: bytes, *, max_bytes: int, max_pixels: int) -> DecodedImage:
    """Check and decode one uploaded image; raises an UploadError with one sentence naming the file."""
    import cv2

    name = display_name(file_name)
    started = time.perf_counter()
    if not data:
        raise UploadError(f"{name} is empty")
    if len(data) > max_bytes:
        raise UploadTooLarge(f"{name} is {megabytes(len(data))}, more than the limit of {megabytes(max_bytes)}")
    kind = sniff_image_type(data)
    if kind is None:
        raise NotAnImage(f"{name} is not a {IMAGE_TYPES} image (judged by its content, not its name)")
    header_size(name, data, max_pixels)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        raise UploadError(f"{name} is not a readable image (corrupt or truncated {kind.upper()})")
    height, width = image.shape[:2]
    return DecodedImage(
        image=image,
        kind=kind,
        width=int(width),
        height=int(height),
        sha256=hashlib.sha256(data).hexdigest(),
        decode_ms=(time.perf_counter() - started) * 1000.0,
    )


def max_upload_bytes(max_upload_mb: float) -> int:
    return max(1, math.floor(max_upload_mb * 1_000_000))


# --- the request body limit (ASGI middleware) ---------------------------------------------------------------


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a body without (or with a false) Content-Length grows past the limit.

    An HTTPException, so that FastAPI's form parsing passes it on as it is (it turns other errors into a 400).
    """

    def __init__(self, detail: str) -> None:
        super().__init__(status_code=413, detail=detail)


class BodySizeLimit:
    """Refuse request bodies over the limit with 413 JSON, without reading them into memory.

    A declared Content-Length over the limit is answered at once, before the body is read; a body that streams
    without one is counted as it arrives and cut off at the limit. Routes then read at most `limit` bytes.
    /invocations carries images as base64 text (4/3 of their size), so its limit is larger by that much.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def limit_for(self, path: str) -> int:
        return math.ceil(self.max_bytes * 4 / 3) + 64_000 if path.startswith("/invocations") else self.max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        detail = f"the request is larger than the upload limit of {megabytes(limit)} (ROOKERY_MAX_UPLOAD_MB)"
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _send_json(send, 413, detail)
            return
        received = 0
        started = False

        async def limited_receive() -> dict[str, Any]:
            nonlocal received
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(detail)
            return message

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as e:
            if started:
                raise
            await _send_json(send, 413, e.detail)


def _content_length(scope: dict[str, Any]) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_json(send: Any, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
