"""A deterministic fake network and photos made for it: exact expectations for the inference plumbing.

Imported by tests/inference/conftest.py and the tests (pytest puts this folder on sys.path).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rookery.inference import TorchBackend

SIDE = 20  # side of the squares the fake network finds
FAKE_NAMES = ("red", "green")


def _square_net(num_classes: int = 2, side: int = SIDE, cell: int = 4) -> Any:
    """A torch module that finds solid squares of a class colour and emits YOLO-head raw output.

    Class c is a square whose RGB channel c is bright (> 0.6) and the others dark (< 0.2). One anchor per
    `cell` x `cell` block (A = H*W / cell**2): where the top-left pixel of a square's visible part lies, the
    anchor holds the box of that visible part (up to `side` px, so a square cut by the tile edge gives its
    fragment, as a real network would) and, as the class score, the brightness of the square. Squares must
    be at least `cell` px apart. Padding (grey 114) and dark ground are nothing.
    """
    import torch
    import torch.nn.functional as F

    def run_length(m: torch.Tensor, dim: int) -> torch.Tensor:
        """How many pixels in a row (dim 3) or column (dim 2), from each one on, are set (up to `side`)."""
        padded = F.pad(m, (0, side) if dim == 3 else (0, 0, 0, side))
        run, unbroken = torch.zeros_like(m), torch.ones_like(m)
        for k in range(side):
            unbroken = unbroken * padded.narrow(dim, k, m.shape[dim])
            run = run + unbroken
        return run

    class SquareNet(torch.nn.Module):
        stride = 32

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
            w = x.shape[3]
            hi, lo = x > 0.6, x < 0.2
            per_class = [hi[:, c] & lo[:, [k for k in range(3) if k != c]].all(1) for c in range(num_classes)]
            m = torch.stack(per_class, 1)  # (N, nc, H, W)
            any_m = m.any(1, keepdim=True).float()
            left = F.pad(any_m, (1, 0, 0, 0))[..., :, :-1]
            up = F.pad(any_m, (0, 0, 1, 0))[..., :-1, :]
            corner = any_m * (1 - left) * (1 - up)  # top-left pixel of each visible square
            width, height = run_length(any_m, 3), run_length(any_m, 2)
            found, idx = F.max_pool2d(corner, cell, cell, return_indices=True)
            idx, found = idx.flatten(1), found.flatten(1)  # (N, A): flat pixel index of each cell's corner
            px, py = (idx % w).float(), torch.div(idx, w, rounding_mode="floor").float()
            bw = width.flatten(1).gather(1, idx) * found
            bh = height.flatten(1).gather(1, idx) * found
            at = idx[:, None, :].expand(-1, num_classes, -1)
            bright = x[:, :num_classes].flatten(2).gather(2, at)
            scores = m.flatten(2).float().gather(2, at) * bright * found[:, None, :]
            boxes = torch.stack([px + bw / 2, py + bh / 2, bw, bh], 1)
            return torch.cat([boxes, scores], 1), None  # like Ultralytics: (decoded output, extras)

    return SquareNet()


def square_photo(width: int, height: int, squares: np.ndarray, value: int = 230, seed: int = 0) -> np.ndarray:
    """A BGR photo of dark noisy ground with solid squares: rows of `squares` are (x, y, cls), top left."""
    rng = np.random.default_rng(seed)
    photo = rng.integers(0, 40, size=(height, width, 3), dtype=np.uint8)
    for x, y, cls in np.asarray(squares, dtype=np.int64).reshape(-1, 3):
        colour = [0, 0, 0]
        colour[2 - cls] = value  # RGB channel `cls` is BGR channel 2 - cls
        photo[y : y + SIDE, x : x + SIDE] = colour
    return photo


def square_boxes(squares: np.ndarray) -> np.ndarray:
    """The true boxes of the squares in rookery's pixel-centre coordinates, sorted by (x1, y1)."""
    sq = np.asarray(squares, dtype=np.float64).reshape(-1, 3)
    xyxy = np.stack([sq[:, 0] - 0.5, sq[:, 1] - 0.5, sq[:, 0] + SIDE - 0.5, sq[:, 1] + SIDE - 0.5], axis=1)
    return xyxy[np.lexsort((xyxy[:, 1], xyxy[:, 0]))]


class CountingBackend(TorchBackend):
    """The fake network behind a TorchBackend that also records the shape of every batch it runs."""

    def __init__(self) -> None:
        super().__init__(_square_net(len(FAKE_NAMES)), FAKE_NAMES, "cpu")
        self.calls: list[tuple[int, ...]] = []

    def run(self, prepared: Any) -> np.ndarray:
        self.calls.append(tuple(prepared.shape))
        return super().run(prepared)


def squares_on_grey(width: int, height: int, seed: int = 1) -> np.ndarray:
    """Light and dark squares on grey, like the tiny model's training images."""
    rng = np.random.default_rng(seed)
    photo = rng.integers(90, 130, size=(height, width, 3), dtype=np.uint8)
    for i in range(width * height // 2500):
        s = int(rng.integers(14, 24))
        x, y = int(rng.integers(0, width - s)), int(rng.integers(0, height - s))
        photo[y : y + s, x : x + s] = (235, 235, 235) if i % 2 else (20, 20, 60)
    return photo
