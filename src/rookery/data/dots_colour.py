"""Painted dots found by their colour, where they keep it: photos at full resolution.

At full resolution a painted dot is a disc of radius ~4-5 px whose core has the class colour to within
JPEG noise. A pixel is a candidate for class k when each channel is within `tol` of the class colour;
the candidates of one class that touch form a blob. A blob is a dot when its pixels are close to the
colour on average (natural brown rocks and animals only graze the tolerance, a painted core sits in
its middle) and its shape is a compact disc; an elongated blob of two touching dots is split.
Pair mode passes `changed` (pixels that differ from the clean photo), which rules out the scene.
Painted-only mode then settles each dot by its own colour component (dot_colour, settle_dots).

Only the few candidate pixels are worked on (as coordinate arrays): whole-image numpy passes would
cost seconds on a 16 MP photo.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from rookery.data.classes import Classes

# Per-channel distance to the class colour of a dot's pixels. A dull colour (brown) is common in the
# scene, so it gets a tight box; a vivid one (red, blue, green) is not, and JPEG desaturates small vivid
# dots (4:2:0 chroma), so it gets a wide one.
TOLERANCE, VIVID_TOLERANCE = 30, 60
VIVID_CHROMA = 60  # |(Cr, Cb) - grey| of a vivid class colour (brown: 35, blue: 70, red: 125)
# A dot's pixels are on average within this fraction of the tolerance: strict for a dull colour (a
# painted core sits in the middle of the box, natural browns graze its edge), loose for a vivid one.
MEAN_DEVIATION, VIVID_DEVIATION = 0.65, 0.9
MIN_AREA = 4  # px: the core of a radius-4 dot is 15-50 px, of a radius-2 dot ~10
# Pixels of a dot within half the tolerance: paint has a core, a chance cluster of pixels rarely does.
# In pair mode the difference with the clean photo vouches for the paint, and JPEG can leave a small
# vivid dot (radius 2) no core at all.
MIN_CORE, MIN_CORE_PAIR = 3, 0
MAX_ELONGATION = 1.7  # of a single dot (ratio of the axes of the blob's inertia ellipse)
MIN_FILL = 0.5  # blob area / area of its inertia ellipse: 1 for a solid disc, low for ragged shapes
SPLIT_AREA = 1.6  # a blob this many times the typical dot area of its class, and elongated, is 2+ dots
SPLIT_ELONGATION = 2.0  # two touching discs: 2.2 ...
SPLIT_FILL = 0.8  # ... and they fill their ellipse (0.9), where a dot bleeding into a brown patch does not
CHANGED_FRACTION = 0.3  # pair mode: share of a dot's pixels that must differ from the clean photo
# Settling: a painted-only dot is placed as the real sample's reference points were made: at the centroid
# of its 8-connected pixels within a Euclidean RGB distance of the class colour (tight for a dull colour;
# a box would join the dot to brown fur), kept when its centre (radius 2.5 px) has the colour on average:
# shading on an animal can have a rim of dot colour, not a core (an extra dot in the sample's image 41).
# The sample's vivid dots have centres within 36 (the reference used 40); JPEG desaturates smaller dots
# (a radius-3 magenta dot: 43), and vivid colours hardly occur in the scene, so they get 45.
EUCLID_TOLERANCE, DULL_EUCLID_TOLERANCE = 45.0, 20.0
CENTRE_LIMIT, DULL_CENTRE_LIMIT = 45.0, 30.0  # mean distance within CENTRE_RADIUS
CENTRE_RADIUS = 2.5
SETTLE_WINDOW = 8  # px around a dot where its colour component is looked for
SETTLE_MIN_AREA = 8  # px of a colour component that places a dot
MAX_SHIFT = 4.0  # px a dot may move to its colour component's centroid
VIVID = (180, 100)  # unknown colours: HSV saturation and value (0-255) of a painted dot outside classes.yaml
MAX_SPREAD = 25  # unknown colours: mean distance of a blob's pixels to its mean colour


@dataclass(frozen=True)
class Blobs:
    """Connected blobs of candidate pixels: one row per blob; `px[start[i]:start[i + 1]]` are the
    (x, y) pixels of blob i."""

    xy: np.ndarray  # (N, 2) centroid, x = column, y = row
    cls: np.ndarray  # (N,) class index (-1 when found without classes)
    area: np.ndarray  # (N,) pixels
    elongation: np.ndarray  # (N,) ratio of the axes of the inertia ellipse
    fill: np.ndarray  # (N,) area / area of the inertia ellipse
    deviation: np.ndarray  # (N,) mean per-pixel distance to the class colour (or to the mean colour)
    changed: np.ndarray  # (N,) share of pixels that differ from the clean photo (1 without one)
    core: np.ndarray  # (N,) pixels within half the tolerance (as many as `area` without classes)
    rgb: np.ndarray  # (N, 3) mean colour, RGB
    px: np.ndarray  # (P, 2) pixels, grouped by blob
    start: np.ndarray  # (N + 1,) offsets into px

    def __len__(self) -> int:
        return len(self.area)

    def pixels(self, i: int) -> np.ndarray:
        return self.px[self.start[i] : self.start[i + 1]]

    def take(self, idx: np.ndarray) -> Blobs:
        idx = np.asarray(idx, np.int64)
        sizes = self.start[idx + 1] - self.start[idx]
        rows = np.concatenate([np.zeros(0, np.int64), *(np.arange(self.start[i], self.start[i + 1]) for i in idx)])
        return Blobs(
            self.xy[idx], self.cls[idx], self.area[idx], self.elongation[idx], self.fill[idx],
            self.deviation[idx], self.changed[idx], self.core[idx], self.rgb[idx], self.px[rows],
            np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        )  # fmt: skip

    def concat(self, other: Blobs) -> Blobs:
        def join(name: str) -> np.ndarray:
            return np.concatenate([getattr(self, name), getattr(other, name)])

        start = np.concatenate([self.start, other.start[1:] + self.start[-1]])
        return Blobs(
            join("xy"), join("cls"), join("area"), join("elongation"), join("fill"), join("deviation"),
            join("changed"), join("core"), join("rgb"), join("px"), start,
        )  # fmt: skip


def colour_tolerance(classes: Classes) -> np.ndarray:
    """(K,) tolerance per class, narrowed where two class colours are so close that boxes would overlap."""
    tol = np.where(is_vivid(classes), VIVID_TOLERANCE, TOLERANCE)
    colors = np.array(classes.colors, np.int64)
    if len(colors) > 1:
        gaps = np.abs(colors[:, None, :] - colors[None, :, :]).max(axis=2)
        gaps[np.eye(len(colors), dtype=bool)] = 10**6
        tol = np.minimum(tol, gaps.min(axis=1) // 2 - 1)
    return np.maximum(tol, 4).astype(np.int64)


def is_vivid(classes: Classes) -> np.ndarray:
    """(K,) bool: a saturated class colour, rare in the scene (brown is not)."""
    bgr = np.array([[c[::-1] for c in classes.colors]], np.uint8)
    chroma = np.hypot(*(cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb)[0, :, 1:].astype(np.float64) - 128).T)
    return np.asarray(chroma >= VIVID_CHROMA)


def class_masks(bgr: np.ndarray, classes: Classes, tol: np.ndarray) -> np.ndarray:
    """Union of the per-class colour boxes (uint8 0/255)."""
    union = np.zeros(bgr.shape[:2], np.uint8)
    for rgb, t in zip(classes.colors, tol, strict=True):
        c = np.array(rgb[::-1], np.int64)
        cv2.bitwise_or(union, cv2.inRange(bgr, np.clip(c - t, 0, 255), np.clip(c + t, 0, 255)), dst=union)
    return union


def nonzero(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(xs, ys) of the non-zero pixels of a uint8 mask (faster than np.nonzero on a sparse mask)."""
    found = cv2.findNonZero(mask)
    found = np.zeros((0, 2), np.int64) if found is None else found.reshape(-1, 2).astype(np.int64)
    return found[:, 0], found[:, 1]


def label_pixels(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Connected components (8-connectivity) of a sparse set of pixels: a label per pixel. A graph of
    the few pixels, ten times faster than labelling the whole 16 MP image."""
    if not len(xs):
        return np.zeros(0, np.int64)
    width = int(xs.max()) + 2  # a spare column: no neighbour wraps to the next row
    lin = ys * width + xs
    order = np.argsort(lin)
    ordered = lin[order]
    rows, cols = [], []
    for offset in (1, width - 1, width, width + 1):  # right, and the three neighbours below
        j = np.minimum(np.searchsorted(ordered, ordered + offset), len(ordered) - 1)
        hit = np.flatnonzero(ordered[j] == ordered + offset)
        rows.append(hit)
        cols.append(j[hit])
    edges = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(edges[0]), np.int8), edges), shape=(len(lin), len(lin)))
    _, labels = connected_components(graph, directed=False)
    out = np.empty(len(lin), np.int64)
    out[order] = labels
    return out


def find_colour_dots(
    bgr: np.ndarray,
    classes: Classes,
    valid: np.ndarray | None = None,
    changed: np.ndarray | None = None,
    search: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, Blobs]:
    """Dots of the class colours in a full-resolution painted photo: (xy, cls, the accepted blobs).

    `valid` (uint8, 0 = leave out) limits the search to outside the blacked-out regions. Pair mode
    passes `changed` (uint8: the pixel differs from the clean photo) and `search` (uint8: where dots
    can be, around the changed pixels), which spares scanning the whole photo for each colour.

    Blobs are taken at the tolerance and at half of it. The wide blobs hold whole dots, JPEG rims
    included; where a dot sits on a patch of nearly its colour, its wide blob runs into the patch and
    fails the shape test, and its core (the narrow blob) stands for it instead.
    """
    tol = colour_tolerance(classes)
    limit = np.where(tol >= VIVID_TOLERANCE, VIVID_DEVIATION, MEAN_DEVIATION)
    mask = search if search is not None else class_masks(bgr, classes, tol)
    if valid is not None:
        mask = cv2.bitwise_and(mask, valid)
    xs, ys = nonzero(mask)
    colors = np.array([c[::-1] for c in classes.colors], np.int16)
    dist = np.abs(bgr[ys, xs].astype(np.int16)[:, None, :] - colors[None]).max(axis=2)
    cls = dist.argmin(axis=1) if len(xs) else np.zeros(0, np.int64)
    dev = dist[np.arange(len(xs)), cls]
    inside = dev <= tol[cls]
    xs, ys, cls, dev = xs[inside], ys[inside], cls[inside], dev[inside]
    flags = (changed[ys, xs] > 0) if changed is not None else np.ones(len(xs), bool)
    need = CHANGED_FRACTION if changed is not None else 0.0

    wide = find_blobs(xs, ys, cls, dev, bgr, flags, core=dev <= np.maximum(tol // 2, 4)[cls])
    wide_ok = _is_dot(wide, tol * limit, need)
    xy, cls_out = _split_touching(wide, wide_ok, len(classes))
    accepted = wide.take(wide_ok)
    # Cores of the wide blobs that failed: a dot run into a patch of its own colour.
    failed = np.ones(len(wide), bool)
    failed[wide_ok] = False
    in_failed = np.repeat(failed, np.diff(wide.start))
    order_px = wide.px[in_failed]
    if len(order_px):
        px_cls = np.repeat(wide.cls, np.diff(wide.start))[in_failed]
        px_dev = np.abs(bgr[order_px[:, 1], order_px[:, 0]].astype(np.int16) - colors[px_cls]).max(axis=1)
        narrow = px_dev <= np.maximum(tol // 2, 4)[px_cls]
        cx, cy = order_px[narrow, 0], order_px[narrow, 1]
        px_flags = (changed[cy, cx] > 0) if changed is not None else np.ones(len(cx), bool)
        core = find_blobs(cx, cy, px_cls[narrow], px_dev[narrow], bgr, px_flags, core=None)
        core_ok = _is_dot(core, tol * limit, need)  # and, standing alone for a dot, round and not tiny
        core_ok = core_ok[(core.elongation[core_ok] <= MAX_ELONGATION) & (core.area[core_ok] >= 2 * MIN_AREA)]
        xy = np.concatenate([xy, core.xy[core_ok]])
        cls_out = np.concatenate([cls_out, core.cls[core_ok]])
        accepted = accepted.concat(core.take(core_ok))
    return xy, cls_out, accepted


def _is_dot(blobs: Blobs, max_deviation: np.ndarray, changed: float) -> np.ndarray:
    keep = (
        (blobs.area >= MIN_AREA)
        & (blobs.core >= (MIN_CORE_PAIR if changed > 0 else MIN_CORE))
        & (blobs.deviation <= max_deviation[np.maximum(blobs.cls, 0)])
        & (blobs.fill >= MIN_FILL)
        & (blobs.changed >= changed)
    )
    return np.flatnonzero(keep)


def find_vivid_blobs(bgr: np.ndarray, classes: Classes, valid: np.ndarray | None, exclude: np.ndarray) -> Blobs:
    """Dot-like blobs of a saturated colour that is not a class colour: dots of a class missing from
    classes.yaml. `exclude` (uint8) marks pixels near accepted dots (their anti-aliased rims).

    Searched at half resolution (4 times cheaper; a dot keeps a few pixels), measured at full."""
    h, w = bgr.shape[:2]
    half = cv2.resize(bgr, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    # Saturation (max - min) / max and value max, as OpenCV's HSV has them (0-255).
    vivid = cv2.inRange(cv2.cvtColor(half, cv2.COLOR_BGR2HSV), (0, *VIVID), (180, 255, 255))
    vivid = cv2.resize(vivid, (w, h), interpolation=cv2.INTER_NEAREST)
    xs, ys = nonzero(vivid)
    colors = np.array([c[::-1] for c in classes.colors], np.int16)
    pix = bgr[ys, xs].astype(np.int16)
    far = np.abs(pix[:, None, :] - colors[None]).max(axis=2)  # drop pixels of a class colour,
    keep = (far > (colour_tolerance(classes) + TOLERANCE)[None]).all(axis=1) & (exclude[ys, xs] == 0)
    if valid is not None:
        keep &= valid[ys, xs] > 0  # near a dot or outside the search
    xs, ys = xs[keep], ys[keep]
    return dot_like(find_blobs(xs, ys, None, None, bgr))


def dot_like(blobs: Blobs) -> Blobs:
    """The blobs (found without classes) that look like one painted dot: a compact disc of one colour."""
    keep = (
        (blobs.area >= 2 * MIN_AREA)
        & (blobs.elongation <= MAX_ELONGATION)
        & (blobs.fill >= MIN_FILL)
        & (blobs.deviation <= MAX_SPREAD)
    )
    return blobs.take(np.flatnonzero(keep))


def find_blobs(
    xs: np.ndarray,
    ys: np.ndarray,
    cls: np.ndarray | None,
    dev: np.ndarray | None,
    bgr: np.ndarray,
    changed: np.ndarray | None = None,
    core: np.ndarray | None = None,
) -> Blobs:
    """Blobs of the pixels (xs, ys) of at least MIN_AREA pixels. With classes `cls` (and their
    distances `dev` to the class colour) a blob is one class's pixels within one connected component,
    so that touching dots of two colours part; without, `deviation` is the spread around the blob's
    mean colour. `changed` and `core` (bool per pixel) are counted per blob (as a share, a number)."""
    labelled = label_pixels(xs, ys)
    k = int(cls.max()) + 1 if cls is not None and len(cls) else 1
    units, inv = np.unique(labelled * k + (cls if cls is not None else 0), return_inverse=True)
    big = np.bincount(inv, minlength=len(units)) >= MIN_AREA  # most blobs are specks: drop them first
    sel = big[inv]
    xs, ys, inv = xs[sel], ys[sel], (np.cumsum(big) - 1)[inv[sel]]
    units = units[big]
    n = len(units)
    area = np.bincount(inv, minlength=n).astype(np.float64)
    safe = np.maximum(area, 1)
    # per-blob mean of a pixel value
    mean: Callable[[np.ndarray], np.ndarray] = lambda v: np.bincount(inv, v, n) / safe  # noqa: E731
    mx, my = mean(xs), mean(ys)
    dx, dy = xs - mx[inv], ys - my[inv]
    # Second moments of a pixel grid: add 1/12 so that a single pixel has a non-zero size.
    cxx, cyy, cxy = mean(dx * dx) + 1 / 12, mean(dy * dy) + 1 / 12, mean(dx * dy)
    half_trace, root = (cxx + cyy) / 2, np.sqrt(((cxx - cyy) / 2) ** 2 + cxy**2)
    l1, l2 = half_trace + root, np.maximum(half_trace - root, 1e-9)
    pix = bgr[ys, xs].astype(np.float64)
    colour = np.stack([mean(pix[:, c]) for c in range(3)], axis=1)  # BGR
    if dev is None:
        deviation = mean(np.abs(pix - colour[inv]).max(axis=1))
    else:
        deviation = mean(dev[sel].astype(np.float64))
    order = np.argsort(inv, kind="stable")
    return Blobs(
        xy=np.stack([mx, my], axis=1),
        cls=(units % k).astype(np.int64) if cls is not None else np.full(n, -1, np.int64),
        area=area,
        elongation=np.sqrt(l1 / l2),
        fill=area / (4 * np.pi * np.sqrt(l1 * l2)),
        deviation=deviation,
        changed=mean(changed[sel].astype(np.float64)) if changed is not None else np.ones(n),
        core=np.bincount(inv, core[sel], n) if core is not None else area.copy(),
        rgb=np.rint(colour[:, ::-1]).astype(np.int64).reshape(-1, 3),
        px=np.stack([xs[order], ys[order]], axis=1),
        start=np.concatenate([[0], np.cumsum(area.astype(np.int64))]),
    )


def _split_touching(blobs: Blobs, idx: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One point per dot: an elongated, full blob of n times the typical area of its class (n >= 2) is
    n touching dots, placed by k-means on its pixels. The typical area is the median of the class's
    round blobs in this photo (one brush per class), or of all classes when too few."""
    round_ = idx[blobs.elongation[idx] <= MAX_ELONGATION]
    overall = float(np.median(blobs.area[round_])) if len(round_) >= 3 else None
    xy_out: list[np.ndarray] = [np.zeros((0, 2))]
    cls_out: list[np.ndarray] = [np.zeros(0, np.int64)]
    for k in range(num_classes):
        singles = round_[blobs.cls[round_] == k]
        typical = float(np.median(blobs.area[singles])) if len(singles) >= 3 else overall
        for i in idx[blobs.cls[idx] == k]:
            n = 1
            if (
                typical
                and blobs.area[i] >= SPLIT_AREA * typical
                and blobs.elongation[i] >= SPLIT_ELONGATION
                and blobs.fill[i] >= SPLIT_FILL
            ):
                n = max(2, round(blobs.area[i] / typical))
            xy_out.append(_kmeans(blobs.pixels(i), n) if n > 1 else blobs.xy[i][None])
            cls_out.append(np.full(n, k, np.int64))
    return np.concatenate(xy_out), np.concatenate(cls_out)


def _kmeans(pixels: np.ndarray, n: int) -> np.ndarray:
    data = pixels.astype(np.float32)
    if len(data) < n:
        return cast(np.ndarray, data.mean(axis=0, keepdims=True).repeat(n, axis=0).astype(np.float64))
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 0.01)
    cv2.setRNGSeed(0)  # deterministic splits
    labels = np.zeros((len(data), 1), np.int32)  # an output array (OpenCV 4.14's stubs refuse None)
    _, _, centers = cv2.kmeans(data, n, labels, criteria, 5, cv2.KMEANS_PP_CENTERS)
    return centers.astype(np.float64)[np.lexsort((centers[:, 0], centers[:, 1]))]


def dot_colour(
    bgr: np.ndarray, xy: np.ndarray, cls: np.ndarray, classes: Classes
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each dot (xy, cls) measured by its colour component, the 8-connected pixels near it within
    EUCLID_TOLERANCE of its class colour (less pixels nearer another dot of the class: touching dots):
    (xy (N, 2): the component's centroid, radius (N,): px from it to the farthest pixel of the component,
    centre (N,): mean distance to the class colour within CENTRE_RADIUS). A component that runs out of
    the window (a patch of the colour) or is tiny places nothing: the dot keeps its xy, radius is NaN."""
    colours = np.array([c[::-1] for c in classes.colors], np.float32)
    gaps = np.linalg.norm(colours[:, None] - colours[None], axis=2) + np.eye(len(colours), dtype=np.float32) * 1e6
    etol = np.minimum(np.where(is_vivid(classes), EUCLID_TOLERANCE, DULL_EUCLID_TOLERANCE), gaps.min(axis=1) / 2)
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    out_xy, radius, centre = xy.copy(), np.full(len(xy), np.nan), np.zeros(len(xy))
    for i, ((x, y), k) in enumerate(zip(xy, cls, strict=True)):
        patch, gx, gy = _window(bgr, x, y, SETTLE_WINDOW)
        own = (gx - x) ** 2 + (gy - y) ** 2
        inside = np.linalg.norm(patch - colours[k], axis=2) <= etol[k]
        for ox, oy in xy[(cls == k) & (np.abs(xy - (x, y)).max(axis=1) <= 2 * SETTLE_WINDOW)]:
            inside &= own <= (gx - ox) ** 2 + (gy - oy) ** 2  # a pixel nearer another dot is that dot's
        n, labels, stats, centroids = cv2.connectedComponentsWithStats(inside.astype(np.uint8), connectivity=8)
        if n == 1:
            continue
        ys, xs = np.nonzero(labels)
        m = int(np.argmin(own[ys, xs]))
        j = labels[ys[m], xs[m]]
        sx, sy, sw, sh, area = stats[j]
        cx, cy = centroids[j] + (gx[0, 0], gy[0, 0])
        enclosed = sx > 0 and sy > 0 and sx + sw < gx.shape[1] and sy + sh < gx.shape[0]  # else a patch
        close = own[ys[m], xs[m]] <= MAX_SHIFT**2 and np.hypot(cx - x, cy - y) <= MAX_SHIFT
        if close and enclosed and area >= SETTLE_MIN_AREA:
            out_xy[i] = cx, cy
            radius[i] = np.sqrt((gx[labels == j] - cx) ** 2 + (gy[labels == j] - cy) ** 2).max() + 0.5
    # The centre: 2.5 px for the usual dots (radius 4-5, whose components reach ~3 px), less for small ones.
    core = min(CENTRE_RADIUS, float(np.nanmedian(radius)) - 0.5) if (radius > 0).any() else CENTRE_RADIUS
    for i, ((cx, cy), k) in enumerate(zip(out_xy, cls, strict=True)):
        patch, gx, gy = _window(bgr, cx, cy, core)
        dist = np.linalg.norm(patch[(gx - cx) ** 2 + (gy - cy) ** 2 <= core**2] - colours[k], axis=1)
        centre[i] = float(dist.mean()) if len(dist) else np.inf
    return out_xy, radius, centre


def _window(bgr: np.ndarray, x: float, y: float, r: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pixels within r of (x, y) in x and y, clipped to the photo: (float32 BGR, their x, their y)."""
    h, w = bgr.shape[:2]
    x0, y0 = max(0, int(np.floor(x - r))), max(0, int(np.floor(y - r)))
    x1, y1 = min(w, int(np.ceil(x + r)) + 1), min(h, int(np.ceil(y + r)) + 1)
    gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
    return bgr[y0:y1, x0:x1].astype(np.float32), gx, gy


def settle_dots(bgr: np.ndarray, xy: np.ndarray, cls: np.ndarray, classes: Classes) -> tuple[np.ndarray, np.ndarray]:
    """Painted-only mode: each dot moved to its colour component's centroid, and kept only where its
    centre has the class colour. Returns (xy, keep (bool))."""
    settled, _, centre = dot_colour(bgr, xy, cls, classes)
    limit = np.where(is_vivid(classes), CENTRE_LIMIT, DULL_CENTRE_LIMIT)
    return settled, centre <= limit[np.asarray(cls, np.int64)]
