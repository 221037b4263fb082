"""Painted-only mode on every shared full-resolution photo: every dot, with its class, and nothing else."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from rookery.data.classes import SEALION_CLASSES
from rookery.data.dots import find_dots_painted
from rookery.data.points_csv import read_points_csv
from rookery.imaging import read_image
from rookery.types import Points

REPO = Path(__file__).resolve().parents[2]
FULLRES = Path(os.environ.get("ROOKERY_SEALIONS_FULLRES_DIR", REPO.parent / "shared" / "data" / "sealions-fullres"))
TOLERANCE = 2.0  # px between a found point and its true point


@pytest.fixture(scope="session")
def sealions_fullres() -> Path:
    """The full-resolution sea lion sample; tests that need it skip with a reason when it is absent."""
    if not (FULLRES / "points.csv").is_file():
        pytest.skip(f"full-resolution sea lion sample not found at {FULLRES} (set ROOKERY_SEALIONS_FULLRES_DIR)")
    return FULLRES


def unmatched(truth: Points, found: Points, tolerance: float) -> list[str]:
    """Found points with no true point of their class within `tolerance` (matched one-to-one), and true
    points left without one: empty when the two sets agree."""
    problems = []
    for k, name in enumerate(SEALION_CLASSES.names):
        t, f = truth.xy[truth.cls == k], found.xy[found.cls == k]
        cost = cdist(f, t) if len(t) and len(f) else np.zeros((len(f), len(t)))
        rows, cols = linear_sum_assignment(cost)
        good = cost[rows, cols] <= tolerance
        extra = np.setdiff1d(np.arange(len(f)), rows[good])
        missed = np.setdiff1d(np.arange(len(t)), cols[good])
        problems += [f"{name} found at {np.round(f[i], 1).tolist()} matches no true dot" for i in extra]
        problems += [f"{name} at {np.round(t[j], 1).tolist()} not found" for j in missed]
    return problems


@pytest.mark.parametrize(
    "folder, image",
    [
        ("dotted", "42"),  # pair: 22 animals, 4 classes
        ("dotted", "44"),  # pair: 45 animals
        ("dotted", "50"),  # pair: a single adult male, an almost empty frame
        ("dotted_only", "41"),  # 177 animals with pups; dark brown shading on an animal that is no dot
        ("dotted_only", "45"),  # 138 animals, 100 adult females
        ("dotted_only", "49"),  # 19 animals
        ("dotted_only", "100"),  # 96 animals with pups, 29 % blacked out
        ("dotted_only", "640"),  # 52 animals
    ],
)
def test_painted_only_mode_finds_every_dot_of_the_full_resolution_sample(sealions_fullres, folder, image):
    painted = read_image(sealions_fullres / folder / f"{image}.jpg")
    points, ignore, unknown = find_dots_painted(painted, SEALION_CLASSES, image)
    truth = read_points_csv(sealions_fullres / "points.csv", SEALION_CLASSES)[image].points
    np.testing.assert_array_equal(points.counts(5), truth.counts(5))
    assert unmatched(truth, points, TOLERANCE) == [] and unknown == []
    mask = read_image(sealions_fullres / "masks" / f"{image}.png", cv2.IMREAD_GRAYSCALE) > 127
    assert np.mean(mask == ~ignore) > 0.995  # the blacked-out region, to its JPEG-blurred edge


def test_painted_only_mode_finds_every_dot_of_the_full_resolution_photo_8(sealions):
    """The full-resolution painted photo of image 8, against its points in 1/4-scale coordinates."""
    painted = read_image(sealions / "dotted_fullres" / "8.jpg")
    points, _, unknown = find_dots_painted(painted, SEALION_CLASSES, "8")
    quarter = read_points_csv(sealions / "points.csv", SEALION_CLASSES)["8"].points
    truth = Points(quarter.xy * 4 + 1.5, quarter.cls)  # x = (col - 1.5) / 4
    np.testing.assert_array_equal(points.counts(5), truth.counts(5))
    assert unmatched(truth, points, TOLERANCE) == [] and unknown == []
