"""OpenVINO on the CPU: the fastest backend measured on the 2-core x86 development machine (see the README's
Benchmarks and bench/sliced_inference.py).

It reads the same ONNX export as ONNX Runtime (rookery's raw-tile graph: uint8 NHWC BGR in, the YOLO head
out; OpenVINO converts it in memory on load, ~0.3 s, so no second copy of the weights is kept), or an
OpenVINO IR (.xml + .bin) such as the int8 model `rookery.inference.quantize` writes.

Why fixed shapes: OpenVINO's CPU plugin runs a static shape markedly faster than a dynamic one (its kernels and
memory plan are chosen once at compile time), and compiling takes ~0.3-1 s. So the model is compiled for a
(batch, height, width) the first time a batch of that many tiles arrives (the batch rounded up to a multiple of
the streams), and kept: a photo of 12 tiles at batch 8 runs compiled shapes of 8 and 4, where a single shape of 8
ran 4 blank tiles, a quarter of its work (at most batch / streams + 1 shapes are ever compiled: 1, then the
multiples of the streams). Tiles smaller than the compiled height and width are padded at the bottom and right
with the training grey (as decode.stack_tiles does anyway); larger tiles than any before compile the larger size,
once.

Why streams: the batch is split over `streams` infer requests run at the same time, each on its own CPU stream
(OpenVINO's "throughput" mode); on 2 cores two single-threaded streams keep both cores busy through the layers
where one stream's two threads would wait on each other (small late feature maps, the head).

Why f32 by default: OpenVINO picks bf16 on CPUs with AVX512_BF16 (this machine) unless told otherwise. bf16 moves
scores by ~1e-2, enough to change a count near the threshold; rookery keeps the counts of ONNX Runtime and
torch unless the caller opts in with `precision="bf16"` (or uses an int8 model).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rookery.errors import ConfigError, InputError, MissingExtraError
from rookery.inference.backends import names_from_metadata
from rookery.inference.decode import PAD_VALUE

Precision = Literal["f32", "bf16"]
DEFAULT_STREAMS = 2  # measured best on 2 cores (README, Benchmarks); capped at the batch's rows


def openvino_available() -> bool:
    """True when the openvino wheel is importable (`--backend auto` then picks it on the CPU)."""
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


class OpenVinoBackend:
    """OpenVINO Runtime on the CPU, compiled once for a fixed (batch, height, width) of uint8 NHWC BGR tiles."""

    name = "openvino"

    def __init__(
        self,
        path: Path,
        device: str = "cpu",
        precision: Precision = "f32",
        streams: int = DEFAULT_STREAMS,
        threads: int | None = None,
    ) -> None:
        """`streams`: infer requests a batch is split over (1 = one request using every core); `threads`: CPU
        threads in all (None: OpenVINO's default, one per core)."""
        try:
            import openvino as ov
        except ImportError as e:
            raise MissingExtraError("openvino", "openvino") from e
        if device not in ("cpu", "auto"):
            raise ConfigError(f"the OpenVINO backend runs on the CPU only here, got device {device!r}")
        if precision not in ("f32", "bf16"):
            raise ConfigError(f"OpenVINO precision must be 'f32' or 'bf16', got {precision!r}")
        if streams < 1:
            raise ConfigError(f"OpenVINO streams must be at least 1, got {streams}")
        self._core = ov.Core()
        try:
            self._model = self._core.read_model(str(path))
        except Exception as e:  # OpenVINO raises RuntimeError subclasses of its own for unreadable files
            raise InputError(f"{Path(path).name} is not a model OpenVINO can read ({type(e).__name__})") from e
        self.path = Path(path)
        self.device = "cpu"
        self.precision = precision
        self.streams = streams
        self.threads = threads
        meta = _framework_info(self._model)
        self.class_names = names_from_metadata(self.path, meta.get("names"))
        if meta.get("end2end", "False") == "True":
            raise InputError(f"{self.path.name} has an end-to-end (NMS-free) head, which rookery does not decode yet")
        self.stride = int(meta.get("stride", 32))
        inputs = self._model.inputs
        rank = inputs[0].get_partial_shape().rank.get_length() if len(inputs) == 1 else 0
        if rank != 4 or inputs[0].get_element_type().get_type_name() != "u8":
            raise InputError(
                f"{self.path.name} does not take uint8 (batch, height, width, 3) tiles; the OpenVINO backend reads "
                "rookery's own ONNX export (rookery.inference.export_onnx) or an IR made from it"
            )
        self.quantized = any(op.get_type_name() == "FakeQuantize" for op in self._model.get_ops())
        # An export of fixed size (dynamic=False) takes only that batch and size, as with ONNX Runtime: the
        # pipeline then packs batches of it and refuses larger tiles (pipeline.check_fits).
        dims = [d.get_length() if d.is_static else None for d in inputs[0].get_partial_shape()]
        self.max_batch: int | None = dims[0]
        self.input_size: tuple[int, int] | None = (
            (dims[1], dims[2]) if dims[1] is not None and dims[2] is not None else None
        )
        self._size: tuple[int, int] | None = None  # (height, width) every compiled shape has
        self._compiled: dict[int, list[Any]] = {}  # batch -> the infer requests of that compiled shape
        self._lock = threading.Lock()  # infer requests are not thread-safe; compile once under it too

    # --- the Backend protocol --------------------------------------------------------------------------

    def prepare(self, batch: np.ndarray) -> tuple[np.ndarray, int]:
        """Letterbox (N, H, W, 3) tiles into the compiled shape (compiling it on first use): (input, N)."""
        with self._lock:
            shape = self._fit(batch.shape[:3])
        return _letterbox(batch, shape), batch.shape[0]

    def run(self, prepared: tuple[np.ndarray, int]) -> np.ndarray:
        """Raw head output (N, 4 + nc, anchors) of the N real rows; the rows are split over the streams."""
        x, n = prepared
        with self._lock:
            shape = self._fit(x.shape[:3])
            if x.shape[:3] != shape:  # prepared by another thread before a larger size was compiled
                x = _letterbox(x[:n], shape)
            requests = self._compiled[shape[0]]
            per = shape[0] // len(requests)
            for i, request in enumerate(requests):
                request.start_async({0: x[i * per : (i + 1) * per]}, share_inputs=True)
            outs = []
            for request in requests:
                request.wait()
                outs.append(request.get_output_tensor(0).data.copy())  # the request reuses its buffer next call
        return np.concatenate(outs)[:n] if len(outs) > 1 else outs[0][:n]

    # --- compiling ---------------------------------------------------------------------------------------

    def _fit(self, need: tuple[int, int, int]) -> tuple[int, int, int]:
        """The compiled (batch, height, width) for `need` tiles, compiling it when it is new (lock held)."""
        old = self._size or (0, 0)
        size = self.input_size or (max(need[1], old[0]), max(need[2], old[1]))
        if size != self._size:  # larger tiles than before: the shapes compiled so far are too small
            self._compiled.clear()
            self._size = size
        if self.max_batch is not None:  # a fixed batch is not split (the export says what it takes)
            streams, b = 1, self.max_batch
        else:  # the batch is split evenly over the streams: rounded up to a multiple of them
            streams = min(self.streams, need[0])
            b = -(-need[0] // streams) * streams
        if b not in self._compiled:
            self._compile((b, *size), streams)
        return (b, *size)

    def _compile(self, shape: tuple[int, int, int], streams: int) -> None:
        b, h, w = shape
        model = self._model.clone()
        model.reshape([b // streams, h, w, 3])
        config: dict[str, Any] = {
            # Pinned threads collapse when the cores are shared (other processes, the tiling thread), as
            # ONNX Runtime's spinning threads do: left to the OS scheduler.
            "ENABLE_CPU_PINNING": False,
            "NUM_STREAMS": streams,
            "PERFORMANCE_HINT": "THROUGHPUT" if streams > 1 else "LATENCY",
        }
        if not self.quantized:  # an int8 model's precision is in its graph; the hint sets the float layers
            config["INFERENCE_PRECISION_HINT"] = self.precision
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = self.threads
        try:
            compiled = self._core.compile_model(model, "CPU", config)
        except Exception as e:
            raise InputError(f"OpenVINO could not compile {self.path.name} for {b}x{h}x{w} tiles: {e}") from e
        self._compiled[b] = [compiled.create_infer_request() for _ in range(streams)]


def _letterbox(batch: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """(N, H, W, 3) tiles inside (B, H', W', 3): padded at the bottom and right with the training grey (as
    stack_tiles pads a short tile) and with blank rows; no copy when the batch already has the shape."""
    if batch.shape[:3] == shape:
        return np.ascontiguousarray(batch)
    out = np.full((*shape, 3), PAD_VALUE, dtype=np.uint8)
    out[: batch.shape[0], : batch.shape[1], : batch.shape[2]] = batch
    return out


def _framework_info(model: Any) -> dict[str, str]:
    """The ONNX export's metadata (Ultralytics' names, stride, ...), which OpenVINO keeps as rt_info 'framework'
    (and ov.save_model writes into the IR, so an int8 IR made from the export has it too)."""
    info = model.get_rt_info()
    if "framework" not in info:
        return {}
    framework = info["framework"]
    framework = framework.astype(dict) if hasattr(framework, "astype") else dict(framework)
    return {str(k): str(v.astype(str)) if hasattr(v, "astype") else str(v) for k, v in framework.items()}
