"""Tiles in, tiles out: the pre- and post-processing around the network, in numpy, shared by all backends.

Ultralytics' own predict spends most of its time here (per-image letterbox, per-image NMS in torch with a
300-detection cap); doing it once per batch in numpy is where the speed of sliced inference comes from.
The network sees tiles padded at the bottom and right (never resized), so box coordinates need no scaling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from rookery.errors import InputError

if TYPE_CHECKING:
    from rookery.inference.options import PredictOptions

PAD_VALUE = 114  # Ultralytics' letterbox grey: what the network saw around images in training


def padded_size(
    shapes: Sequence[tuple[int, int]], stride: int, fixed: tuple[int, int] | None = None
) -> tuple[int, int]:
    """(height, width) of the network input for crops of these (height, width): the largest, rounded up to
    the stride."""
    if fixed is not None:
        return fixed
    h = max(s[0] for s in shapes)
    w = max(s[1] for s in shapes)
    return -(-h // stride) * stride, -(-w // stride) * stride


def stack_tiles(crops: Sequence[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """(N, H, W, 3) uint8 BGR: each crop at the top left, the rest filled with PAD_VALUE."""
    h, w = size
    batch = np.full((len(crops), h, w, 3), PAD_VALUE, dtype=np.uint8)
    for i, crop in enumerate(crops):
        batch[i, : crop.shape[0], : crop.shape[1]] = crop
    return batch


def to_input(batch: np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """(N, H, W, 3) uint8 BGR -> (N, 3, H, W) RGB in [0, 1] of `dtype`, in one vectorised step."""
    n, h, w, _ = batch.shape
    out: np.ndarray = np.empty((n, 3, h, w), dtype=dtype)
    np.divide(batch[..., ::-1].transpose(0, 3, 1, 2), dtype(255.0), out=out, dtype=dtype)
    return out


@dataclass(frozen=True)
class TileDetections:
    """Detections of a batch of tiles, flat: `tile` says which tile (row of the batch) each one is from.

    Boxes are x1, y1, x2, y2 in the tile's pixel-edge coordinates (the network's: column c spans
    [c, c + 1)), clipped to the tile's own pixels (never the padding).
    """

    tile: np.ndarray  # (K,) int64
    xyxy: np.ndarray  # (K, 4) float64
    cls: np.ndarray  # (K,) int64
    score: np.ndarray  # (K,) float64


def decode(raw: np.ndarray, sizes: np.ndarray, num_classes: int, conf: float, iou: float) -> TileDetections:
    """Raw YOLO detection output -> per-tile boxes after a confidence filter and class-aware NMS.

    `raw` is (N, 4 + nc, anchors): cx, cy, w, h in input pixels, then the class scores (the YOLOv8/11 head
    as Ultralytics exports it). `sizes` is (N, 2): each tile's own (width, height). One class per anchor
    (its best), NMS on the boxes as predicted, then clipping: as in Ultralytics' predict, but uncapped.
    """
    if raw.ndim != 3 or raw.shape[0] != len(sizes) or raw.shape[1] != 4 + num_classes:
        raise InputError(
            f"the network returned shape {tuple(raw.shape)}, expected ({len(sizes)}, {4 + num_classes}, "
            "anchors): only YOLO detection heads (v8/11 style, not end-to-end) are supported"
        )
    scores = raw[:, 4:, :]
    best = scores.max(axis=1)  # (N, A): filter before touching boxes, as nearly all anchors are background
    t, a = np.nonzero(best > conf)
    cls = scores[t, :, a].argmax(axis=1).astype(np.int64) if num_classes > 1 else np.zeros(len(t), np.int64)
    score = best[t, a].astype(np.float64)
    cxcywh = raw[t, :4, a].astype(np.float64)  # (K, 4): advanced indices around a slice come first
    half = cxcywh[:, 2:] / 2
    xyxy = np.concatenate([cxcywh[:, :2] - half, cxcywh[:, :2] + half], axis=1)
    keep = nms_per_tile(xyxy, score, t * num_classes + cls, iou)
    t, cls, score = t[keep], cls[keep], score[keep]
    # Clipped after NMS, as Ultralytics does, so that a tile gives what Ultralytics' predict gives.
    xyxy = np.clip(xyxy[keep], 0.0, np.tile(np.asarray(sizes, dtype=np.float64)[t], 2))
    valid = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])  # nothing left of it in the tile
    return TileDetections(t[valid].astype(np.int64), xyxy[valid], cls[valid], score[valid])


def nms_per_tile(xyxy: np.ndarray, score: np.ndarray, group: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy NMS (IoU > `iou` suppresses) within each group (tile x class), best first."""
    if len(xyxy) == 0:
        return np.zeros(0, dtype=np.int64)
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
    keep = cv2.dnn.NMSBoxesBatched(xywh, score, group.astype(np.int32), 0.0, float(iou))  # type: ignore[arg-type]
    return np.asarray(keep, dtype=np.int64).reshape(-1)


def decode_torch(
    raw: Any, wh: Any, num_classes: int, options: PredictOptions, cap: Any = None
) -> tuple[Any, Any, Any, Any]:
    """`decode` on torch tensors (the GPU engine's fast path; tests/inference/test_gpu.py checks both agree):
    (tile, xyxy, cls, score) after the confidence filter, per tile-and-class NMS
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
