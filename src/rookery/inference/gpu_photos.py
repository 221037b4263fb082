"""Photos onto the device for the GPU engine (gpu.py): read, decoded and tiled in worker threads.

JPEGs are decoded on the GPU a group per call. Where NVIDIA's nvImageCodec is installed (the `gpu` extra) it
decodes them on the GPU's hardware JPEG engines (A100, H100/H200: NVJPG units beside the SMs), so decoding takes
almost nothing from the network; measured on an H200, 4992x3328 JPEGs in groups of 8: 3.5 ms a photo against
5.6 ms for torchvision's nvJPEG, which runs its batched decode as CUDA kernels on the SMs the network needs
(`torchvision.io.decode_jpeg(device="cuda")` is the fallback without nvImageCodec, or on a GPU without the
engines). Other formats, and a JPEG both refuse, are decoded by OpenCV and uploaded from pinned memory. Each worker
thread has its own CUDA stream, so uploads and decodes overlap the network (gpu.py's docstring has the
measurements).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from rookery.data.tiling import Tile, ignored_fractions, tile_grid
from rookery.errors import RookeryError
from rookery.imaging import decode_image, read_bytes
from rookery.inference.options import PredictOptions
from rookery.inference.pipeline import ImageInput, MaskInput, SkippedPhoto, load_photo
from rookery.types import Boxes, Skipped

log = logging.getLogger(__name__)

JPEG_MAGIC = b"\xff\xd8\xff"
PhotoInput = ImageInput | bytes


@dataclass
class GpuPhoto:
    """A photo on the device, its tiles, and the tile results gathered until it is merged."""

    index: int
    name: str
    image: Any  # (3, H, W) uint8 RGB tensor on the device (a view of the BGR upload for arrays)
    host: Any  # the pinned host copy, kept alive until its upload is done
    mask: np.ndarray | None
    tiles: list[Tile]
    todo: int
    parts: list[tuple[Any, ...]] = field(default_factory=list)
    result: Boxes | None = None

    @property
    def width(self) -> int:
        return int(self.image.shape[2])

    @property
    def height(self) -> int:
        return int(self.image.shape[1])


class PhotoLoader:
    """Turns (index, (item, mask, name)) groups into GpuPhotos (or SkippedPhotos) on `device`; thread-safe."""

    def __init__(self, device: Any, decode: str = "gpu") -> None:
        """`decode` "gpu" decodes every JPEG with nvJPEG (CUDA only), "cpu" with OpenCV, "auto" with nvJPEG
        when it is free, else OpenCV."""
        import torch

        if decode not in ("auto", "gpu", "cpu"):
            raise ValueError(f"decode must be 'auto', 'gpu' or 'cpu', got {decode!r}")
        self._torch = torch
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.decode = decode
        self._nvjpeg = threading.Lock()
        self._local = threading.local()
        self._hw: tuple[Any, Any] | None = _hardware_decoder(self.device) if self.cuda and decode != "cpu" else None

    def _stream_ctx(self) -> Any:
        if not self.cuda:
            return contextlib.nullcontext()
        stream = getattr(self._local, "stream", None)
        if stream is None:
            stream = self._local.stream = self._torch.cuda.Stream(self.device)  # type: ignore[no-untyped-call]  # torch
        return self._torch.cuda.stream(stream)

    def load_group(
        self, group: list[tuple[int, tuple[PhotoInput, MaskInput, str]]], options: PredictOptions
    ) -> list[GpuPhoto | SkippedPhoto]:
        """GpuPhoto (or SkippedPhoto) for each (index, (item, mask, name)), in order; runs in a worker thread.
        The group's JPEGs go to nvJPEG in one call (the module docstring says why)."""
        out: list[Any] = [None] * len(group)
        data: list[bytes | None] = [None] * len(group)
        for k, (index, (item, _, name)) in enumerate(group):
            try:
                data[k] = read_input(item)
            except RookeryError as e:
                out[k] = SkippedPhoto(index, Skipped(name, str(e)), e)
        with self._stream_ctx():
            images = self._nvjpeg_many([d if out[k] is None else None for k, d in enumerate(data)])
            for k, (index, (item, mask_item, name)) in enumerate(group):
                if out[k] is not None:
                    continue
                try:
                    if images[k] is not None:
                        image, host = images[k], None
                    else:
                        image, host = self._decode_cpu(data[k] if data[k] is not None else item, name)
                    out[k] = self._prepare(index, image, host, mask_item, name, options)
                except RookeryError as e:
                    out[k] = SkippedPhoto(index, Skipped(name, str(e)), e)
        return out

    def _prepare(
        self, index: int, image: Any, host: Any, mask_item: MaskInput, name: str, options: PredictOptions
    ) -> GpuPhoto:
        """A decoded photo on the device with its tile grid (and mask), and an event for its upload."""
        h, w = int(image.shape[1]), int(image.shape[2])
        mask = None
        if mask_item is not None:  # load_photo checks the mask; a stride-0 view stands in for the photo
            _, mask = load_photo(np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (h, w, 3)), mask_item, name)
        tiles = tile_grid(w, h, options.tile, options.overlap)
        if mask is not None:  # a tile wholly in the ignore region cannot hold a counted object
            tiles = [t for t, f in zip(tiles, ignored_fractions(mask, tiles), strict=True) if f < 1.0]
        event = None
        if self.cuda:
            event = self._torch.cuda.Event()  # type: ignore[no-untyped-call]  # unannotated in torch
            event.record()
        return GpuPhoto(index, name, image, (host, event), mask, tiles, todo=len(tiles))

    def _nvjpeg_many(self, data: list[bytes | None]) -> list[Any]:
        """(3, H, W) uint8 RGB device tensors for the JPEGs that nvJPEG decodes; None for the rest."""
        out: list[Any] = [None] * len(data)
        jpegs = [k for k, d in enumerate(data) if d is not None and d[:3] == JPEG_MAGIC]
        if not (jpegs and self.cuda and self.decode != "cpu"):
            return out
        if not self._nvjpeg.acquire(blocking=self.decode == "gpu"):
            return out  # "auto": nvJPEG is busy, OpenCV takes these
        torch = self._torch
        from torchvision.io import ImageReadMode, decode_jpeg

        try:
            if self._hw is not None:
                for k, image in zip(jpegs, self._hw_many([data[k] or b"" for k in jpegs]), strict=True):
                    out[k] = image
                jpegs = [k for k in jpegs if out[k] is None]  # refused by the engines: nvJPEG on the SMs tries
                if not jpegs:
                    return out
            encoded = [torch.frombuffer(bytearray(data[k]), dtype=torch.uint8) for k in jpegs]  # type: ignore[arg-type]
            try:
                decoded = decode_jpeg(encoded, mode=ImageReadMode.RGB, device=self.device)
                for k, image in zip(jpegs, decoded, strict=True):
                    out[k] = image
            except RuntimeError:  # one bad JPEG fails the call: retry one by one, OpenCV takes the refused
                for k, e in zip(jpegs, encoded, strict=True):
                    with contextlib.suppress(RuntimeError):  # 12-bit, arithmetic coding, truncated...
                        out[k] = decode_jpeg(e, mode=ImageReadMode.RGB, device=self.device)
        finally:
            self._nvjpeg.release()
        return out

    def _hw_many(self, data: list[bytes]) -> list[Any]:
        """(3, H, W) uint8 RGB device tensors decoded by nvImageCodec (None where it cannot), on this thread's
        stream: the decoder orders its work before whatever is queued on that stream next."""
        assert self._hw is not None
        nv, decoder = self._hw
        stream = self._torch.cuda.current_stream(self.device).cuda_stream
        streams: list[Any] = []
        for d in data:  # one unparsable header must not send the whole group to the fallback
            try:
                streams.append(nv.CodeStream(d))
            except RuntimeError:
                streams.append(None)
        parsed = [k for k, cs in enumerate(streams) if cs is not None]
        out: list[Any] = [None] * len(data)
        try:
            images = decoder.decode([streams[k] for k in parsed], cuda_stream=stream) if parsed else []
        except RuntimeError:
            return out
        # (H, W, 3) views of nvImageCodec's buffers (torch keeps each Image alive through the interface);
        # a grey or RGBA JPEG comes back with another channel count and goes to torchvision instead.
        for k, im in zip(parsed, images, strict=True):
            if im is not None and im.shape[2] == 3:
                out[k] = self._torch.as_tensor(im, device=self.device).permute(2, 0, 1)
        return out

    def _decode_cpu(self, item: Any, name: str) -> tuple[Any, Any]:
        """(3, H, W) uint8 RGB on the device by way of OpenCV (or an array given), and its host tensor."""
        torch = self._torch
        if isinstance(item, bytes):
            item = decode_image(item, name)
        array, _ = load_photo(item, None, name)
        host = torch.from_numpy(np.ascontiguousarray(array))
        if self.cuda:  # pinned: the upload is a DMA that overlaps the network, not a staged copy
            host = host.pin_memory()
        bgr = host.to(self.device, non_blocking=True)
        return bgr.permute(2, 0, 1).flip(0), host


def _hardware_decoder(device: Any) -> tuple[Any, Any] | None:
    """(nvimgcodec module, Decoder on the hardware JPEG engines of `device`), or None when nvImageCodec is not
    installed or this GPU has no such engines (then torchvision's nvJPEG decodes on the SMs)."""
    nv = _nvimgcodec()
    if nv is None:
        return None
    index = device.index if device.index is not None else 0
    try:
        decoder = nv.Decoder(device_id=index, backends=[nv.Backend(nv.BackendKind.HW_GPU_ONLY)])
        # A GPU without the engines still gives a decoder (set up lazily) that then decodes nothing: try one.
        ok, probe = cv2.imencode(".jpg", np.full((16, 16, 3), 127, np.uint8))
        works = ok and decoder.decode(nv.CodeStream(probe.tobytes())) is not None
    except RuntimeError:
        works = False
    if not works:  # no NVJPG engines (consumer GPUs, V100...): nvJPEG on the SMs is as good there
        log.info("this GPU has no hardware JPEG decoder that nvImageCodec can use; JPEGs go to nvJPEG")
        return None
    return nv, decoder


_import_lock = threading.Lock()
_NOT_TRIED = object()
_nv_module: Any = _NOT_TRIED


def _nvimgcodec() -> Any:
    """The nvImageCodec module, or None when it is not installed; imported once per process, quietly.

    Its import loads every codec plugin and prints from C, for each library it lacks, "Failed to load nvjpeg2k
    library! Please install nvJPEG2000 ..." (and nvTIFF): advice that would send users to install 55 MB of
    libraries for codecs rookery never asks it for (it decodes JPEGs only). So that one import runs with the
    process's stderr (file descriptor 2) on /dev/null, under a lock (fd 2 is process-wide), and its log is set to
    errors only (a corrupt JPEG is reported by rookery as a skipped photo, not by a codec warning)."""
    global _nv_module
    with _import_lock:
        if _nv_module is _NOT_TRIED:
            os.environ.setdefault("PYNVIMGCODEC_VERBOSITY", "1")
            try:
                with _quiet_stderr():
                    from nvidia import nvimgcodec
                _nv_module = nvimgcodec
            except ImportError:
                _nv_module = None
        return _nv_module


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """File descriptor 2 on /dev/null for the duration (as it was where it cannot be redirected)."""
    if sys.stderr is not None:
        sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 at all (a daemon): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def read_input(item: PhotoInput) -> bytes | None:
    """The encoded bytes of a path or bytes input; None for an array (decoded already)."""
    if isinstance(item, bytes | bytearray | memoryview):
        return bytes(item)
    if isinstance(item, str | Path):
        return read_bytes(Path(item))
    return None
