"""Merging detections of overlapping tiles into one set per photo, so an object cut by a seam counts once.

Tiles overlap, so an object near a seam is seen twice: whole in one tile and often only in part (a
fragment, cut by the other tile's edge) in the next. Plain IoU between a whole box and a small fragment is
low, so plain NMS would count both. Both modes therefore know which boxes touch an inner tile edge ("cut"):

- "nms": class-aware NMS over the whole photo. A box is suppressed by a better one of its class when their
  IoU reaches the threshold or, if either of the two is cut, when the intersection over the smaller box
  (IoS) does. Whole boxes rank before cut ones (then by score), so the whole view of an object is kept.
- "greedy": like SAHI's GREEDYNMM: boxes of a class whose IoS with a better one reaches the threshold
  are merged into it: the union box is kept with the highest score of the group.

The GPU engine runs the same "nms" rule on torch tensors (cut_flags_torch, merge_nms_torch: no per-box Python
loop); one table of cases in tests/inference/test_inference_merge.py is run through both, and random crowds
check they keep the same boxes. There is no cap on the number of detections. Only boxes that can overlap are
compared (a k-d tree on centres), so a photo with thousands of objects merges in milliseconds.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from scipy.sparse import csr_matrix
from scipy.spatial import cKDTree

from rookery.types import Boxes

CUT_MARGIN = 4.0  # px: a box this close to an inner tile edge is taken as cut by it


def cut_flags(xyxy: np.ndarray, tile_wh: np.ndarray, inner: np.ndarray, margin: float = CUT_MARGIN) -> np.ndarray:
    """Which boxes (tile pixel-edge coordinates) reach an inner edge of their tile.

    `tile_wh` is (K, 2), each box's tile width and height; `inner` is (K, 4) booleans telling whether the
    tile's left, top, right and bottom edges lie inside the photo (a photo border cuts nothing away).
    """
    near = np.stack(
        [
            xyxy[:, 0] <= margin,
            xyxy[:, 1] <= margin,
            xyxy[:, 2] >= tile_wh[:, 0] - margin,
            xyxy[:, 3] >= tile_wh[:, 1] - margin,
        ],
        axis=1,
    )
    return cast(np.ndarray, np.any(near & inner, axis=1))


def merge_detections(
    xyxy: np.ndarray, cls: np.ndarray, score: np.ndarray, cut: np.ndarray, mode: str = "nms", thr: float = 0.5
) -> Boxes:
    """One box per object from the detections of all tiles of a photo, in photo coordinates; best first."""
    if mode not in ("nms", "greedy"):
        raise ValueError(f"mode must be 'nms' or 'greedy', got {mode!r}")
    n = len(xyxy)
    if n == 0:
        return Boxes(np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0))
    order = np.lexsort((np.arange(n), -score, cut))  # whole boxes first, then by score; stable
    xyxy, cls, score, cut = xyxy[order], cls[order], score[order], cut[order]
    a, b = _overlapping_pairs(xyxy, cls)  # a < b: a ranks higher
    iw = np.minimum(xyxy[a, 2], xyxy[b, 2]) - np.maximum(xyxy[a, 0], xyxy[b, 0])
    ih = np.minimum(xyxy[a, 3], xyxy[b, 3]) - np.maximum(xyxy[a, 1], xyxy[b, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    ios = inter / np.maximum(np.minimum(area[a], area[b]), 1e-12)
    if mode == "greedy":
        match = ios >= thr
    else:
        iou = inter / np.maximum(area[a] + area[b] - inter, 1e-12)
        match = (iou >= thr) | ((cut[a] | cut[b]) & (ios >= thr))
    graph = csr_matrix((np.ones(int(match.sum()), bool), (a[match], b[match])), shape=(n, n))
    indptr, indices = graph.indptr, graph.indices
    removed = np.zeros(n, dtype=bool)
    kept: list[int] = []
    out_xyxy, out_score = xyxy.copy(), score.copy()
    for i in range(n):  # in rank order: a kept box takes the lower-ranked ones it matches
        if removed[i]:
            continue
        kept.append(i)
        group = indices[indptr[i] : indptr[i + 1]]
        group = group[~removed[group]]
        if len(group) == 0:
            continue
        removed[group] = True
        if mode == "greedy":  # matched against the original box, not the growing union (as in SAHI)
            members = np.append(group, i)
            out_xyxy[i, :2] = xyxy[members, :2].min(axis=0)
            out_xyxy[i, 2:] = xyxy[members, 2:].max(axis=0)
            out_score[i] = score[members].max()
    idx = np.array(kept, dtype=np.int64)
    return Boxes(out_xyxy[idx], cls[idx], out_score[idx])


def _overlapping_pairs(xyxy: np.ndarray, cls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All pairs (a < b) of boxes of the same class whose boxes intersect with a positive area.

    Typical boxes are paired through a k-d tree on centres (Chebyshev radius = twice the 99th percentile
    half-size); the rare larger ones are compared with every box directly, so one huge false positive
    does not turn the search quadratic.
    """
    n = len(xyxy)
    centres = (xyxy[:, :2] + xyxy[:, 2:]) / 2
    half = np.maximum(xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]) / 2
    limit = float(np.quantile(half, 0.99)) if n > 100 else float(half.max())
    small = np.flatnonzero(half <= limit)
    pairs = [small[cKDTree(centres[small]).query_pairs(2 * limit, p=np.inf, output_type="ndarray")]]
    for big in np.flatnonzero(half > limit):
        others = np.flatnonzero(
            (xyxy[:, 0] < xyxy[big, 2]) & (xyxy[:, 2] > xyxy[big, 0])
            & (xyxy[:, 1] < xyxy[big, 3]) & (xyxy[:, 3] > xyxy[big, 1])
        )  # fmt: skip
        others = others[others != big]
        pairs.append(np.stack([np.full(len(others), big), others], axis=1))
    p = np.concatenate([q.reshape(-1, 2) for q in pairs])
    p = np.unique(np.sort(p, axis=1), axis=0)  # a big box met twice (from both sides) counts once
    a, b = p[:, 0], p[:, 1]
    same = cls[a] == cls[b]
    inter = (np.minimum(xyxy[a, 2], xyxy[b, 2]) > np.maximum(xyxy[a, 0], xyxy[b, 0])) & (
        np.minimum(xyxy[a, 3], xyxy[b, 3]) > np.maximum(xyxy[a, 1], xyxy[b, 1])
    )
    keep = same & inter
    return a[keep], b[keep]


def cut_flags_torch(xyxy: Any, tile_wh: Any, inner: Any, margin: float = CUT_MARGIN) -> Any:
    """cut_flags on torch tensors (the GPU engine's fast path; tests/inference/test_inference_merge.py checks
    both on one table)."""
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
    """merge_detections' "nms" rule on torch tensors (the GPU engine's fast path): the indices kept, in its rank
    order (whole boxes first, then by score).

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


def drop_ignored(boxes: Boxes, mask: np.ndarray | None) -> Boxes:
    """The boxes whose centre falls where the mask counts (>= 128; 0 = ignore region)."""
    if mask is None or len(boxes) == 0:
        return boxes
    h, w = mask.shape
    centre = np.rint(boxes.centers()).astype(np.int64)
    x = np.clip(centre[:, 0], 0, w - 1)
    y = np.clip(centre[:, 1], 0, h - 1)
    return boxes.select(mask[y, x] >= 128)
