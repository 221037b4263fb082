"""Where things go in a synthetic scene: blacked-out (ignore) regions and animals in colonies.

Pure geometry on a random generator; nothing is drawn here except the ignore mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np

from rookery.data.classes import Classes
from rookery.data.synthetic.profiles import PROFILES, WIDTH_RATIO, dot_radius, min_separation

FULL_AREA = 4992 * 3328  # a full-resolution survey photo
ANIMALS_PER_FULL_SCENE = (150, 500)
MIN_ANIMALS = 20  # small scenes still hold a few dozen
MAX_ANIMALS = 2000  # placement checks every pair; beyond this it would be slow
SOLITARY = 0.1  # share of animals away from the colonies
TRIES = 16  # candidate positions per animal before it is dropped


@dataclass(frozen=True)
class Layout:
    """The animals of one scene, in drawing order (later ones occlude earlier ones)."""

    xy: np.ndarray  # (N, 2) int64 centres (x = column, y = row)
    cls: np.ndarray  # (N,) class index
    length: np.ndarray  # (N,) body length in px
    width: np.ndarray  # (N,) body width in px
    angle: np.ndarray  # (N,) direction the head points, radians (0 = +x, pi/2 = +y)

    def __len__(self) -> int:
        return len(self.xy)


def blackout_polygons(rng: np.random.Generator, size: tuple[int, int]) -> list[np.ndarray]:
    """0-2 regions, each 3-15 % of the photo: a band cut off along one side, or a blob inside."""
    w, h = size
    polygons = []
    for _ in range(int(rng.choice(3, p=[0.35, 0.4, 0.25]))):
        frac = rng.uniform(0.03, 0.15)
        region = _edge_band(rng, w, h, frac) if rng.random() < 0.5 else _blob(rng, w, h, frac)
        polygons.append(np.rint(region).astype(np.int32))
    return polygons


def _wave(rng: np.random.Generator, t: np.ndarray, harmonics: range) -> np.ndarray:
    """A smooth random curve over t in [0, 1] (periodic), with mean 0 and max |value| 1."""
    phases = rng.uniform(0, 2 * np.pi, len(harmonics))
    amps = rng.uniform(0.3, 1.0, len(harmonics)) / np.array(list(harmonics))
    y = sum(a * np.sin(2 * np.pi * k * t + p) for k, a, p in zip(harmonics, amps, phases, strict=True))
    y = y - y.mean()
    return cast(np.ndarray, y / max(float(np.abs(y).max()), 1e-9))


def _edge_band(rng: np.random.Generator, w: int, h: int, frac: float) -> np.ndarray:
    side = int(rng.integers(4))  # top, bottom, left, right
    along, across = (w, h) if side < 2 else (h, w)
    t = np.linspace(0, 1, 64)
    depth = frac * across * (1 + 0.6 * _wave(rng, t, range(1, 6)))  # mean depth = frac * across
    a = np.concatenate([[-1.0], t * (along + 1) - 1, [along]])
    d = np.concatenate([[-1.0], depth, [-1.0]])
    if side % 2:
        d = across - 1 - d
    return np.stack([a, d], axis=1) if side < 2 else np.stack([d, a], axis=1)


def _blob(rng: np.random.Generator, w: int, h: int, frac: float) -> np.ndarray:
    theta = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    r = 1 + 0.3 * _wave(rng, theta / (2 * np.pi), range(2, 6))
    aspect, rot = rng.uniform(1.0, 1.8), rng.uniform(0, np.pi)
    x, y = r * np.cos(theta) * aspect, r * np.sin(theta) / aspect
    x, y = x * np.cos(rot) - y * np.sin(rot), x * np.sin(rot) + y * np.cos(rot)
    area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))  # shoelace
    scale = np.sqrt(frac * w * h / area)
    scale = min(scale, (w - 4) / (2 * np.abs(x).max()), (h - 4) / (2 * np.abs(y).max()))  # must fit
    x, y = x * scale, y * scale
    ex, ey = np.abs(x).max(), np.abs(y).max()
    return np.stack([x + rng.uniform(ex + 1, w - 2 - ex), y + rng.uniform(ey + 1, h - 2 - ey)], axis=1)


def ignore_mask(size: tuple[int, int], polygons: list[np.ndarray]) -> np.ndarray:
    """uint8 (H, W): 255 = annotated, 0 = inside a blacked-out region."""
    w, h = size
    mask = np.full((h, w), 255, np.uint8)
    for poly in polygons:  # one call each: fillPoly on a list would XOR overlapping polygons
        cv2.fillPoly(mask, [poly], 0, lineType=cv2.LINE_8)
    return mask


def near_boundary(mask: np.ndarray, margin: int) -> np.ndarray | None:
    """True where both annotated and ignored pixels lie within `margin` px (a square window, so a bit
    wider than a disc: conservative), i.e. near a blacked-out region's edge; None if there is no edge."""
    if mask.all() or not mask.any():
        return None
    kernel = np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)  # separable: fast on 16 MP
    return cast(np.ndarray, cv2.dilate(mask, kernel) != cv2.erode(mask, kernel))


def place_animals(
    rng: np.random.Generator,
    size: tuple[int, int],
    classes: Classes,
    object_scale: float = 1.0,
    forbidden: np.ndarray | None = None,
    land: np.ndarray | None = None,
) -> Layout:
    """Animals in a few colonies plus some solitary ones.

    Bodies may touch and overlap, but two centres stay at least 2 * dot_radius + 3 px apart (dots never
    touch), centres keep clear of the image edge and of `forbidden` pixels (near a blacked-out region's
    edge), so that every dot is whole. Colonies lie on `land` (a bool map of any resolution covering
    the image); solitary animals may swim. The count follows the area in animal units (area / scale²).
    """
    w, h = size
    area = w * h / object_scale**2 / FULL_AREA
    n = round(rng.integers(ANIMALS_PER_FULL_SCENE[0], ANIMALS_PER_FULL_SCENE[1] + 1) * area)
    n = int(np.clip(n, MIN_ANIMALS, MAX_ANIMALS))

    profiles = [PROFILES[name] for name in classes.names]
    weights = np.array([p.weight for p in profiles])
    cls = rng.choice(len(profiles), size=n, p=weights / weights.sum())
    lo, hi = (np.array([p.length[i] for p in profiles])[cls] for i in (0, 1))
    length = rng.uniform(lo, hi) * object_scale
    width = length * rng.uniform(*WIDTH_RATIO, size=n)
    angle = rng.uniform(0, 2 * np.pi, size=n)

    n_colonies = 1 + int(rng.poisson(2.5 * min(1.0, np.sqrt(area))))
    shares = rng.dirichlet(np.full(n_colonies, 2.0)) * (1 - SOLITARY)
    colony = rng.choice(n_colonies + 1, size=n, p=[*shares, SOLITARY])  # n_colonies = solitary
    centres = rng.uniform([0.1 * w, 0.1 * h], [0.9 * w, 0.9 * h], size=(n_colonies * 20, 2))
    if land is not None and land.any():  # colonies centre on land (the first 20 tries that are)
        centres = centres[np.argsort(~_lookup(land, centres, size), kind="stable")]
    centres = centres[:n_colonies]
    members = np.bincount(colony, minlength=n_colonies + 1)[:n_colonies]
    spread = 0.5 * float(length.mean()) * np.sqrt(np.maximum(members, 1))

    edge = dot_radius(object_scale) + 2
    sep = min_separation(object_scale)
    low, high = np.array([edge, edge]), np.array([w - 1 - edge, h - 1 - edge])
    if (high < low).any():  # a photo too small for a whole dot
        n = 0
    placed = np.zeros((n, 2))
    keep: list[int] = []
    for i in range(n):
        j = colony[i]
        if j == n_colonies:
            cand = rng.uniform(low, high, size=(TRIES, 2))
        else:
            cand = centres[j] + rng.normal(0.0, spread[j], size=(TRIES, 2))
        cand = np.rint(cand)
        ok = np.all((cand >= low) & (cand <= high), axis=1)
        if forbidden is not None:
            ok &= ~_lookup(forbidden, cand, size)
        if land is not None and j != n_colonies:
            ok &= _lookup(land, cand, size)
        if keep:
            # Neighbours may touch (0.8 of the mean width apart), dots may not (sep).
            need = np.maximum(sep, 0.4 * (width[i] + width[keep]))
            d2 = ((cand[:, None, :] - placed[None, : len(keep)]) ** 2).sum(axis=2)
            ok &= np.all(d2 >= need**2, axis=1)
        hits = np.flatnonzero(ok)
        if hits.size:
            placed[len(keep)] = cand[hits[0]]
            keep.append(i)
    idx = np.array(keep, dtype=np.intp)
    return Layout(placed[: len(keep)].astype(np.int64), cls[idx], length[idx], width[idx], angle[idx])


def _lookup(grid: np.ndarray, xy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Values of a map of any resolution covering the image at image points xy (clipped to it)."""
    gh, gw = grid.shape
    gx = np.clip((xy[:, 0] * gw / size[0]).astype(np.intp), 0, gw - 1)
    gy = np.clip((xy[:, 1] * gh / size[1]).astype(np.intp), 0, gh - 1)
    return cast(np.ndarray, grid[gy, gx])
