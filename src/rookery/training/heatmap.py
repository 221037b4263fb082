"""Training of the point-counting heatmap network (rookery.models.heatmap) on a rookery data set's tiles.

Plain PyTorch, no framework: the whole training set (a few hundred tiles) is held as one uint8 tensor on the
training device, and every step cuts random crops from random tiles on the device, applies one of the 8
symmetries of the square (aerial photos have no "up"), a brightness/contrast jitter and a mild rescale, and
builds the Gaussian targets there too — so a GPU is never waiting for a data loader, and the same code trains
on a laptop's CPU.

The budget is wall time (`seconds`) or a number of steps, whichever ends first; the learning rate follows a
cosine over that budget, and the weights that are kept are an exponential moving average of the trained ones
(steadier on few photos than the last step).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from rookery.errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeatmapParams:
    seconds: float = 300.0  # wall-time budget of the training steps
    steps: int | None = None  # or a fixed number of steps (whichever ends first)
    batch: int = 64  # the network is small: a step costs about the same at 16 or 64 crops on a GPU
    crop: int = 256  # training crop side in tile pixels (a multiple of 16)
    lr: float = 2e-3
    weight_decay: float = 1e-4
    ema: float = 0.998
    scale_jitter: float = 0.15  # crops are resized by a factor in [1 - j, 1 + j]
    device: str = "cpu"
    seed: int = 0
    widths: tuple[int, int, int, int] = (32, 64, 128, 192)
    log_every: int = 100  # steps between progress callbacks (one "epoch" in the metrics)


@dataclass
class TileSet:
    """Tiles (uint8 BGR, one size, padded) with their points (x, y in tile pixels) and classes."""

    images: np.ndarray  # (N, S, S, 3) uint8
    points: list[np.ndarray]  # per tile (K, 2) float32
    classes: list[np.ndarray]  # per tile (K,) int64

    def __len__(self) -> int:
        return len(self.images)


def load_tiles(dataset: Path, splits: tuple[str, ...] = ("train",), photos: set[str] | None = None) -> TileSet:
    """The tiles of these splits of a data set (optionally of some photos only), padded to one side."""
    from rookery.data.manifest import Manifest

    manifest = Manifest.load(dataset)
    side = int(manifest.params.get("tile", 640))
    keep = {p.image for p in manifest.photos if p.split in splits and (photos is None or p.image in photos)}
    images, points, classes = [], [], []
    for split in splits:
        for path in sorted((dataset / "images" / split).glob("*.jpg")):
            if path.stem.rsplit("_", 2)[0] not in keep:
                continue
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is None:
                raise InputError(f"tile {path} of the data set is unreadable; rebuild it with 'rookery data build'")
            h, w = img.shape[:2]
            padded = np.full((side, side, 3), 114, np.uint8)
            padded[:h, :w] = img[:side, :side]
            images.append(padded)
            xy, cls = _read_label(dataset / "labels" / split / f"{path.stem}.txt", w, h)
            points.append(xy)
            classes.append(cls)
    if not images:
        raise InputError(f"the data set {dataset} has no tiles in {', '.join(splits)} for the photos asked for")
    return TileSet(np.stack(images), points, classes)


def _read_label(path: Path, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """YOLO `cls cx cy w h` (normalised, pixel edges) -> box centres in pixel-centre coordinates."""
    rows = np.loadtxt(path, ndmin=2) if path.is_file() and path.stat().st_size else np.zeros((0, 5))
    xy = np.column_stack([rows[:, 1] * w - 0.5, rows[:, 2] * h - 0.5]).astype(np.float32)
    return xy, rows[:, 0].astype(np.int64)


def train_heatmap(
    tiles: TileSet,
    names: list[str],
    box_sizes: list[float],
    params: HeatmapParams,
    on_log: Callable[[int, dict[str, float]], None] | None = None,
    init: dict[str, Any] | None = None,
) -> Any:
    """Train a HeatmapNet on the tiles; returns the EMA model (eval mode, on the CPU).

    `init`: a state dict to start from (a user's earlier heatmap model: `rookery train --model heatmap.pt`);
    tensors of another shape (another class list) keep their fresh initialisation."""
    import torch

    from rookery.models.heatmap import STRIDE, HeatmapNet, focal_loss, gaussian_targets

    torch.manual_seed(params.seed)
    gen = np.random.default_rng(params.seed)
    device = torch.device(params.device)
    on_gpu = device.type == "cuda"
    model = HeatmapNet(names, box_sizes, widths=params.widths)
    if init:
        own = model.state_dict()
        model.load_state_dict({k: v for k, v in init.items() if k in own and own[k].shape == v.shape}, strict=False)
    model = model.to(device)
    if on_gpu:
        model = model.to(memory_format=torch.channels_last)
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    data = torch.from_numpy(tiles.images).to(device)  # (N, S, S, 3) uint8
    sigmas = tuple(float(np.clip(b / (6.0 * STRIDE), 1.0, 3.0)) for b in box_sizes)  # output cells
    crop, side = params.crop, tiles.images.shape[1]
    has_animals = np.array([len(p) > 0 for p in tiles.points], dtype=np.float64)
    weights = 1.0 + 2.0 * has_animals  # see _batch
    weights /= weights.sum()
    torch.backends.cudnn.benchmark = True  # one crop size all along: cuDNN picks its fastest kernels once
    if crop % 16 or crop > side:
        crop = max(16, min(side, crop) // 16 * 16)
    start, step = time.perf_counter(), 0
    budget = params.steps if params.steps is not None else 10**9
    warmup = 100
    lr = 0.0
    losses: list[float] = []
    model.train()
    while step < budget:
        elapsed = time.perf_counter() - start
        progress = min(1.0, max(elapsed / params.seconds, step / budget))
        if progress >= 1.0:
            break
        lr = params.lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * progress))
        for g in opt.param_groups:
            g["lr"] = lr
        x, pts, cls_img = _batch(data, tiles, gen, params, crop, side, weights)
        target, pos = gaussian_targets(pts, cls_img, sigmas, (len(x), x.shape[2] // STRIDE, x.shape[3] // STRIDE))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=on_gpu):
            logits = model(x)
        loss = focal_loss(logits, target, pos)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]  # unannotated in torch
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        _ema_update(ema, model, params.ema * (1 - math.exp(-(step + 1) / 200)))  # ramped: short runs too
        losses.append(float(loss.detach()) if step % 10 == 0 else losses[-1] if losses else 0.0)
        step += 1
        if on_log is not None and step % params.log_every == 0:
            on_log(step // params.log_every, _progress(losses, step, params, start, lr))
    if on_log is not None and step % params.log_every:  # the last, partial stretch (and short trainings)
        on_log(step // params.log_every + 1, _progress(losses, step, params, start, lr))
    log.info("heatmap training: %d steps in %.0f s", step, time.perf_counter() - start)
    final = ema.float().cpu().eval()
    if on_gpu:
        final = final.to(memory_format=torch.contiguous_format)
    final.train_steps = step  # type: ignore[assignment]
    return final


def _progress(losses: list[float], step: int, params: HeatmapParams, start: float, lr: float) -> dict[str, float]:
    seconds = time.perf_counter() - start
    return {
        "train/loss": float(np.mean(losses[-params.log_every :])) if losses else float("nan"),
        "lr/pg0": lr,
        "train/steps": float(step),
        "train/images_per_second": step * params.batch / max(seconds, 1e-9),
    }


def _ema_update(ema: Any, model: Any, decay: float) -> None:
    """ema = decay * ema + (1 - decay) * model, parameters and buffers (YOLO's ramped EMA)."""
    import torch

    with torch.no_grad():
        for e, m in zip(ema.state_dict().values(), model.state_dict().values(), strict=True):
            if e.dtype.is_floating_point:
                e.mul_(decay).add_(m.detach(), alpha=1 - decay)
            else:
                e.copy_(m)


def _batch(
    data: Any,
    tiles: TileSet,
    gen: np.random.Generator,
    params: HeatmapParams,
    crop: int,
    side: int,
    weights: np.ndarray,
) -> tuple[Any, Any, Any]:
    """A training batch on the device: random crops (one rescale per batch), one of the 8 symmetries per crop,
    and a brightness/contrast jitter; the points as one (K, 2) array with their image and class indices.

    Tiles with animals are drawn `weights` times as often as empty ones (empty tiles still teach what a rock
    or a wave looks like, but most steps should see animals). One gather, eight symmetry groups and one
    transfer of the points: a step never waits for Python."""
    import torch
    import torch.nn.functional as F

    device = data.device
    b = params.batch
    idx = gen.choice(len(tiles), b, p=weights)
    j = params.scale_jitter
    factor = float(gen.uniform(1 - j, 1 + j)) if j > 0 else 1.0
    src = min(side, max(16, round(crop / factor)))  # crop this many tile pixels, resize to `crop`
    x0s = gen.integers(0, side - src + 1, b)
    y0s = gen.integers(0, side - src + 1, b)
    ar = torch.arange(src, device=device)
    rows = (torch.as_tensor(y0s, device=device)[:, None] + ar)[:, :, None]  # (b, src, 1)
    cols = (torch.as_tensor(x0s, device=device)[:, None] + ar)[:, None, :]  # (b, 1, src)
    crops = data[torch.as_tensor(idx, device=device)[:, None, None], rows, cols]  # (b, src, src, 3)
    x = crops.permute(0, 3, 1, 2).flip(1).float().div_(255.0)  # BGR uint8 NHWC -> RGB float NCHW
    f = crop / src
    if src != crop:
        x = F.interpolate(x, size=(crop, crop), mode="bilinear", align_corners=False, antialias=src > crop)
    ops = gen.integers(0, 8, b)
    for op in range(1, 8):  # the 8 symmetries of the square, applied to the crops in groups
        sel = np.flatnonzero(ops == op)
        if not len(sel):
            continue
        part = x[sel]
        if op & 4:
            part = part.transpose(2, 3)
        if op & 1:
            part = part.flip(3)
        if op & 2:
            part = part.flip(2)
        x[sel] = part
    xy_all, cls_all, img_all = [], [], []
    for k, (i, x0, y0, op) in enumerate(zip(idx, x0s, y0s, ops, strict=True)):
        xy, c = tiles.points[i], tiles.classes[i]
        if not len(xy):
            continue
        inside = (
            (xy[:, 0] >= x0 - 0.5) & (xy[:, 0] < x0 + src - 0.5) & (xy[:, 1] >= y0 - 0.5) & (xy[:, 1] < y0 + src - 0.5)
        )
        p = (xy[inside] - [x0, y0] + 0.5) * f - 0.5
        if op & 4:
            p = p[:, ::-1]
        if op & 1:
            p = np.column_stack([crop - 1 - p[:, 0], p[:, 1]])
        if op & 2:
            p = np.column_stack([p[:, 0], crop - 1 - p[:, 1]])
        xy_all.append(p)
        cls_all.append(c[inside])
        img_all.append(np.full(int(inside.sum()), k))
    pts = np.concatenate(xy_all) if xy_all else np.zeros((0, 2))
    cls = np.concatenate(cls_all) if cls_all else np.zeros(0, np.int64)
    img = np.concatenate(img_all) if img_all else np.zeros(0, np.int64)
    packed = torch.as_tensor(np.column_stack([pts, cls, img]).astype(np.float32)).to(device, non_blocking=True)
    gain = torch.as_tensor(gen.uniform(0.75, 1.25, (b, 1, 1, 1)), dtype=x.dtype).to(device, non_blocking=True)
    bias = torch.as_tensor(gen.uniform(-0.08, 0.08, (b, 1, 1, 1)), dtype=x.dtype).to(device, non_blocking=True)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * gain + mean + bias).clamp_(0, 1)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    return x, packed[:, :2], packed[:, 2:].long()


def load_heatmap_weights(path: Path) -> dict[str, Any]:
    """The weights of a heatmap checkpoint written by save_checkpoint, to start a training from."""
    from rookery.inference.backends import safe_torch_load

    ckpt = safe_torch_load(Path(path))  # weights only, network classes allow-listed: never arbitrary code
    model = ckpt.get("model") if isinstance(ckpt, dict) else None
    if not isinstance(ckpt, dict) or ckpt.get("family") != "heatmap" or model is None:
        raise InputError(
            f"{path.name} is not a heatmap model of rookery; start the heatmap recipe from scratch or pass a "
            "best.pt written by 'rookery train --recipe heatmap' (YOLO weights go with --recipe yolo)"
        )
    return {k: v.float() for k, v in model.state_dict().items()}


def save_checkpoint(model: Any, path: Path, extra: dict[str, Any] | None = None) -> Path:
    """A checkpoint that rookery.inference.backends.TorchBackend loads like an Ultralytics one."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model, "family": "heatmap", **(extra or {})}, str(path))
    return path


def export_heatmap_onnx(model: Any, path: Path) -> Path:
    """ONNX with rookery's raw input (uint8 NHWC BGR tiles, any batch and size) and Ultralytics-style metadata
    (`names`, `stride`), so inference.backends.OnnxBackend runs it like a YOLO export."""
    import onnx
    import torch

    class _Raw(torch.nn.Module):
        def __init__(self, net: Any) -> None:
            super().__init__()
            self.net = net

        def forward(self, tiles: torch.Tensor) -> torch.Tensor:
            x = tiles.flip(3).permute(0, 3, 1, 2).float() / 255.0
            out: torch.Tensor = self.net(x)
            return out

    wrapper = _Raw(model.float().cpu().eval()).eval()
    dummy = torch.full((1, 64, 64, 3), 114, dtype=torch.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        wrapper,
        (dummy,),
        str(path),
        input_names=["tiles"],
        output_names=["output0"],
        dynamic_axes={"tiles": {0: "batch", 1: "height", 2: "width"}, "output0": {0: "batch", 2: "anchors"}},
        opset_version=17,
        dynamo=False,
    )
    m = onnx.load(str(path))
    for key, value in (("names", repr(model.names)), ("stride", str(int(model.stride.max()))), ("family", "heatmap")):
        m.metadata_props.add(key=key, value=value)
    onnx.save(m, str(path))
    return path
