"""One synthetic survey photo: the clean photo, its painted twin, the ignore mask and the points.

The painted twin is the clean photo with a solid disc of the exact class colour on every annotated
animal and the ignore regions blacked out, as in the real survey data.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from rookery.data.classes import Classes
from rookery.data.synthetic.animals import body_colors, draw_animals
from rookery.data.synthetic.layout import blackout_polygons, ignore_mask, near_boundary, place_animals
from rookery.data.synthetic.profiles import dot_radius, survey_classes
from rookery.data.synthetic.terrain import background
from rookery.types import Points

GRAIN = 3  # sensor grain: uniform integer noise in [-GRAIN, GRAIN], the same on all channels


@dataclass(frozen=True)
class Scene:
    photo: np.ndarray  # (H, W, 3) uint8 BGR, the clean photo
    twin: np.ndarray  # (H, W, 3) uint8 BGR, the painted twin
    mask: np.ndarray  # (H, W) uint8, 255 = annotated, 0 = ignore (blacked out in the twin)
    points: Points  # the annotated animals: exactly those that carry a dot
    hidden: int  # animals drawn inside the ignore region (in the photo, without a dot)
    classes: Classes


def disc_offsets(radius: int) -> np.ndarray:
    """(K, 2) integer (dx, dy) of a solid disc: symmetric, so its centroid is its centre."""
    d = np.arange(-radius, radius + 1)
    dx, dy = np.meshgrid(d, d)
    inside = dx**2 + dy**2 <= radius**2
    return np.stack([dx[inside], dy[inside]], axis=1)


def paint_dots(image: np.ndarray, xy: np.ndarray, cls: np.ndarray, classes: Classes, radius: int) -> None:
    """Paint a solid disc of the exact class colour (classes.yaml is RGB) at each integer centre."""
    bgr = np.array([c[::-1] for c in classes.colors], np.uint8)
    pix = xy.astype(np.int64)[:, None, :] + disc_offsets(radius)[None, :, :]  # (N, K, 2)
    image[pix[..., 1], pix[..., 0]] = bgr[cls][:, None, :]


def make_scene(
    size: tuple[int, int] = (4992, 3328),
    num_classes: int = 3,
    seed: int = 0,
    index: int = 0,
    object_scale: float = 1.0,
) -> Scene:
    """Scene `index` of the survey with this seed: the same pixels for the same arguments."""
    classes = survey_classes(num_classes, object_scale)
    # Independent streams per part, so that changing one part (say, the texture) leaves the others.
    g_layout, g_ground, g_look, g_grain = (
        np.random.default_rng(s) for s in np.random.SeedSequence([seed, index]).spawn(4)
    )
    w, h = size
    radius = dot_radius(object_scale)
    sun = float(g_look.uniform(0, 2 * np.pi))

    photo, land = background(g_ground, size, object_scale, sun)
    mask = ignore_mask(size, blackout_polygons(g_layout, size))
    layout = place_animals(g_layout, size, classes, object_scale, near_boundary(mask, radius + 3), land)
    draw_animals(photo, layout, body_colors(g_look, layout, classes), sun)
    grain = g_grain.integers(0, 2 * GRAIN + 1, size=(h, w), dtype=np.uint8)
    cv2.add(photo, cv2.merge([grain, grain, grain]), dst=photo)
    cv2.subtract(photo, np.full_like(photo, GRAIN), dst=photo)

    annotated = mask[layout.xy[:, 1], layout.xy[:, 0]] == 255
    twin = photo.copy()
    twin[mask == 0] = 0
    paint_dots(twin, layout.xy[annotated], layout.cls[annotated], classes, radius)
    points = Points(layout.xy[annotated].astype(np.float64), layout.cls[annotated])
    return Scene(photo, twin, mask, points, int((~annotated).sum()), classes)
