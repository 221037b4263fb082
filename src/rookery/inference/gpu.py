"""The GPU path of sliced inference: photos decoded, tiled, run, filtered and merged on the GPU, in torch.

    engine = GpuEngine(TorchBackend.from_checkpoint(Path("best.pt"), "cuda:0"))
    for index, result in engine.run(options, [(jpeg_bytes, None, "photo 1"), ...]): ...

The CPU pipeline (pipeline.py) spends its time in the network; on a GPU the network is ~10x faster than
everything around it done the CPU way (decode with OpenCV, crop and pad in numpy, per-tile NMS and the
seam merge in numpy), so here all of that stays on the GPU:

- JPEG bytes are decoded on the GPU 8 photos per call (gpu_photos.py): on the hardware JPEG engines through
  nvImageCodec where it is installed (the `gpu` extra; A100, H100/H200), else by torchvision's nvJPEG, whose
  batched decode runs as CUDA kernels on the SMs the network needs (an H200: 4.5 ms a photo in a list of 8,
  12 ms one at a time; the engine ran 8 % more photos a second with the hardware engines). Other formats, and
  a JPEG both refuse, are decoded by OpenCV and uploaded from pinned memory. Decoding runs in worker threads,
  each with its own CUDA stream, a group or two ahead of the network. OpenCV takes 160-180 ms a photo on one
  core, so it is a fallback only: its threads take the CPU that the thread feeding the GPU needs.
- Tiles are views of the photo tensor, copied straight into one pixel-major batch (tiles of several photos
  share a batch) that is already the channels-last layout tensor cores want; the network runs in fp16.
  Full batches are replayed from a CUDA graph captured on first use: launching yolov8n's ~250 kernels one
  by one from Python takes about as long as the GPU needs to run them, and that CPU time is what the
  post-processing needs (H100: 55 photos/s eager, 83 with the graph).
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
from dataclasses import dataclass
from typing import Any

import numpy as np

from rookery.data.tiling import Tile
from rookery.inference.backends import TorchBackend
from rookery.inference.decode import PAD_VALUE, decode_torch, padded_size
from rookery.inference.gpu_photos import GpuPhoto, PhotoInput, PhotoLoader
from rookery.inference.merge import cut_flags_torch, drop_ignored, merge_detections, merge_nms_torch
from rookery.inference.options import PredictOptions
from rookery.inference.pipeline import MaskInput, SkippedPhoto
from rookery.types import Boxes

log = logging.getLogger(__name__)

GPU_MERGE_MAX = 4096  # boxes per photo merged on the GPU (a dense n x n matrix); more go to merge.py


@dataclass
class _Batch:
    raw: Any  # (B, 4 + nc, A) head output on the device
    event: Any  # recorded after the forward, on the compute stream (None on the CPU)
    photos: list[GpuPhoto]
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
        self.loader = PhotoLoader(self.device, decode)
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
        # torch.cuda.Stream is unannotated
        self.post_stream = torch.cuda.Stream(self.device) if self.cuda else None  # type: ignore[no-untyped-call]

    # --- the run: main thread -----------------------------------------------------------------------

    def run(
        self, options: PredictOptions, items: Iterable[tuple[PhotoInput, MaskInput, str]]
    ) -> Iterator[tuple[int, Boxes | SkippedPhoto]]:
        """(index, Boxes) per photo in input order, or (index, SkippedPhoto) for a photo that could not be read."""
        torch = self._torch
        ahead: deque[Future[list[GpuPhoto | SkippedPhoto]]] = deque()  # groups of photos being read and decoded
        pending: deque[GpuPhoto | SkippedPhoto] = deque()  # photos in input order, until their boxes are merged
        rows: list[tuple[GpuPhoto, Tile]] = []
        in_flight: deque[_Batch] = deque()
        with (
            ThreadPoolExecutor(self._workers, thread_name_prefix="rookery-gpu-load") as pool,
            torch.inference_mode(),
            self._settled(),
        ):
            source = enumerate(items)
            while True:
                while len(ahead) <= self._workers:
                    group = list(itertools.islice(source, self.decode_batch))
                    if not group:
                        break
                    ahead.append(pool.submit(self.loader.load_group, group, options))
                if not ahead:
                    break
                for photo in ahead.popleft().result():
                    pending.append(photo)
                    if isinstance(photo, GpuPhoto):
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

    @contextlib.contextmanager
    def _settled(self) -> Iterator[None]:
        """On the way out, however the run ends, wait for the work queued on the device: photos decoded by
        nvImageCodec live in its memory, which it frees on its own when a photo is dropped, and torch's
        record_stream cannot hold memory it did not allocate, so a consumer that stops early (or an error)
        must not free a photo that queued tile copies still read."""
        try:
            yield
        finally:
            if self.cuda:
                self._torch.cuda.current_stream(self.device).synchronize()

    def _launch(self, rows: list[tuple[GpuPhoto, Tile]], options: PredictOptions, in_flight: deque[_Batch]) -> None:
        """Queue the forward of this batch, then post-process the oldest ones while the GPU runs the rest."""
        in_flight.append(self._forward(rows, options))
        while len(in_flight) > self.depth:
            self._post(in_flight.popleft(), options)

    def _forward(self, rows: list[tuple[GpuPhoto, Tile]], options: PredictOptions) -> _Batch:
        torch = self._torch
        groups = self._tile_groups(rows, options.scale)
        sizes = [(int(g.shape[1]), int(g.shape[2])) for g in groups]
        h, w = padded_size(sizes, self.stride)
        if all(size == (h, w) for size in sizes):  # every tile whole: the gathers are the batch
            x = groups[0] if len(groups) == 1 else torch.cat(groups)
        else:  # short tiles (a photo smaller than a tile) padded with the training grey
            x = torch.full((len(rows), h, w, 3), PAD_VALUE, dtype=torch.uint8, device=self.device)
            i = 0
            for g in groups:
                x[i : i + len(g), : g.shape[1], : g.shape[2]] = g
                i += len(g)
        x = x.permute(0, 3, 1, 2).to(self.dtype).div_(255.0)  # keeps the channels-last strides
        if not self.cuda:  # the CPU (float32, tests) runs the usual contiguous layout
            x = x.contiguous()
        with self._lock:
            raw = self._run_network(x, full=len(rows) == options.batch)
        event = None
        if self.cuda:
            event = torch.cuda.Event()
            event.record()
            raw.record_stream(self.post_stream)
        return _Batch(raw, event, [p for p, _ in rows], [t for _, t in rows])

    def _tile_groups(self, rows: list[tuple[GpuPhoto, Tile]], scale: float) -> list[Any]:
        """The rows' tiles as (n, h, w, 3) uint8 tensors, one per run of rows from one photo.

        Pixel-major (N, h, w, 3) because a decoded photo is pixel-major too (the hardware JPEG engines and
        OpenCV write HWC): the (N, 3, h, w) view of the batch is then already the channels-last layout the
        network runs in. A photo's tiles all have one size (tile_grid), so its run of tiles is one gather with
        broadcast row and column indices: one kernel instead of a slice and a copy launched from Python per
        tile. Built channel-major one tile at a time, the batch's copies gathered bytes 3 apart and then
        needed a second, channels-last copy: ~9 % of the engine's GPU time on an H200; the launches were main
        thread time, which bounds the engine on a slow host CPU."""
        torch = self._torch
        if scale != 1.0:  # resized tiles (a model trained at another ground resolution): one at a time
            return [_resize(p.image[:, t.y0 : t.y1, t.x0 : t.x1], scale).permute(1, 2, 0)[None] for p, t in rows]
        groups = []
        for _, run in itertools.groupby(rows, key=lambda row: id(row[0])):
            run_rows = list(run)
            photo, first = run_rows[0]
            offsets = torch.tensor([[t.y0, t.x0] for _, t in run_rows], dtype=torch.int64)
            if self.cuda:  # from pinned memory: a copy from pageable memory would wait for the batches in flight
                offsets = offsets.pin_memory().to(self.device, non_blocking=True)
            ys = offsets[:, :1] + torch.arange(first.height, device=self.device)  # (n, h)
            xs = offsets[:, 1:] + torch.arange(first.width, device=self.device)  # (n, w)
            groups.append(photo.image.permute(1, 2, 0)[ys[:, :, None], xs[:, None, :]])  # (n, h, w, 3)
        return groups

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

    def _finish(self, photo: GpuPhoto, options: PredictOptions) -> None:
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


def _ready(pending: deque[GpuPhoto | SkippedPhoto]) -> Iterator[tuple[int, Boxes | SkippedPhoto]]:
    while pending and (isinstance(pending[0], SkippedPhoto) or pending[0].result is not None):
        done = pending.popleft()
        yield done.index, done if isinstance(done, SkippedPhoto) else done.result  # type: ignore[misc]


def _resize(crop: Any, scale: float) -> Any:
    """A (3, h, w) uint8 crop resized by `scale` (antialiased when shrinking, like OpenCV's INTER_AREA)."""
    import torch.nn.functional as F

    h, w = int(crop.shape[1]), int(crop.shape[2])
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    out = F.interpolate(crop[None].float(), size=size, mode="bilinear", antialias=scale < 1, align_corners=False)
    return out[0].round_().clamp_(0, 255).to(crop.dtype)


def _to_boxes(xyxy: Any, cls: Any, score: Any) -> Boxes:
    return Boxes(xyxy.double().cpu().numpy(), cls.cpu().numpy().astype(np.int64), score.double().cpu().numpy())
