"""Draw detections on a photo: boxes in class colours and a legend with per-class counts (OpenCV only).

Sea lion models get the survey's dot colours (classes.yaml); any other model gets a fixed palette of
distinct colours, so the same class has the same colour on every photo of a run. Text uses OpenCV's
built-in Hershey font: nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from rookery.data.classes import SEALION_CLASSES
from rookery.types import Boxes

# Tableau 20 (RGB): distinct, and readable on both light and dark ground.
PALETTE_RGB: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
    (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (174, 199, 232), (255, 187, 120),
    (152, 223, 138), (255, 152, 150), (197, 176, 213), (196, 156, 148), (247, 182, 210), (199, 199, 199),
    (219, 219, 141), (158, 218, 229),
)  # fmt: skip
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def class_colors(class_names: Sequence[str]) -> list[tuple[int, int, int]]:
    """BGR colour per class: the sea lion dot colours when every name is a sea lion class, else the palette."""
    sealions = dict(zip(SEALION_CLASSES.names, SEALION_CLASSES.colors, strict=True))
    if class_names and all(n in sealions for n in class_names):
        rgb = [sealions[n] for n in class_names]
    else:
        rgb = [PALETTE_RGB[i % len(PALETTE_RGB)] for i in range(len(class_names))]
    return [(b, g, r) for r, g, b in rgb]


def render(
    image_bgr: np.ndarray,
    boxes: Boxes,
    class_names: Sequence[str],
    colors: Sequence[tuple[int, int, int]] | None = None,
    title: str | None = None,
) -> np.ndarray:
    """A copy of the photo with each box outlined in its class colour and a legend (top left) of counts."""
    out = np.ascontiguousarray(image_bgr).copy()
    colors = list(colors) if colors is not None else class_colors(class_names)
    side = min(out.shape[:2])
    thickness = max(1, round(side / 700))
    corners = np.rint(boxes.xyxy).astype(np.int64)
    for (x1, y1, x2, y2), c in zip(corners.tolist(), boxes.cls.tolist(), strict=True):
        cv2.rectangle(out, (x1, y1), (x2, y2), colors[c], thickness, cv2.LINE_AA)
    _legend(out, boxes.counts(len(class_names)), class_names, colors, title)
    return out


def _legend(
    out: np.ndarray,
    counts: np.ndarray,
    class_names: Sequence[str],
    colors: Sequence[tuple[int, int, int]],
    title: str | None,
) -> None:
    """A half-transparent dark panel with one line per class (swatch, name, count) and the total."""
    scale = float(np.clip(min(out.shape[:2]) / 900, 0.35, 2.0))
    weight = max(1, round(scale * 1.5))
    lines: list[tuple[str, tuple[int, int, int] | None]] = [
        (f"{name}: {int(n)}", colors[i]) for i, (name, n) in enumerate(zip(class_names, counts, strict=True))
    ]
    lines.append((f"total: {int(counts.sum())}", None))
    if title:
        lines.insert(0, (title, None))
    (_, text_h), base = cv2.getTextSize("Ag", _FONT, scale, weight)
    line_h = text_h + base + max(2, round(6 * scale))
    pad, swatch = max(3, round(8 * scale)), text_h
    width = max(cv2.getTextSize(text, _FONT, scale, weight)[0][0] for text, _ in lines) + swatch + 3 * pad
    height = line_h * len(lines) + pad
    width, height = min(width, out.shape[1]), min(height, out.shape[0])
    panel = out[:height, :width]
    panel[:] = (panel.astype(np.uint16) * 2 // 5).astype(np.uint8)  # darken: readable on any ground
    for row, (text, color) in enumerate(lines):
        y = pad + row * line_h + text_h
        x = pad
        if color is not None:
            cv2.rectangle(out, (x, y - text_h), (x + swatch, y), color, -1)
        cv2.putText(out, text, (x + swatch + pad, y), _FONT, scale, (255, 255, 255), weight, cv2.LINE_AA)
