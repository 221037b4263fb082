"""Painted dots removed from a photo, so that a painted-only photo can be trained on.

A detector trained on painted photos learns to find paint. Each dot is covered by a disc, from its
centre to the farthest pixel of its colour component (dots_colour.dot_colour) plus a margin for the
rim that JPEG blurs into the scene, and the disc is filled from the pixels around it by OpenCV's
Telea inpainting. Nothing else is touched: painted-looking pixels that were not accepted as dots (a
brown shadow on an animal) stay as they are.

On the real full-resolution pairs (whose clean twin shows what is under the paint), a dot changes the
photo up to ~5 px from its centre (by more than 20 levels) and its colour component reaches 2.5-4 px:
discs of component + 3 px leave 0-3 px per photo more than 20 levels off the clean twin (+ 2 px leave
~50). A lossless photo has no blurred rim, and 1 px is enough.

What the paint hid is lost: the disc is filled from its surroundings, so an animal not much wider than
a dot (a pup of ~10 px in the synthetic surveys) loses most of its body.
"""

from __future__ import annotations

import cv2
import numpy as np

from rookery.data.classes import Classes
from rookery.data.dots_colour import dot_colour
from rookery.types import Points

MARGIN, LOSSLESS_MARGIN = 3.0, 1.0  # px beyond a dot's colour component: JPEG, lossless photos
DEFAULT_RADIUS = 4.0  # px: a dot's colour reach when no dot of the photo has a component of its own
TELEA_RADIUS = 5  # px of known pixels around a hole that fill it (cv2.inpaint's inpaintRadius)
LOSSLESS = (".png", ".tif", ".tiff", ".bmp")  # cleaned photos keep a lossless format, the rest become JPEG


def dot_discs(
    bgr: np.ndarray, points: Points, classes: Classes, margin: float = MARGIN
) -> tuple[np.ndarray, np.ndarray]:
    """Each dot's disc: (centres (N, 2), radii (N,)). Dots whose colour component cannot be measured
    (run into a patch of their colour, or not of a class: cls -1) get the median reach of the others;
    none reaches farther than twice the median (a component grown into a patch of nearly its colour)."""
    xy = np.asarray(points.xy, np.float64).reshape(-1, 2)
    cls = np.asarray(points.cls, np.int64)
    known = (cls >= 0) & (cls < len(classes))
    reach = np.full(len(xy), np.nan)
    centres = xy.copy()
    if known.any():
        settled, radius, _ = dot_colour(bgr, xy[known], cls[known], classes)
        reach[known] = radius
        placed = ~np.isnan(radius)
        centres[np.flatnonzero(known)[placed]] = settled[placed]
    typical = float(np.nanmedian(reach)) if (~np.isnan(reach)).any() else DEFAULT_RADIUS
    return centres, np.minimum(np.where(np.isnan(reach), typical, reach), 2 * typical) + margin


def disc_mask(shape: tuple[int, ...], centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """uint8 mask (255 inside) of the pixels whose centre lies within radius of a disc's centre."""
    mask = np.zeros(shape[:2], np.uint8)
    h, w = mask.shape
    for (x, y), r in zip(centres, radii, strict=True):
        x0, x1 = max(0, int(np.floor(x - r))), min(w, int(np.ceil(x + r)) + 1)
        y0, y1 = max(0, int(np.floor(y - r))), min(h, int(np.ceil(y + r)) + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        gy, gx = np.mgrid[y0:y1, x0:x1]
        mask[y0:y1, x0:x1][(gx - x) ** 2 + (gy - y) ** 2 <= r * r] = 255
    return mask


def remove_dots(
    bgr: np.ndarray, points: Points, classes: Classes, margin: float = MARGIN
) -> tuple[np.ndarray, np.ndarray]:
    """The photo with every dot of `points` inpainted: (clean BGR, the inpainted pixels as a uint8 mask).

    Points of class -1 (dots of a colour not in classes.yaml) are removed too, with the typical reach.
    Only the pixels of the mask change. Each dot is inpainted in a crop around it (with the discs of its
    neighbours as holes too), so a 16 MP photo costs well under a millisecond per dot."""
    clean = bgr.copy()
    if not len(points):
        return clean, np.zeros(bgr.shape[:2], np.uint8)
    centres, radii = dot_discs(bgr, points, classes, margin)
    holes = disc_mask(bgr.shape, centres, radii)
    h, w = holes.shape
    for (x, y), r in zip(centres, radii, strict=True):
        reach = r + TELEA_RADIUS + 2
        x0, x1 = max(0, int(x - reach)), min(w, int(np.ceil(x + reach)) + 1)
        y0, y1 = max(0, int(y - reach)), min(h, int(np.ceil(y + reach)) + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        window = np.s_[y0:y1, x0:x1]
        filled = cv2.inpaint(np.ascontiguousarray(bgr[window]), holes[window], TELEA_RADIUS, cv2.INPAINT_TELEA)
        gy, gx = np.mgrid[y0:y1, x0:x1]
        own = (gx - x) ** 2 + (gy - y) ** 2 <= r * r
        clean[window][own] = filled[own]
    return clean, holes


def clean_suffix(suffix: str) -> str:
    """File suffix of a cleaned photo: a lossless input stays lossless (.png), anything else is JPEG."""
    return ".png" if suffix.lower() in LOSSLESS else ".jpg"


def rim_margin(suffix: str) -> float:
    """Margin around a dot's colour for a photo of this file suffix: wide for JPEG's blurred rims."""
    return LOSSLESS_MARGIN if suffix.lower() in LOSSLESS else MARGIN
