"""Drawing animals: soft-edged, elongated bodies with a head, shading and a cast shadow.

Each animal is drawn on a small patch around it (vectorised over the patch's pixels), so ~500
animals on a 5000x3300 photo cost a fraction of a second.
"""

from __future__ import annotations

from typing import cast

import numpy as np

from rookery.data.classes import Classes
from rookery.data.synthetic.layout import Layout
from rookery.data.synthetic.profiles import PROFILES

SHADOW = 0.45  # how much a shadow darkens what it falls on
SHADOW_LENGTH = 0.14  # shadow offset as a share of body length


def body_colors(rng: np.random.Generator, layout: Layout, classes: Classes) -> np.ndarray:
    """(N, 3) float32 BGR body colours: the class colour with per-animal brightness and tint variation."""
    rgb = np.array([PROFILES[name].color for name in classes.names], np.float32)[layout.cls]
    rgb *= rng.lognormal(0.0, 0.1, size=(len(layout), 1)).astype(np.float32)
    rgb += rng.normal(0.0, 5.0, size=rgb.shape).astype(np.float32)
    return cast(np.ndarray, np.clip(rgb[:, ::-1], 0, 255))


def _ellipse_alpha(u: np.ndarray, v: np.ndarray, a: float, b: float, soft: float) -> np.ndarray:
    """Coverage of an axis-aligned ellipse with semi-axes a (along u) and b, soft over `soft` px."""
    r = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    return np.clip((1.0 - r) * (b / soft) + 0.5, 0.0, 1.0)


def _shifted(a: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """`a` moved by (dx, dy) pixels, zero-filled (no wrap-around)."""
    out = np.zeros_like(a)
    h, w = a.shape
    if abs(dx) >= w or abs(dy) >= h:
        return out
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = a[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def draw_animals(canvas: np.ndarray, layout: Layout, colors: np.ndarray, sun: float) -> None:
    """Draw every animal of `layout` onto the uint8 BGR `canvas`, in order; light comes from `sun`."""
    h, w = canvas.shape[:2]
    for (cx, cy), length, width, angle, color in zip(
        layout.xy, layout.length, layout.width, layout.angle, colors, strict=True
    ):
        shadow = SHADOW_LENGTH * length
        sdx, sdy = round(-shadow * np.cos(sun)), round(-shadow * np.sin(sun))  # away from the sun
        ext = int(np.ceil(0.55 * length + shadow)) + 3
        d = np.arange(-ext, ext + 1, dtype=np.float32)
        c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
        u = d[None, :] * c + d[:, None] * s  # along the body, head towards +u
        v = d[:, None] * c - d[None, :] * s  # across the body
        soft = max(0.8, 0.03 * length)
        rear = np.clip(-(u + 0.08 * length) / (0.42 * length), 0.0, 1.0)  # 0 mid-body -> 1 at the tail
        body = _ellipse_alpha(u + 0.08 * length, v / (1.0 - 0.4 * rear), 0.42 * length, 0.5 * width, soft)
        head = _ellipse_alpha(u - 0.36 * length, v, 0.15 * length, 0.27 * width, soft)
        alpha = np.maximum(body, head)

        # Shading: a lit spine, darker flanks, a darker head, and the flank facing the sun brighter.
        across = np.clip(v / (0.5 * width), -1.0, 1.0)
        shade = 0.72 + 0.36 * np.sqrt(1.0 - across**2)
        shade += 0.14 * across * np.sin(sun - angle)
        shade *= 1.0 - 0.22 * head * (1.0 - body)

        # Crop the patch to the image.
        x0, y0 = cx - ext, cy - ext
        px0, py0, px1, py1 = max(x0, 0), max(y0, 0), min(cx + ext + 1, w), min(cy + ext + 1, h)
        if px0 >= px1 or py0 >= py1:
            continue
        crop = np.s_[py0 - y0 : py1 - y0, px0 - x0 : px1 - x0]
        patch = canvas[py0:py1, px0:px1].astype(np.float32)
        patch *= (1.0 - SHADOW * _shifted(alpha, sdx, sdy)[crop])[..., None]
        a = alpha[crop][..., None]
        patch += (color * shade[crop][..., None] - patch) * a
        np.clip(patch + 0.5, 0, 255, out=patch)
        canvas[py0:py1, px0:px1] = patch.astype(np.uint8)
