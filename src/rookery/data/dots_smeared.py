"""Painted dots in a downscaled JPEG pair, where a dot is ~2 px and has lost most of its colour.

At 1/4 scale a radius-4.5 dot covers ~4 px; JPEG keeps its brightness change (the luma channel is
sharp) but spreads its colour over ~6 px and keeps only about a tenth of it (chroma is subsampled 2x2
and coarsely quantised). So the difference painted - clean is studied in YCrCb, where JPEG works:

1. luma and chroma differences are smoothed at their own scales; candidates are local maxima of the
   combined signal-to-noise;
2. each candidate is tested against every class: a dot of class k at coverage a changes the smoothed
   difference by a * gain * (colour_k - clean colour), per channel. The best class and position (within
   2 px) explain most of the signal; a candidate becomes a dot when the brightness agrees strongly with
   a class, or brightness and colour agree together, or the colour alone agrees strongly (weak colour
   alone is as often JPEG noise as a dot). Accepted dots are subtracted from the candidates around
   them, so one dot gives one point;
3. the class of each dot is then fitted once more with all dots at once (their colours overlap),
   against each class's apparent colour in this photo (JPEG shifts some: a dark brown dot loses its
   chroma) and with the classes' frequencies in the photo as a prior (a brown/blue call in a colony of
   brown dots is more often brown).

The constants were calibrated on the real sample (../shared/data/sealions: PIL bilinear 4x downscale,
JPEG quality 75); they are scale-specific, which is why full-resolution photos use dots_colour.
"""

from __future__ import annotations

from typing import cast

import cv2
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spl
from scipy.ndimage import map_coordinates
from scipy.spatial import cKDTree

from rookery.data.classes import Classes

# Smoothing (px) of the luma and chroma differences, and the peak response of a dot to it per unit of
# colour difference (the dot's coverage of the peak pixel times the part JPEG keeps).
LUMA_SIGMA, CHROMA_SIGMA = 0.8, 2.5
LUMA_GAIN, CHROMA_GAIN = 0.341, 0.0395
LUMA_SPREAD, CHROMA_SPREAD = 1.1, 3.68  # width of a dot's smoothed response, to subtract accepted dots
CLEAN_SIGMA = (0.55, 1.3)  # the clean colour under a dot: luma, chroma
CANDIDATE_SNR2 = 16.0  # squared signal-to-noise of a local maximum worth testing
SEARCH = 2  # px around a candidate where the best-fitting dot position is sought
MIN_SEPARATION = 1.5  # px: closer than this is the same dot (dots ~2 px across; true pairs >= 2.6 px)
COVERAGE = (0.4, 2.5)  # plausible coverage a of a fitted dot
SIGN_MIN = 1.5  # a predicted channel change (in noise units) large enough to have a sign
# Acceptance (noise units): brightness alone, or brightness + colour together.
LUMA_ALONE, LUMA_WITH_COLOUR, COLOUR_WITH_LUMA, LUMA_PLUS_COLOUR = 12.0, 4.0, 2.0, 10.0
COLOUR_ALONE = 8.0  # colour that does not contradict the brightness
# Joint class fit: smoothing of chroma, the widths of a dot's footprint, gains and noise scales.
FIT_CHROMA_SIGMA = 2.0
FOOTPRINT = (0.755, 2.71)  # luma, chroma: Gaussian width (px) of a dot after downscaling and JPEG
FIT_GAIN = (0.64, 0.068)
FIT_NOISE = (4.0, 0.7)
FIT_RIDGE = 0.05
PRIOR_ROUNDS, PRIOR_WEIGHT = 3, 3.0
CLEAR_MARGIN, MIN_MEMBERS = 40.0, 8  # dots that estimate a class's apparent colour


def ycrcb(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb).astype(np.float32)


def class_ycrcb(classes: Classes) -> np.ndarray:
    """(K, 3) class colours in YCrCb."""
    bgr = np.array([[c[::-1] for c in classes.colors]], np.uint8)
    return cast(np.ndarray, cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb)[0].astype(np.float64))


def _blur(channel: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(channel, (0, 0), sigma)


def _trimmed_rms(values: np.ndarray) -> float:
    """RMS of the bulk (the 1 % largest left out: the dots themselves and JPEG outliers)."""
    if values.size == 0:
        return 1.0
    cut = np.percentile(np.abs(values), 99)
    bulk = values[np.abs(values) <= cut]
    return max(float(np.sqrt(np.mean(bulk**2))), 1e-3)


def find_smeared_dots(
    clean_bgr: np.ndarray, painted_bgr: np.ndarray, ignore: np.ndarray, classes: Classes
) -> tuple[np.ndarray, np.ndarray]:
    """Dots of a downscaled pair: (xy (N, 2) float, cls (N,) int). `ignore` (bool) is left out."""
    clean = ycrcb(clean_bgr)
    diff = ycrcb(painted_bgr) - clean
    diff[ignore] = 0
    sig = np.dstack([_blur(diff[..., 0], LUMA_SIGMA)] + [_blur(diff[..., c], CHROMA_SIGMA) for c in (1, 2)])
    under = np.dstack([_blur(clean[..., 0], CLEAN_SIGMA[0])] + [_blur(clean[..., c], CLEAN_SIGMA[1]) for c in (1, 2)])
    valid = ~ignore
    luma_noise, chroma_noise = _trimmed_rms(sig[..., 0][valid]), _trimmed_rms(sig[..., 1:][valid])
    noise = np.array([luma_noise, chroma_noise, chroma_noise])
    snr2 = ((sig / noise) ** 2).sum(axis=2)
    snr2[ignore] = 0
    peaks = (snr2 >= cv2.dilate(snr2, np.ones((3, 3), np.uint8))) & (snr2 > CANDIDATE_SNR2)
    ys, xs = np.nonzero(peaks)
    order = np.argsort(-snr2[ys, xs], kind="stable")
    xy = _greedy(sig, under, noise, xs[order], ys[order], class_ycrcb(classes))
    if not len(xy):
        return np.zeros((0, 2)), np.zeros(0, np.int64)
    return _subpixel(snr2, xy), _fit_classes(diff, clean, xy, class_ycrcb(classes))


def _subpixel(score: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Refine integer positions by a parabola through the score and its neighbours, per axis."""
    h, w = score.shape
    x, y = xy[:, 0].astype(np.int64), xy[:, 1].astype(np.int64)
    out = xy.astype(np.float64).copy()
    for axis, (lo, hi) in enumerate(((x - 1, x + 1), (y - 1, y + 1))):
        inside = (lo >= 0) & (hi < (w if axis == 0 else h))
        c = score[y[inside], x[inside]]
        a = score[y[inside], lo[inside]] if axis == 0 else score[lo[inside], x[inside]]
        b = score[y[inside], hi[inside]] if axis == 0 else score[hi[inside], x[inside]]
        curve = a - 2 * c + b
        shift = np.where(curve < 0, 0.5 * (a - b) / np.where(curve < 0, curve, -1), 0.0)
        out[inside, axis] += np.clip(shift, -0.5, 0.5)
    return out


def _greedy(
    sig: np.ndarray, under: np.ndarray, noise: np.ndarray, xs: np.ndarray, ys: np.ndarray, colours: np.ndarray
) -> np.ndarray:
    """Accept candidates strongest first; each one is tested after subtracting the dots already
    accepted around it. Returns the accepted positions."""
    h, w = sig.shape[:2]
    oy, ox = (a.ravel() for a in np.mgrid[-SEARCH : SEARCH + 1, -SEARCH : SEARCH + 1])
    py = np.clip(ys[:, None] + oy[None], 0, h - 1)  # (N, M) window rows
    px = np.clip(xs[:, None] + ox[None], 0, w - 1)
    z = sig[py, px] / noise  # (N, M, 3) in noise units
    # Cheap exact-enough filter: a candidate whose window never reaches the weakest acceptance rule.
    reach = (np.abs(z[..., 0]) + np.linalg.norm(z[..., 1:], axis=2)).max(axis=1)
    keep = reach >= min(LUMA_ALONE, LUMA_PLUS_COLOUR, COLOUR_ALONE)
    py, px, z = py[keep], px[keep], z[keep]
    gain = np.array([LUMA_GAIN, CHROMA_GAIN, CHROMA_GAIN])
    radius = 3 * CHROMA_SPREAD + SEARCH
    accepted_xy: list[np.ndarray] = []
    accepted_u: list[np.ndarray] = []  # the accepted dot's smoothed response at its centre
    grid: dict[tuple[int, int], list[int]] = {}
    cell = radius
    for i in range(len(z)):
        pos = np.stack([px[i], py[i]], axis=1).astype(np.float64)  # (M, 2)
        zi = z[i].copy()
        cx, cy = int(pos[0, 0] // cell), int(pos[0, 1] // cell)
        near = [j for gx in (cx - 1, cx, cx + 1) for gy in (cy - 1, cy, cy + 1) for j in grid.get((gx, gy), ())]
        for j in near:
            d2 = ((pos - accepted_xy[j]) ** 2).sum(axis=1)
            luma, chroma = np.exp(-d2 / (2 * LUMA_SPREAD**2)), np.exp(-d2 / (2 * CHROMA_SPREAD**2))
            zi -= accepted_u[j] / noise * np.stack([luma, chroma, chroma], axis=1)
        v = gain * (colours[None] - under[py[i], px[i]][:, None, :])  # (M, K, 3) expected at coverage 1
        vn = v / noise
        cover = (vn * zi[:, None, :]).sum(axis=2) / np.maximum((vn**2).sum(axis=2), 1e-9)
        resid = ((zi[:, None, :] - np.clip(cover, *COVERAGE)[..., None] * vn) ** 2).sum(axis=2)
        explained = (zi**2).sum(axis=1)[:, None] - resid
        m, k = np.unravel_index(int(np.argmax(explained)), explained.shape)
        if not COVERAGE[0] <= cover[m, k] <= COVERAGE[1] or not _agrees(zi[m], vn[m, k]):
            continue
        if any(((accepted_xy[j] - pos[m]) ** 2).sum() < MIN_SEPARATION**2 for j in near):
            continue  # the same dot, found again from a neighbouring maximum
        # Subtract what this dot explains: its brightness as fitted, its colour only along the class's
        # colour direction (a brown dot must not take a neighbouring pup's green away).
        vc = vn[m, k, 1:]
        chroma_cover = float(np.clip(zi[m, 1:] @ vc / max(vc @ vc, 1e-9), 0, COVERAGE[1]))
        accepted_u.append(np.array([cover[m, k] * v[m, k, 0], chroma_cover * v[m, k, 1], chroma_cover * v[m, k, 2]]))
        accepted_xy.append(pos[m])
        grid.setdefault((int(pos[m, 0] // cell), int(pos[m, 1] // cell)), []).append(len(accepted_xy) - 1)
    return np.array(accepted_xy, np.float64).reshape(-1, 2)


def _agrees(z: np.ndarray, v: np.ndarray) -> bool:
    """Does the observed change z agree with the class's predicted change v (both in noise units)?"""
    sign = np.where(np.abs(v) >= SIGN_MIN, np.sign(v), 0.0)
    luma = z[0] * sign[0]
    vc = v[1:]
    colour = float(z[1:] @ vc / max(np.linalg.norm(vc), 1e-9))
    # Neither chroma channel may contradict the class (JPEG noise often moves just one).
    per_channel = z[1:] * sign[1:]
    consistent = bool(np.all(per_channel[sign[1:] != 0] >= 0)) if np.any(sign[1:]) else True
    return bool(
        luma >= LUMA_ALONE
        or (consistent and colour >= COLOUR_ALONE and luma >= 0)
        or (
            consistent and luma >= LUMA_WITH_COLOUR and colour >= COLOUR_WITH_LUMA and luma + colour >= LUMA_PLUS_COLOUR
        )
    )


def _fit_classes(diff: np.ndarray, clean: np.ndarray, xy: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Class of each dot from its own share of the colour change, all dots fitted at once."""
    coords = [xy[:, 1], xy[:, 0]]
    amplitude = np.stack(
        [
            _unmix(diff[..., 0], xy, LUMA_SIGMA, FOOTPRINT[0]),
            _unmix(diff[..., 1], xy, FIT_CHROMA_SIGMA, FOOTPRINT[1]),
            _unmix(diff[..., 2], xy, FIT_CHROMA_SIGMA, FOOTPRINT[1]),
        ],
        axis=1,
    )
    under = np.stack(
        [map_coordinates(_blur(clean[..., 0], CLEAN_SIGMA[0]), coords, order=1)]
        + [map_coordinates(_blur(clean[..., c], CLEAN_SIGMA[1]), coords, order=1) for c in (1, 2)],
        axis=1,
    )
    gain = np.array([FIT_GAIN[0], FIT_GAIN[1], FIT_GAIN[1]])
    scale = np.array([FIT_NOISE[0], FIT_NOISE[1], FIT_NOISE[1]])
    u = amplitude / scale
    resid, cover = _class_residuals(u, under, colours, gain, scale)
    cls = resid.argmin(axis=1)
    # JPEG moves the apparent colour of some dots (a dark brown dot loses its chroma to clipping): take
    # each class's chroma from its clear members in this photo, then fit again.
    apparent = colours.copy()
    ranked = np.sort(resid, axis=1)
    clear = ranked[:, 1] - ranked[:, 0] >= CLEAR_MARGIN
    implied = under[:, 1:] + amplitude[:, 1:] / (gain[1:] * np.maximum(cover[np.arange(len(u)), cls], 0.1)[:, None])
    for k in range(len(colours)):
        members = clear & (cls == k)
        if members.sum() >= MIN_MEMBERS:
            apparent[k, 1:] = np.median(implied[members], axis=0)
    resid, _ = _class_residuals(u, under, apparent, gain, scale)
    cls = resid.argmin(axis=1)
    for _ in range(PRIOR_ROUNDS):  # empirical Bayes: the photo's class frequencies as the prior
        freq = np.bincount(cls, minlength=len(colours)) + 1.0
        cls = (resid / 2 - PRIOR_WEIGHT * np.log(freq / freq.sum())[None]).argmin(axis=1)
    return cast(np.ndarray, cls.astype(np.int64))


def _class_residuals(
    u: np.ndarray, under: np.ndarray, colours: np.ndarray, gain: np.ndarray, scale: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) squared residual of each dot's amplitudes u against each class, and the fitted coverage."""
    v = (colours[None] - under[:, None, :]) * gain / scale  # (N, K, 3)
    cover = np.clip((v * u[:, None, :]).sum(axis=2) / np.maximum((v**2).sum(axis=2), 1e-9), *COVERAGE)
    return ((u[:, None, :] - cover[..., None] * v) ** 2).sum(axis=2), cover


def _unmix(channel: np.ndarray, xy: np.ndarray, sigma: float, width: float) -> np.ndarray:
    """Peak amplitude of each dot's Gaussian footprint (of `width`) in `channel`, all dots at once.

    Smoothing with sigma and sampling at the dots gives A @ u, where A[i, j] is the overlap of the
    smoothed footprints of dots i and j: a sparse, well-conditioned system (with a small ridge)."""
    rhs = map_coordinates(_blur(channel, sigma), [xy[:, 1], xy[:, 0]], order=1)
    w2 = width**2 + sigma**2
    peak = width**2 / w2
    pairs = cKDTree(xy).query_pairs(4 * np.sqrt(w2), output_type="ndarray").reshape(-1, 2)
    d2 = ((xy[pairs[:, 0]] - xy[pairs[:, 1]]) ** 2).sum(axis=1)
    off = peak * np.exp(-d2 / (2 * w2))
    n = len(xy)
    rows = np.concatenate([pairs[:, 0], pairs[:, 1], np.arange(n)])
    cols = np.concatenate([pairs[:, 1], pairs[:, 0], np.arange(n)])
    vals = np.concatenate([off, off, np.full(n, peak * (1 + FIT_RIDGE))])
    matrix = sp.csc_matrix((vals, (rows, cols)), shape=(n, n))
    return np.atleast_1d(spl.spsolve(matrix, rhs))
