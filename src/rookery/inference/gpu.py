"""The GPU path of sliced inference: photos decoded, tiled, run, filtered and merged on the GPU, in torch.

    engine = GpuEngine(TorchBackend.from_checkpoint(Path("best.pt"), "cuda:0"))
    for index, result in engine.run(options, [(jpeg_bytes, None, "photo 1"), ...]): ...

The CPU pipeline (pipeline.py) spends its time in the network; on a GPU the network is ~10x faster than
everything around it done the CPU way (decode with OpenCV, crop and pad in numpy, per-tile NMS and the
seam merge in numpy), so here all of that stays on the GPU:

- JPEG bytes are decoded by nvJPEG (`torchvision.io.decode_jpeg(device="cuda")`), 8 photos per call, which
  torchvision runs as one batch on the GPU's hardware JPEG engines where there are some (A100, H100), off
  the SMs that run the network; other formats, and a JPEG that nvJPEG refuses, are decoded by OpenCV and
  uploaded from pinned memory. Decoding runs in worker threads, each with its own CUDA stream, a group or
  two ahead of the network. Measured on an H100 (bench/gpu_throughput.py, 4992x3328 photos): nvJPEG 4 ms
  a photo in a list of 8, 11.5 ms one at a time, OpenCV 160 ms on one core (so OpenCV is a fallback only:
  its threads take the CPU that the thread feeding the GPU needs).
- Tiles are views of the photo tensor, copied straight into one fp16 batch (tiles of several photos
  share a batch); the network runs in fp16 (channels-last: the layout tensor cores want). Full batches are
  replayed from a CUDA graph captured on first use: launching yolov8n's ~250 kernels one by one from
  Python takes about as long as the GPU needs to run them, and that CPU time is what the post-processing
  needs (H100: 55 photos/s eager, 83 with the graph).
- The raw head output is decoded on a second stream (confidence filter, `torchvision.ops.batched_nms`
  per tile and class); two batches are in flight, so the post-processing of batch k overlaps the
  network on batches k + 1 and k + 2.
- The seam merge reproduces merge.py's "nms" rule exactly (IoU, or IoS when a box is cut by an inner
  tile edge; whole boxes rank first) with a dense pairwise matrix and a fixed-point iteration of greedy
  suppression; "greedy" merging and photos with more than GPU_MERGE_MAX boxes use merge.py on the CPU.

The same code runs with device "cpu" in float32 (that is how its logic is tested against the numpy
pipeline on a machine without a GPU). Results are the CPU path's types: Boxes in photo pixels.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import logging
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rookery.data.tiling import Tile, ignored_fractions, tile_grid
from rookery.errors import InputError, RookeryError
from rookery.imaging import decode_image, read_bytes
from rookery.inference.backends import TorchBackend
from rookery.inference.decode import PAD_VALUE, padded_size
from rookery.inference.merge import CUT_MARGIN, drop_ignored, merge_detections
from rookery.inference.options import PredictOptions
from rookery.inference.pipeline import ImageInput, MaskInput, _Skip, load_photo
from rookery.types import Boxes, Skipped

log = logging.getLogger(__name__)

GPU_MERGE_MAX = 4096  # boxes per photo merged on the GPU (a dense n x n matrix); more go to merge.py
JPEG_MAGIC = b"\xff\xd8\xff"
PhotoInput = ImageInput | bytes


@dataclass
class _Photo:
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


@dataclass
class _Batch:
    raw: Any  # (B, 4 + nc, A) head output on the device
    event: Any  # recorded after the forward, on the compute stream (None on the CPU)
    photos: list[_Photo]
    tiles: list[Tile]


class GpuEngine:
    """Sliced inference with everything on one torch device (a CUDA GPU, or the CPU for testing)."""

    def __init__(
        self,
        backend: TorchBackend,
        half: bool | None = None,
        decode_workers: int | None = None,
        decode: str = "gpu",
        merge_on: str = "auto",
        decode_batch: int | None = None,
        cuda_graph: bool | None = None,
        depth: int = 2,
        cap: Any = None,
    ) -> None:
        """`half` (default: on CUDA) runs the network in fp16; `decode` "gpu" decodes every JPEG with nvJPEG
        (CUDA only), "cpu" with OpenCV, "auto" with nvJPEG when it is free, else OpenCV; `decode_batch`
        photos are decoded per nvJPEG call (default 8 on CUDA); `merge_on` "auto" merges seams on the device
        up to GPU_MERGE_MAX boxes, "cpu" always with merge.py; `cuda_graph` (default: on CUDA) replays full
        batches from a captured CUDA graph; `depth` batches are in flight before the oldest is post-processed."""
        import torch

        self._torch = torch
        self.device = torch.device(backend.device)
        self.cuda = self.device.type == "cuda"
        self.half = self.cuda if half is None else half
        self.dtype = torch.float16 if self.half else torch.float32
        self.class_names = backend.class_names
        self.stride = backend.stride
        self.cap = cap  # a backends.CappedBackend: its per-tile cap applies before NMS, its `hits` count cut tiles
        if decode not in ("auto", "gpu", "cpu"):
            raise ValueError(f"decode must be 'auto', 'gpu' or 'cpu', got {decode!r}")
        self.decode = decode
        self._nvjpeg = threading.Lock()
        self.merge_on = merge_on
        module = copy.deepcopy(backend.module).to(self.device)  # the backend's own module stays float32
        module = module.half() if self.half else module.float()
        if self.cuda:
            # cuDNN picks the fastest kernels for the batch shape once; tiles keep one shape.
            torch.backends.cudnn.benchmark = True
            module = module.to(memory_format=torch.channels_last)
        self.module = module.eval()
        self._lock = threading.Lock()  # Ultralytics' Detect head caches anchors per shape on the module
        self._workers = decode_workers or (2 if self.cuda else 1)
        self.decode_batch = decode_batch or (8 if self.cuda else 1)
        self.depth = max(1, depth)
        self.cuda_graph = self.cuda if cuda_graph is None else cuda_graph and self.cuda
        self._graphs: dict[tuple[int, ...], _Graph | None] = {}
        self._local = threading.local()
        self.post_stream = torch.cuda.Stream(self.device) if self.cuda else None

    # --- loading: worker threads --------------------------------------------------------------------

    def _stream_ctx(self) -> Any:
        if not self.cuda:
            return contextlib.nullcontext()
        stream = getattr(self._local, "stream", None)
        if stream is None:
            stream = self._local.stream = self._torch.cuda.Stream(self.device)
        return self._torch.cuda.stream(stream)

    def _load_group(self, group: list[tuple[int, tuple[PhotoInput, MaskInput, str]]], options: PredictOptions) -> list:
        """_Photo (or _Skip) for each (index, (item, mask, name)), in order; runs in a worker thread.
        The group's JPEGs go to nvJPEG in one call (the module docstring says why)."""
        out: list[Any] = [None] * len(group)
        data: list[bytes | None] = [None] * len(group)
        for k, (index, (item, _, name)) in enumerate(group):
            try:
                data[k] = _read(item)
            except RookeryError as e:
                out[k] = _Skip(index, Skipped(name, str(e)), e)
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
                    out[k] = _Skip(index, Skipped(name, str(e)), e)
        return out

    def _prepare(
        self, index: int, image: Any, host: Any, mask_item: MaskInput, name: str, options: PredictOptions
    ) -> _Photo:
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
            event = self._torch.cuda.Event()
            event.record()
        return _Photo(index, name, image, (host, event), mask, tiles, todo=len(tiles))

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

    # --- the run: main thread -----------------------------------------------------------------------

    def run(
        self, options: PredictOptions, items: Iterable[tuple[PhotoInput, MaskInput, str]]
    ) -> Iterator[tuple[int, Boxes | _Skip]]:
        """(index, Boxes) per photo in input order, or (index, _Skip) for a photo that could not be read."""
        torch = self._torch
        ahead: deque[Future] = deque()  # groups of photos being read and decoded
        pending: deque[_Photo | _Skip] = deque()  # photos in input order, until their boxes are merged
        rows: list[tuple[_Photo, Tile]] = []
        in_flight: deque[_Batch] = deque()
        with ThreadPoolExecutor(self._workers, thread_name_prefix="rookery-gpu-load") as pool, torch.inference_mode():
            source = enumerate(items)
            while True:
                while len(ahead) <= self._workers:
                    group = list(itertools.islice(source, self.decode_batch))
                    if not group:
                        break
                    ahead.append(pool.submit(self._load_group, group, options))
                if not ahead:
                    break
                for photo in ahead.popleft().result():
                    pending.append(photo)
                    if isinstance(photo, _Photo):
                        if self.cuda:
                            photo.image.record_stream(torch.cuda.current_stream(self.device))
                            torch.cuda.current_stream(self.device).wait_event(photo.host[1])
                        if photo.todo == 0:
                            self._finish(photo, options)
                        for tile in photo.tiles:
                            rows.append((photo, tile))
                            if len(rows) == options.batch:
                                self._launch(rows, options, in_flight)
                                rows = []
                    yield from _ready(pending)
            if rows:
                self._launch(rows, options, in_flight)
            while in_flight:
                self._post(in_flight.popleft(), options)
            yield from _ready(pending)

    def _launch(self, rows: list[tuple[_Photo, Tile]], options: PredictOptions, in_flight: deque[_Batch]) -> None:
        """Queue the forward of this batch, then post-process the oldest ones while the GPU runs the rest."""
        in_flight.append(self._forward(rows, options))
        while len(in_flight) > self.depth:
            self._post(in_flight.popleft(), options)

    def _forward(self, rows: list[tuple[_Photo, Tile]], options: PredictOptions) -> _Batch:
        torch = self._torch
        scale = options.scale
        crops = [p.image[:, t.y0 : t.y1, t.x0 : t.x1] for p, t in rows]
        if scale != 1.0:
            crops = [_resize(c, scale) for c in crops]
        h, w = padded_size([(int(c.shape[1]), int(c.shape[2])) for c in crops], self.stride)
        x = torch.full((len(crops), 3, h, w), PAD_VALUE, dtype=torch.uint8, device=self.device)
        for i, crop in enumerate(crops):
            x[i, :, : crop.shape[1], : crop.shape[2]] = crop
        x = x.to(self.dtype).div_(255.0)
        if self.cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._lock:
            raw = self._run_network(x, full=len(rows) == options.batch)
        event = None
        if self.cuda:
            event = torch.cuda.Event()
            event.record()
            raw.record_stream(self.post_stream)
        return _Batch(raw, event, [p for p, _ in rows], [t for _, t in rows])

    def _run_network(self, x: Any, full: bool) -> Any:
        """The raw head output for a batch: replayed from a CUDA graph for full batches, else eager.

        A yolov8n forward is ~250 small kernels; launching them one by one from Python costs about as much
        CPU time as the GPU spends running them, time the main thread needs for post-processing."""
        graph = self._graph(x) if full and self.cuda_graph else None
        if graph is None:
            return _head(self.module(x))
        graph.input.copy_(x)
        graph.graph.replay()
        return graph.output.clone()  # the graph overwrites its output at the next replay

    def _graph(self, x: Any) -> _Graph | None:
        """The captured graph for x's shape (captured on first use; None when capture fails)."""
        key = tuple(x.shape)
        if key not in self._graphs:
            torch = self._torch
            try:
                # its own copy of the module: Ultralytics' Detect head replaces its anchor tensors when it
                # sees another shape, which would free memory that the captured graph reads
                module = copy.deepcopy(self.module)
                static = x.clone()
                side = torch.cuda.Stream(self.device)
                side.wait_stream(torch.cuda.current_stream(self.device))
                with torch.cuda.stream(side):
                    for _ in range(3):  # cuDNN's autotuning and lazy allocations happen before the capture
                        module(static)
                torch.cuda.current_stream(self.device).wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    output = _head(module(static))
                self._graphs[key] = _Graph(graph, static, output, module)
            except Exception as e:  # an exotic module or driver: run eagerly, just as correct
                log.warning("CUDA graph capture failed for batch shape %s (%s); running the network eagerly", key, e)
                self._graphs[key] = None
        return self._graphs[key]

    def _post(self, batch: _Batch, options: PredictOptions) -> None:
        """Decode a batch on the post-processing stream and hand each photo its detections."""
        torch = self._torch
        ctx = torch.cuda.stream(self.post_stream) if self.cuda else contextlib.nullcontext()
        with ctx:
            if self.post_stream is not None:
                self.post_stream.wait_event(batch.event)
            dev = self.device
            tiles, photos = batch.tiles, batch.photos
            wh = torch.tensor([[t.width, t.height] for t in tiles], dtype=torch.float32, device=dev)
            t, xyxy, cls, score = decode_torch(batch.raw, wh * options.scale, len(self.class_names), options, self.cap)
            if options.scale != 1.0:  # network pixels -> photo pixels
                xyxy = xyxy / options.scale
            info = torch.tensor(
                [
                    [tl.x0, tl.y0, tl.x0 > 0, tl.y0 > 0, tl.x1 < p.width, tl.y1 < p.height]
                    for tl, p in zip(tiles, photos, strict=True)
                ],
                dtype=torch.float32,
                device=dev,
            ).reshape(-1, 6)
            cut = cut_flags_torch(xyxy, wh[t], info[t, 2:] > 0.5)
            xyxy = xyxy + (info[t, :2] - 0.5).repeat(1, 2)  # tile pixel edges -> photo pixel centres
            owner = [id(p) for p in photos]
            for photo in {id(p): p for p in photos}.values():
                mine = [i for i, o in enumerate(owner) if o == id(photo)]
                sel = (t >= mine[0]) & (t <= mine[-1])  # a photo's rows of a batch are consecutive
                photo.parts.append((xyxy[sel], cls[sel], score[sel], cut[sel]))
                photo.todo -= len(mine)
                if photo.todo == 0:
                    self._finish(photo, options)

    def _finish(self, photo: _Photo, options: PredictOptions) -> None:
        torch = self._torch
        ctx = torch.cuda.stream(self.post_stream) if self.cuda else contextlib.nullcontext()
        with ctx:
            if photo.parts:
                xyxy, cls, score, cut = (torch.cat(p) for p in zip(*photo.parts, strict=True))
            else:
                xyxy = torch.zeros((0, 4), device=self.device)
                cls = torch.zeros(0, dtype=torch.int64, device=self.device)
                score, cut = torch.zeros(0, device=self.device), torch.zeros(0, dtype=torch.bool, device=self.device)
            n = len(xyxy)
            if len(photo.tiles) <= 1:  # one tile: NMS already ran on it (as the CPU pipeline does)
                order = torch.argsort(-score, stable=True)
                merged = _to_boxes(xyxy[order], cls[order], score[order])
            elif options.merge == "nms" and self.merge_on != "cpu" and n <= GPU_MERGE_MAX:
                keep = merge_nms_torch(xyxy, cls, score, cut, options.iou)
                merged = _to_boxes(xyxy[keep], cls[keep], score[keep])
            else:
                merged = merge_detections(
                    xyxy.double().cpu().numpy(), cls.cpu().numpy(), score.double().cpu().numpy(),
                    cut.cpu().numpy(), options.merge, options.iou,
                )  # fmt: skip
        photo.result = drop_ignored(merged, photo.mask)
        photo.parts.clear()
        photo.image = photo.host = None  # free the device copy of the photo


@dataclass
class _Graph:
    graph: Any  # torch.cuda.CUDAGraph
    input: Any  # the static input tensor the graph reads
    output: Any  # the static head output it writes
    module: Any  # the module copy it was captured from (kept alive with it)


def _head(out: Any) -> Any:
    return out[0] if isinstance(out, list | tuple) else out


def _read(item: PhotoInput) -> bytes | None:
    """The encoded bytes of a path or bytes input; None for an array (decoded already)."""
    if isinstance(item, bytes | bytearray | memoryview):
        return bytes(item)
    if isinstance(item, str | Path):
        return read_bytes(Path(item))
    return None


def _ready(pending: deque) -> Iterator[tuple[int, Boxes | _Skip]]:
    while pending and (isinstance(pending[0], _Skip) or pending[0].result is not None):
        done = pending.popleft()
        yield done.index, done if isinstance(done, _Skip) else done.result


def _resize(crop: Any, scale: float) -> Any:
    """A (3, h, w) uint8 crop resized by `scale` (antialiased when shrinking, like OpenCV's INTER_AREA)."""
    import torch.nn.functional as F

    h, w = int(crop.shape[1]), int(crop.shape[2])
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    out = F.interpolate(crop[None].float(), size=size, mode="bilinear", antialias=scale < 1, align_corners=False)
    return out[0].round_().clamp_(0, 255).to(crop.dtype)


def _to_boxes(xyxy: Any, cls: Any, score: Any) -> Boxes:
    return Boxes(xyxy.double().cpu().numpy(), cls.cpu().numpy().astype(np.int64), score.double().cpu().numpy())


def decode_torch(
    raw: Any, wh: Any, num_classes: int, options: PredictOptions, cap: Any = None
) -> tuple[Any, Any, Any, Any]:
    """decode.decode in torch: (tile, xyxy, cls, score) after the confidence filter, per tile-and-class NMS
    (torchvision's batched_nms, IoU > iou suppresses) and clipping to each tile's own pixels. With `cap` (a
    backends.CappedBackend), a tile keeps at most cap.per_tile candidates, the best scoring, as on the CPU."""
    import torch
    from torchvision.ops import batched_nms

    if raw.ndim != 3 or raw.shape[0] != len(wh) or raw.shape[1] != 4 + num_classes:
        raise InputError(
            f"the network returned shape {tuple(raw.shape)}, expected ({len(wh)}, {4 + num_classes}, anchors): "
            "only YOLO detection heads (v8/11 style, not end-to-end) are supported"
        )
    best, cls = raw[:, 4:, :].max(dim=1)  # (N, A): filter before touching boxes, as most anchors are background
    if cap is not None and best.shape[1] > cap.per_tile:
        over = (best > options.conf).sum(dim=1) > cap.per_tile
        if bool(over.any()):
            kth = best[over].topk(cap.per_tile, dim=1).values[:, -1:]
            best[over] = torch.where(best[over] < kth, torch.zeros_like(best[over]), best[over])
            cap.hits += int(over.sum())
    t, a = torch.nonzero(best > options.conf, as_tuple=True)
    score = best[t, a].float()
    cls = cls[t, a] if num_classes > 1 else torch.zeros_like(t)
    cxcywh = raw[t, :4, a].float()  # (K, 4)
    half = cxcywh[:, 2:] / 2
    xyxy = torch.cat([cxcywh[:, :2] - half, cxcywh[:, :2] + half], dim=1)
    keep = batched_nms(xyxy, score, t * num_classes + cls, options.iou)
    keep = keep.sort().values  # the anchors' order, as the CPU path has them before its merge
    t, cls, score, xyxy = t[keep], cls[keep], score[keep], xyxy[keep]
    xyxy = torch.minimum(xyxy.clamp(min=0.0), wh[t].repeat(1, 2))  # clipped after NMS, as Ultralytics does
    valid = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    return t[valid], xyxy[valid], cls[valid].long(), score[valid]


def cut_flags_torch(xyxy: Any, tile_wh: Any, inner: Any, margin: float = CUT_MARGIN) -> Any:
    """merge.cut_flags in torch: which boxes reach an inner edge of their tile."""
    import torch

    near = torch.stack(
        [
            xyxy[:, 0] <= margin,
            xyxy[:, 1] <= margin,
            xyxy[:, 2] >= tile_wh[:, 0] - margin,
            xyxy[:, 3] >= tile_wh[:, 1] - margin,
        ],
        dim=1,
    )
    return (near & inner).any(dim=1)


def merge_nms_torch(xyxy: Any, cls: Any, score: Any, cut: Any, thr: float, max_rounds: int = 200) -> Any:
    """Indices kept by merge.py's "nms" rule, in its rank order (whole boxes first, then by score).

    Greedy suppression "box j is kept unless a kept box ranked above it matches it" is solved by iterating
    keep = not any(match & keep) over all boxes at once from keep = all: on a DAG the recursion has one
    solution, and each round fixes at least the next rank of the dependency chain, so a few rounds of
    n x n matrix work (no per-box loop) reach it; a no-change round proves it is reached.
    """
    import torch

    n = len(xyxy)
    if n == 0:
        return torch.zeros(0, dtype=torch.int64, device=xyxy.device)
    by_score = torch.argsort(-score, stable=True)
    order = by_score[torch.argsort(cut[by_score].to(torch.int8), stable=True)]
    b, c, k = xyxy[order].double(), cls[order], cut[order]
    iw = (torch.minimum(b[:, None, 2], b[None, :, 2]) - torch.maximum(b[:, None, 0], b[None, :, 0])).clamp_(min=0)
    ih = (torch.minimum(b[:, None, 3], b[None, :, 3]) - torch.maximum(b[:, None, 1], b[None, :, 1])).clamp_(min=0)
    inter = iw * ih
    del iw, ih
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    iou = inter / (area[:, None] + area[None, :] - inter).clamp_(min=1e-12)
    ios = inter / torch.minimum(area[:, None], area[None, :]).clamp_(min=1e-12)
    match = (iou >= thr) | ((k[:, None] | k[None, :]) & (ios >= thr))
    match &= (c[:, None] == c[None, :]) & (inter > 0)
    match = torch.triu(match, diagonal=1)  # row i (higher rank) may suppress column j
    del inter, iou, ios
    m = match.to(torch.float16 if xyxy.is_cuda else torch.float32)  # counts of suppressors, via matmul
    keep = torch.ones(n, dtype=torch.bool, device=xyxy.device)
    for _ in range(max_rounds):
        new = (keep.to(m.dtype) @ m) == 0
        if torch.equal(new, keep):
            return order[keep]
        keep = new
    # a chain longer than max_rounds (never seen): finish one box at a time on the CPU
    mc = match.cpu().numpy()
    kept = np.ones(n, dtype=bool)
    for j in range(n):
        kept[j] = not np.any(mc[:j, j] & kept[:j])
    return order[torch.from_numpy(kept).to(xyxy.device)]
