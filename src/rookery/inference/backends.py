"""The network behind the Predictor: PyTorch (Ultralytics .pt checkpoint), ONNX Runtime or OpenVINO (.onnx export;
OpenVINO in openvino_backend.py).

A backend takes a batch of uint8 BGR tiles and returns the raw head output (N, 4 + nc, anchors) as numpy;
everything before and after (tiling, decoding, NMS, merging) is shared. torch, onnxruntime and ultralytics
are imported only here, and only when a backend of that kind is opened.
"""

from __future__ import annotations

import ast
import platform
import threading
from pathlib import Path
from typing import Any, Literal, Protocol, cast

import numpy as np

from rookery.errors import ConfigError, InputError, MissingExtraError
from rookery.inference.decode import to_input
from rookery.inference.export import export_onnx as export_onnx  # re-exported: its home was here

BackendName = Literal["auto", "onnx", "openvino", "torch"]


class Backend(Protocol):
    name: str  # "onnx", "openvino" or "torch"
    device: str  # "cpu", "cuda:0", ...
    class_names: tuple[str, ...]
    stride: int  # input sides must be multiples of it
    input_size: tuple[int, int] | None  # (height, width) when the network takes only that size
    max_batch: int | None  # when the network takes only batches of that size

    def prepare(self, batch: np.ndarray) -> Any:
        """(N, H, W, 3) uint8 BGR tiles -> the network input (runs in the producer thread)."""
        ...

    def run(self, prepared: Any) -> np.ndarray:
        """The network input -> raw output (N, 4 + nc, anchors) float32."""
        ...


class OnnxBackend:
    """ONNX Runtime on the CPU (or CUDA with onnxruntime-gpu); dynamic batch and size when exported so."""

    name = "onnx"

    def __init__(self, path: Path, device: str = "cpu", threads: int | None = None) -> None:
        """`threads`: intra-op threads; None keeps ONNX Runtime's default (one per physical core, pinned)."""
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise MissingExtraError("onnxruntime", "train") from e
        providers: list[Any] = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ConfigError(f"device {device} needs onnxruntime-gpu; this onnxruntime runs on the CPU only")
            index = device.partition(":")[2] or "0"
            providers = [("CUDAExecutionProvider", {"device_id": int(index)}), "CPUExecutionProvider"]
        options = ort.SessionOptions()
        # ONNX Runtime's default pool already has one thread per physical core, and pins them; setting the
        # count by hand turns the pinning off, and yolov8n ran 2x slower so on 2 dedicated cores.
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3  # errors only: no warnings about unused initialisers on stderr
        # Spin-waiting threads collapse when the cores are shared (a server, a laptop): measured per
        # yolov8n tile on 2 cores, 22.7 -> 20.8 ms quiet and 95 -> 54 ms beside two busy processes.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types for unreadable files
            raise InputError(f"{path.name} is not a readable ONNX model ({type(e).__name__})") from e
        self.device = device
        meta = self.session.get_modelmeta().custom_metadata_map
        self.class_names = names_from_metadata(path, meta.get("names"))
        if meta.get("end2end", "False") == "True":
            raise InputError(f"{path.name} has an end-to-end (NMS-free) head, which rookery does not decode yet")
        self.stride = int(meta.get("stride", 32))
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        # rookery's own export takes the tiles as they are (uint8 NHWC BGR) and converts inside the graph;
        # a plain Ultralytics export takes float NCHW RGB in [0, 1].
        self.raw_input = inp.type == "tensor(uint8)"
        self.dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        dims = list(inp.shape)
        if len(dims) != 4:
            raise InputError(f"{path.name} takes inputs of shape {dims}, not images (batch, 3, height, width)")
        self.max_batch = dims[0] if isinstance(dims[0], int) else None
        hw = dims[1:3] if self.raw_input else dims[2:4]
        fixed = isinstance(hw[0], int) and isinstance(hw[1], int)
        self.input_size = (int(hw[0]), int(hw[1])) if fixed else None

    def prepare(self, batch: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(batch) if self.raw_input else to_input(batch, self.dtype)

    def run(self, prepared: np.ndarray) -> np.ndarray:
        (out, *_) = self.session.run(None, {self.input_name: prepared})
        return np.asarray(out, dtype=np.float32)


def names_from_metadata(path: Path, names: str | None) -> tuple[str, ...]:
    """Class names from the `names` metadata Ultralytics writes: the repr of {0: 'a', 1: 'b', ...}."""
    if not names:
        raise InputError(
            f"{path.name} has no class names in its metadata ('names'); export it with Ultralytics "
            "(model.export(format='onnx')) or rookery.inference.export_onnx"
        )
    try:
        parsed = ast.literal_eval(names)
        mapping = dict(enumerate(parsed)) if isinstance(parsed, list | tuple) else dict(parsed)
        ordered = tuple(str(mapping[i]) for i in range(len(mapping)))
    except (ValueError, SyntaxError, TypeError, KeyError) as e:
        raise InputError(f"{path.name} has unreadable class names in its metadata: {names[:80]!r}") from e
    return ordered


class TorchBackend:
    """A torch module returning the YOLO head output (as an Ultralytics DetectionModel in eval mode does)."""

    name = "torch"
    input_size: tuple[int, int] | None = None  # any size, any batch
    max_batch: int | None = None

    def __init__(self, module: Any, class_names: tuple[str, ...] | list[str], device: str = "cpu") -> None:
        import torch

        self._torch = torch
        self.device = device
        self.class_names = tuple(class_names)
        self.module = module.to(device).eval()
        stride = getattr(module, "stride", 32)
        self.stride = int(stride.max().item() if isinstance(stride, torch.Tensor) else np.max(stride))
        self.on_gpu = device.startswith("cuda")
        # On x86 CPUs oneDNN convolutions run ~15 % faster channels-last (as Ultralytics sets them up);
        # the tiles arrive as NHWC, so the input needs no transpose at all then.
        # (torch.backends.mkldnn.is_available is unannotated)
        self.channels_last = (
            not self.on_gpu and platform.machine() in ("x86_64", "AMD64") and torch.backends.mkldnn.is_available()  # type: ignore[no-untyped-call]
        )
        if self.channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)
        # Ultralytics' Detect head caches its anchors per input shape on the module: two threads running
        # different shapes at once would mix them up, so calls from several threads take turns.
        self._lock = threading.Lock()

    @classmethod
    def from_checkpoint(cls, path: Path, device: str = "cpu") -> TorchBackend:
        """Load an Ultralytics checkpoint: its EMA (or plain) model, in float32, fused, in eval mode."""
        torch = import_torch_stack()
        ckpt = safe_torch_load(path)
        model = (ckpt.get("ema") or ckpt.get("model")) if isinstance(ckpt, dict) else None
        if not isinstance(model, torch.nn.Module):
            raise InputError(f"{path.name} is not an Ultralytics checkpoint (it holds no 'model')")
        if getattr(model, "end2end", False):
            raise InputError(f"{path.name} has an end-to-end (NMS-free) head, which rookery does not decode yet")
        names = getattr(model, "names", None)
        if not names:
            raise InputError(f"{path.name} has no class names ('names' of its model)")
        model = model.float()
        if hasattr(model, "fuse"):
            model = model.fuse(verbose=False)  # conv + batch norm in one: faster, as the ONNX export does
        for m in model.modules():  # in-place activations, as Ultralytics' own loader sets them
            if hasattr(m, "inplace"):
                m.inplace = True
        ordered = [names[i] for i in range(len(names))] if isinstance(names, dict) else list(names)
        return cls(model, ordered, device)

    def prepare(self, batch: np.ndarray) -> Any:
        torch = self._torch
        if self.on_gpu:  # upload uint8 (4x fewer bytes) and convert on the GPU
            return torch.from_numpy(batch)
        if self.channels_last:  # NHWC RGB in [0, 1], seen as NCHW: a channels-last tensor, no copy
            nhwc = np.empty(batch.shape, dtype=np.float32)
            np.divide(batch[..., ::-1], np.float32(255.0), out=nhwc, dtype=np.float32)
            return torch.from_numpy(nhwc).permute(0, 3, 1, 2)
        return torch.from_numpy(to_input(batch))

    def run(self, prepared: Any) -> np.ndarray:
        torch = self._torch
        with self._lock, torch.inference_mode():
            x = prepared.to(self.device, non_blocking=True)
            if self.on_gpu:
                x = x.permute(0, 3, 1, 2).flip(1).float().div_(255.0)
            out = self.module(x)
            if isinstance(out, list | tuple):  # Ultralytics: (decoded head output, raw feature maps)
                out = out[0]
            return cast(np.ndarray, out.float().cpu().numpy())


# Checkpoints are pickles: unpickling one can run any code its author wants. They are read with weights_only=True,
# which refuses every class not allowed explicitly; the allowed ones are the network modules of these packages.
_MODULE_PREFIXES = ("torch.nn.modules.", "ultralytics.nn.", "rookery.models.")


def safe_torch_load(path: Path) -> Any:
    """torch.load with weights_only=True, allowing only torch.nn.Module subclasses of torch.nn, ultralytics.nn and
    rookery.models (Ultralytics' and rookery's heatmap checkpoints pickle their model objects); any other class or
    function the checkpoint names is refused with an InputError before anything is unpickled."""
    import torch

    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception as e:
        raise InputError(f"{path.name} is not a readable PyTorch checkpoint ({type(e).__name__})") from e
    allowed = []
    for name in sorted(names):
        obj = _allowed_global(name)
        if obj is None:
            raise InputError(
                f"{path.name} refers to {name[:120]}, which is not a network module of torch, Ultralytics or rookery: "
                "refused (unpickling a checkpoint can run code; only model classes are allowed)"
            )
        allowed.append(obj)
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise InputError(f"{path.name} is not a readable PyTorch checkpoint ({type(e).__name__})") from e


def _allowed_global(name: str) -> Any:
    """The class a checkpoint names, when it is a torch.nn.Module subclass in an allowed package; else None."""
    import importlib

    import torch

    module, _, attr = name.rpartition(".")
    if not name.startswith(_MODULE_PREFIXES) or not attr or attr.startswith("__"):
        return None
    try:  # only modules under the allowed prefixes are ever imported
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None
    return obj if isinstance(obj, type) and issubclass(obj, torch.nn.Module) else None


def import_torch_stack() -> Any:
    from rookery.offline import ensure_offline

    ensure_offline()  # before ultralytics is imported: no online checks, no downloads
    try:
        import torch
        import ultralytics  # noqa: F401  (unpickling a checkpoint imports its classes)
    except ImportError as e:
        raise MissingExtraError(getattr(e, "name", None) or "torch", "train") from e
    return torch


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def open_backend(weights: Path, backend: BackendName = "auto", device: str = "auto") -> Backend:
    """The backend for a .pt, .onnx or OpenVINO .xml file. "auto" picks PyTorch on CUDA; on the CPU, OpenVINO when
    the wheel is installed and an .onnx is at hand (the fastest measured on x86 CPUs: README, Benchmarks), else
    ONNX Runtime, else PyTorch.

    A .pt and an .onnx with the same name side by side are taken as the same weights (an export), so
    either file can be given and the fastest backend for the machine is used. An .xml (an OpenVINO IR, such
    as the int8 model of rookery.inference.quantize) runs on OpenVINO only, and is never picked by itself:
    int8 changes counts a little, so it is used only when asked for by its path.
    """
    weights = Path(weights)
    if not weights.is_file():
        raise InputError(f"model weights {weights} do not exist")
    suffix = weights.suffix.lower()
    if suffix not in (".pt", ".onnx", ".xml"):
        raise InputError(
            f"{weights.name} is neither a PyTorch checkpoint (.pt), an ONNX model (.onnx) nor an OpenVINO IR (.xml)"
        )
    if backend not in ("auto", "onnx", "torch", "openvino"):
        raise ConfigError(f"backend must be 'auto', 'onnx', 'openvino' or 'torch', got {backend!r}")
    if device not in ("auto", "cpu") and not device.startswith("cuda"):
        raise ConfigError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    device = "cuda:0" if device == "cuda" else device
    from rookery.inference.openvino_backend import OpenVinoBackend, openvino_available

    if suffix == ".xml":
        if backend not in ("auto", "openvino") or device.startswith("cuda"):
            raise ConfigError(f"{weights.name} is an OpenVINO model: it runs with backend 'openvino' on the CPU")
        return OpenVinoBackend(weights)
    pt = weights if suffix == ".pt" else _sibling(weights, ".pt")
    onnx = weights if suffix == ".onnx" else _sibling(weights, ".onnx")
    if backend == "auto":
        gpu = device.startswith("cuda") or (device == "auto" and pt is not None and cuda_available())
        if not gpu and onnx is not None and openvino_available():
            try:
                return OpenVinoBackend(onnx)
            except InputError:  # a graph OpenVINO cannot take (not rookery's raw-tile input): ONNX Runtime runs it
                pass
        backend = ("torch" if pt else "onnx") if gpu else ("onnx" if onnx else "torch")
    if backend in ("onnx", "openvino"):
        if onnx is None:
            raise ConfigError(f"no ONNX model next to {weights.name}; export one with rookery.inference.export_onnx")
        if backend == "openvino":
            if device.startswith("cuda"):
                raise ConfigError("the OpenVINO backend runs on the CPU; use device 'cpu' or 'auto'")
            return OpenVinoBackend(onnx)
        return OnnxBackend(onnx, "cpu" if device == "auto" else device)
    if pt is None:
        raise ConfigError(f"the torch backend needs the .pt checkpoint, and there is none next to {weights.name}")
    if device == "auto":
        device = "cuda:0" if cuda_available() else "cpu"
    elif device.startswith("cuda") and not cuda_available():
        raise ConfigError(f"device {device} was asked for, but torch sees no CUDA GPU here")
    return TorchBackend.from_checkpoint(pt, device)


def _sibling(path: Path, suffix: str) -> Path | None:
    other = path.with_suffix(suffix)
    return other if other.is_file() else None


class CappedBackend:
    """A backend whose YOLO head output keeps at most `per_tile` candidate boxes per tile (the best scoring).

    With conf=0 every anchor of every tile is a candidate (8,400 on a 640 px tile), and NMS over them is what
    grows without bound. Candidates are the anchors whose best class score is above `conf` (set by the caller
    for each call: the confidence in force); past `per_tile` of them in a tile, the class scores of the others
    are zeroed, so decoding never sees them (a score of 0 never passes the filter, which keeps scores strictly
    above conf). `hits` counts the tiles that were cut, for the caller to report. Other outputs (a heatmap's
    maps) pass through unchanged.
    """

    def __init__(self, inner: Any, per_tile: int) -> None:
        if per_tile < 1:
            raise ConfigError(f"the per-tile detection cap must be at least 1, got {per_tile}")
        self.inner = inner
        self.per_tile = per_tile
        self.conf = 0.0
        self.hits = 0

    def __getattr__(self, name: str) -> Any:  # name, device, class_names, stride, input_size... of the backend
        return getattr(self.inner, name)

    def prepare(self, batch: np.ndarray) -> Any:
        return self.inner.prepare(batch)

    def run(self, prepared: Any) -> np.ndarray:
        raw: np.ndarray = self.inner.run(prepared)
        nc = len(getattr(self.inner, "class_names", ()))
        if raw.ndim != 3 or raw.shape[1] != 4 + nc or raw.shape[2] <= self.per_tile:
            return raw
        best = raw[:, 4:, :].max(axis=1)  # (N, anchors)
        over = (best > self.conf).sum(axis=1) > self.per_tile
        if not over.any():
            return raw
        kth = np.partition(best[over], -self.per_tile, axis=1)[:, -self.per_tile][:, None]
        drop = np.zeros_like(best, dtype=bool)
        drop[over] = best[over] < kth  # ties at the k-th score stay: at most a few more than the cap
        raw = raw if raw.flags.writeable else raw.copy()
        scores = raw[:, 4:, :]
        scores[np.broadcast_to(drop[:, None, :], scores.shape)] = 0.0
        self.hits += int(over.sum())
        return raw
