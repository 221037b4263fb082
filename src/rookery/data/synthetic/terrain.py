"""The background of a synthetic survey photo: rock, water and surf, built from smooth noise fields.

Large structure (which region a pixel belongs to, its base colour) is computed at a quarter of the
resolution, texture (relief, pebbles, cracks) at half, and the result upsampled once, so that a
5000x3300 scene costs about half a second; per-pixel grain is added later, with the animals.
"""

from __future__ import annotations

import cv2
import numpy as np

LOW = 4  # the large-scale fields are made at 1/LOW of the resolution

# Region colours, BGR floats (OpenCV order).
ROCK_DARK = np.array([88, 90, 96], np.float32)
ROCK_LIGHT = np.array([150, 152, 156], np.float32)
ROCK_WARM = np.array([112, 128, 148], np.float32)  # weathered, lichen-tinted rock
MUD = np.array([104, 126, 146], np.float32)  # muddy puddles between the rocks
WATER_DEEP = np.array([62, 52, 34], np.float32)
WATER_SHALLOW = np.array([98, 96, 78], np.float32)
FOAM = np.array([232, 236, 236], np.float32)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: float) -> np.ndarray:
    """Value noise with features about `cell` px across: roughly zero mean, unit standard deviation."""
    h, w = shape
    cell = max(float(cell), 1.0)
    gh, gw = int(h / cell) + 3, int(w / cell) + 3
    grid = rng.standard_normal((gh, gw), dtype=np.float32)
    big = cv2.resize(grid, (round(gw * cell), round(gh * cell)), interpolation=cv2.INTER_CUBIC)
    oy, ox = (int(v) for v in rng.integers(0, int(cell) + 1, size=2))
    # Bicubic interpolation of white noise keeps about 0.85 of its standard deviation.
    return big[oy : oy + h, ox : ox + w] * np.float32(1.15)


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def background(
    rng: np.random.Generator, size: tuple[int, int], object_scale: float = 1.0, sun: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """A (H, W, 3) uint8 BGR image (rock with relief and cracks, water, a line of surf, mud puddles)
    and a coarse (1/LOW resolution) bool map of dry land, where colonies may lie.

    Region sizes follow the image (every scene gets a few regions); texture sizes follow object_scale,
    so rocks keep their size relative to the animals. `sun` (radians) is the direction light comes
    from, shared with the animals' shadows.
    """
    w, h = size
    lh, lw = -(-h // LOW), -(-w // LOW)
    hh, hw = -(-h // 2), -(-w // 2)
    s = object_scale / LOW  # texture scale at low resolution
    span = max(lw, lh)

    def low_noise(cell: float) -> np.ndarray:
        return smooth_noise(rng, (lh, lw), cell)

    terrain = low_noise(span / 2.5) + 0.5 * low_noise(span / 7) + 0.25 * low_noise(span / 18)
    water_frac = rng.choice([0.0, rng.uniform(0.05, 0.35)], p=[0.3, 0.7])
    sample = terrain[::4, ::4]
    t_water = float(np.quantile(sample, water_frac)) if water_frac > 0 else float(sample.min()) - 1.0
    t_surf = t_water + 0.2  # a band of surf along the shore
    shore = _smoothstep(terrain, t_water - 0.02, t_water + 0.02)  # 0 = water, 1 = land
    surf = _smoothstep(terrain, t_water - 0.05, t_water + 0.01)
    surf *= 1 - _smoothstep(terrain, t_surf - 0.1, t_surf)

    tone = _smoothstep(low_noise(160 * s) + 0.5 * low_noise(45 * s), -1.8, 1.8)
    warm = _smoothstep(low_noise(260 * s), 0.5, 1.8)
    mud = _smoothstep(low_noise(320 * s) + 0.3 * low_noise(60 * s), 1.9, 2.3)
    mud *= rng.choice([0.0, 1.0], p=[0.4, 0.6])  # not every scene has puddles
    depth = _smoothstep(t_water - terrain, 0.0, 0.8)

    rock = ROCK_DARK + tone[..., None] * (ROCK_LIGHT - ROCK_DARK)
    rock += warm[..., None] * (ROCK_WARM - rock) * 0.5
    rock += mud[..., None] * (MUD - rock) * 0.85
    water = WATER_SHALLOW + depth[..., None] * (WATER_DEEP - WATER_SHALLOW)
    low = water + shore[..., None] * (rock - water)
    # The 4th channel says how rocky a pixel is (relief, cracks, pebbles); the 5th how foamy.
    rocky = shore * (1 - _smoothstep(surf, 0.0, 0.3)) * (1 - mud)
    land = (shore > 0.5) & (surf < 0.5)
    low = np.dstack([low, rocky, surf])

    half = cv2.resize(low, (hw, hh), interpolation=cv2.INTER_LINEAR)
    image = half[..., :3].astype(np.float32, copy=False)
    rocky, surf = half[..., 3], half[..., 4]
    s = object_scale / 2  # texture scale at half resolution
    height = smooth_noise(rng, (hh, hw), 36 * s) + 0.5 * smooth_noise(rng, (hh, hw), 11 * s)
    # Light from `sun`: faces that slope towards it are bright, the others dark (a relief map).
    relief = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3) * np.float32(np.cos(sun))
    relief += cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3) * np.float32(np.sin(sun))
    relief *= np.float32(-0.14 / (float(relief[::4, ::4].std()) + 1e-6))  # about ±14 % brightness
    np.clip(relief, -0.35, 0.35, out=relief)
    pebbles = smooth_noise(rng, (hh, hw), 3 * s)
    cracks = smooth_noise(rng, (hh, hw), 55 * s)
    cracks *= np.float32(5.0)
    np.square(cracks, out=cracks)
    np.exp(-cracks, out=cracks)  # near 1 on the thin zero lines of the noise: cracks between blocks
    cracks *= _smoothstep(smooth_noise(rng, (hh, hw), 90 * s), -1.0, 1.0)  # some cracks fade out
    foam = pebbles * np.float32(0.5) + smooth_noise(rng, (hh, hw), 9 * s)

    detail = pebbles * np.float32(0.04)
    detail += rocky * (relief + pebbles * np.float32(0.05) - cracks * np.float32(0.5))
    detail += np.float32(1.0)
    image *= detail[..., None]
    image += (surf * np.clip(foam, 0, None) * np.float32(0.6))[..., None] * (FOAM - image)
    return cv2.resize(cv2.convertScaleAbs(image), (w, h), interpolation=cv2.INTER_LINEAR), land
