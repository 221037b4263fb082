"""A point-native counting network: one heatmap per class at stride 2, animals = local maxima.

The approach of the published point-based herd counters (HerdNet; CenterNet's keypoint heads): a small
fully convolutional encoder-decoder predicts, for every class, the probability that an animal's centre
lies in each output cell; training targets are Gaussians around each annotated point (a sigma per class,
from its box size), the loss is CenterNet's penalty-reduced focal loss; an animal is a local maximum of
the class-agnostic heatmap above a threshold, and takes the class of the channel that peaks there.

Why points rather than boxes: the annotation *is* a point; boxes made from points are guesses of the
size (one side per class), and a box detector spends its capacity regressing them. A heatmap also keeps
dense colonies apart (touching animals are separate maxima) where box NMS merges or drops neighbours.

To the rest of rookery the network looks like a YOLO detector: in eval mode `forward` returns what an
Ultralytics detection head returns, (N, 4 + nc, cells) with cx, cy, w, h in input pixels and the class
scores, where only peak cells have a non-zero score and w = h = the class's box side. So the sliced
engine (CPU and GPU), the seam merge, ONNX export, the pyfunc model, `predict`, `serve` and the page all
work unchanged; the checkpoint is a plain dict {"model": module, "family": "heatmap", ...} that
inference.backends.TorchBackend loads like an Ultralytics one.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

STRIDE = 2  # output cells per input pixel side: a pup (~8 px at the canonical resolution) spans 4 cells
PEAK_KERNEL = 3  # local-maximum window in cells


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.SiLU(inplace=True))


class _Block(nn.Module):
    """A residual pair of 3x3 convolutions."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.a, self.b = _conv(c, c), nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x + self.b(self.a(x)))


class HeatmapNet(nn.Module):
    """Encoder at strides 2-16, a top-down decoder back to stride 2, and one heatmap per class.

    `widths` sets the channels per stride (2, 4, 8, 16); the default (~1.9 M parameters) trains from scratch
    on a few photos in minutes on one GPU and runs a 384 px tile in ~40 ms on two CPU cores.
    """

    def __init__(
        self,
        names: list[str] | tuple[str, ...],
        box_sizes: list[float] | tuple[float, ...],
        widths: tuple[int, int, int, int] = (32, 64, 128, 192),
        blocks: tuple[int, int, int, int] = (1, 2, 2, 2),
    ) -> None:
        super().__init__()
        nc = len(names)
        if nc == 0 or len(box_sizes) != nc:
            raise ValueError(f"expected a box size per class, got {len(box_sizes)} for {nc} classes")
        self.names = {i: str(n) for i, n in enumerate(names)}
        self.nc = nc
        # What the backends round tile sides up to (the encoder halves the input four times); the heatmap
        # itself is at STRIDE.
        self.stride = torch.tensor([16.0])
        self.register_buffer("box_sizes", torch.tensor([float(b) for b in box_sizes]))
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        w2, w4 = widths[0], widths[1]
        self.stem = nn.Sequential(_conv(3, w2 // 2), _conv(w2 // 2, w2, 2))  # stride 2
        self.enc = nn.ModuleList()
        cin = w2
        for i, (c, n) in enumerate(zip(widths, blocks, strict=True)):
            down = nn.Identity() if i == 0 else _conv(cin, c, 2)
            self.enc.append(nn.Sequential(down, *[_Block(c) for _ in range(n)]))
            cin = c
        # Top-down: each level is upsampled and added to the lateral projection of the finer one.
        self.lateral = nn.ModuleList([nn.Conv2d(c, w4, 1) for c in widths])
        self.smooth = nn.ModuleList([_conv(w4, w4) for _ in widths[:-1]])
        self.head = nn.Sequential(_conv(w4, w4), nn.Conv2d(w4, nc, 1))
        # Start with a low prior (CenterNet's -2.19 = logit of 0.1): nearly every cell is background.
        nn.init.constant_(self.head[-1].bias, -2.19)  # type: ignore[arg-type]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) RGB in [0, 1], H and W multiples of 16 -> (N, nc, H/2, W/2) heatmap logits."""
        x = (x - self.mean) / self.std  # type: ignore[operator]
        feats = []
        x = self.stem(x)
        for stage in self.enc:
            x = stage(x)
            feats.append(x)
        y = self.lateral[-1](feats[-1])
        for i in range(len(feats) - 2, -1, -1):
            y = F.interpolate(y, size=feats[i].shape[-2:], mode="nearest") + self.lateral[i](feats[i])
            y = self.smooth[i](y)
        out: torch.Tensor = self.head(y)
        return out

    def forward(self, x: torch.Tensor) -> Any:
        if self.training:
            return self.logits(x)
        return peaks_as_detections(torch.sigmoid(self.logits(x)), self.box_sizes, STRIDE)  # type: ignore[arg-type]


def peaks_as_detections(heat: torch.Tensor, box_sizes: torch.Tensor, stride: int) -> torch.Tensor:
    """(N, nc, h, w) heatmaps -> (N, 4 + nc, h * w) in the YOLO head's layout.

    A cell is a peak when the class-agnostic maximum there is the largest in its PEAK_KERNEL window; only
    peaks keep a score (in the channel of their class), all other cells score 0. Boxes are centred on the
    cell (input pixels) with the side of the peak's class.
    """
    n, nc, h, w = heat.shape
    best, cls = heat.max(dim=1, keepdim=True)  # (N, 1, h, w)
    pooled = F.max_pool2d(best, PEAK_KERNEL, stride=1, padding=PEAK_KERNEL // 2)
    peak = (best >= pooled).to(heat.dtype)
    scores = heat * peak * F.one_hot(cls[:, 0], nc).permute(0, 3, 1, 2).to(heat.dtype)
    ys = (torch.arange(h, device=heat.device, dtype=heat.dtype) + 0.5) * stride
    xs = (torch.arange(w, device=heat.device, dtype=heat.dtype) + 0.5) * stride
    cy = ys.view(1, 1, h, 1).expand(n, 1, h, w)
    cx = xs.view(1, 1, 1, w).expand(n, 1, h, w)
    side = box_sizes.to(heat.dtype)[cls]  # (N, 1, h, w)
    out = torch.cat([cx, cy, side, side, scores], dim=1)
    return out.flatten(2)


# --- training targets and loss ---------------------------------------------------------------------------


def gaussian_targets(
    points: torch.Tensor, cls_img: torch.Tensor, sigmas: tuple[float, ...], shape: tuple[int, int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(targets, peaks), both (N, nc, h, w) for shape (N, h, w): per image and class a Gaussian around each
    point (1 at the point's cell; overlapping ones add up, capped at 1), and the points' own cells.

    `points` (K, 2) are x, y in input pixels (pixel-centre convention), `cls_img` (K, 2) their class and image
    index, `sigmas` per class in output cells. One scatter and one depthwise convolution per batch."""
    n, h, w = shape
    nc = len(sigmas)
    device = points.device
    peaks = torch.zeros(n, nc, h, w, device=device)
    if len(points):
        cell = ((points + 0.5) / STRIDE - 0.5).round().long()  # input pixel centres -> output cells
        col, row = cell[:, 0].clamp(0, w - 1), cell[:, 1].clamp(0, h - 1)
        peaks.index_put_((cls_img[:, 1], cls_img[:, 0], row, col), torch.ones(len(points), device=device))
    radius = math.ceil(3 * max(sigmas))  # from Python floats: no wait for the device
    r = torch.arange(-radius, radius + 1, device=device, dtype=torch.float32)
    s = torch.tensor(sigmas, device=device).view(-1, 1, 1)
    g = torch.exp(-(r.view(1, -1, 1) ** 2 + r.view(1, 1, -1) ** 2) / (2 * s**2))  # (nc, k, k)
    targets = F.conv2d(peaks, g.unsqueeze(1), padding=radius, groups=nc).clamp_(max=1.0)
    return torch.maximum(targets, peaks), peaks


def focal_loss(
    logits: torch.Tensor, target: torch.Tensor, pos: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss (alpha 2, beta 4), summed and divided by the number of peaks.

    `pos` marks the points' cells; `weight` (N, 1, h, w) in [0, 1] masks cells out of the loss."""
    p = torch.sigmoid(logits.float()).clamp(1e-4, 1 - 1e-4)
    neg = 1.0 - pos
    pos_loss = -torch.log(p) * (1 - p) ** 2 * pos
    neg_loss = -torch.log(1 - p) * p**2 * (1 - target) ** 4 * neg
    total = pos_loss + neg_loss
    if weight is not None:
        total = total * weight
    return total.sum() / pos.sum().clamp(min=1.0)
