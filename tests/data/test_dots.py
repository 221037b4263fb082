"""Painted dots -> points: the real sea lion sample, synthetic surveys, and the per-image functions."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from rookery.data.classes import SEALION_CLASSES, Classes, ClassSpec
from rookery.data.dots import DotsReport, UnknownDot, find_dots, find_dots_painted, find_dots_pair
from rookery.data.points_csv import read_counts_csv, read_points_csv
from rookery.data.synthetic import generate_survey
from rookery.imaging import read_image
from rookery.types import Points

RED, BLUE, BROWN = (243, 8, 5), (25, 56, 176), (87, 46, 10)


def max_match_distance(truth: np.ndarray, found: np.ndarray) -> float:
    """Largest distance of a one-to-one matching (Hungarian) of two equally long point sets."""
    assert len(truth) == len(found)
    if not len(truth):
        return 0.0
    cost = cdist(truth, found)
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].max())


def assert_same_points(truth: Points, found: Points, num_classes: int, tolerance: float) -> None:
    np.testing.assert_array_equal(found.counts(num_classes), truth.counts(num_classes))
    for k in range(num_classes):
        assert max_match_distance(truth.xy[truth.cls == k], found.xy[found.cls == k]) <= tolerance


# --- the real sample ---------------------------------------------------------------------------------


def test_painted_only_full_resolution_photo_gives_the_published_counts(sealions):
    bgr = read_image(sealions / "dotted_fullres" / "8.jpg")
    points, ignore, unknown = find_dots_painted(bgr, SEALION_CLASSES, "8")
    counts = read_counts_csv(sealions / "counts.csv", SEALION_CLASSES)["8"]
    np.testing.assert_array_equal(points.counts(5), counts)
    # Every point lies within 1.5 px of its true point, once mapped to the 1/4 frame of points.csv.
    truth = read_points_csv(sealions / "points.csv", SEALION_CLASSES)["8"].points
    quarter = Points((points.xy - 1.5) / 4, points.cls)
    assert_same_points(truth, quarter, 5, tolerance=1.5)
    assert unknown == []
    # The ignore mask is the blacked-out region: its 1/4 copy agrees with masks/8.png.
    mask = read_image(sealions / "masks" / "8.png", cv2.IMREAD_GRAYSCALE)
    small = cv2.resize(np.where(ignore, 0, 255).astype(np.uint8), mask.shape[::-1], interpolation=cv2.INTER_AREA)
    assert np.mean((small > 127) == (mask > 127)) > 0.99


@pytest.fixture(scope="module")
def sample_pairs(sealions) -> DotsReport:
    return find_dots(sealions / "dotted", SEALION_CLASSES, images_dir=sealions / "train", workers=1)


# Criteria the dense colony of image 0 does not meet at 1/4 scale (see the xfail test below).
KNOWN_LIMITS = {("0", "pups"), ("0", "total")}


@pytest.mark.parametrize("image", ["0", "1", "4", "6", "8"])  # every downscaled pair of the sample
def test_pair_mode_counts_on_the_downscaled_sample(sealions, sample_pairs, image):
    """Total within 5 %, and each class with at least 20 animals within 10 %."""
    labels = {lab.image: lab for lab in sample_pairs.labels}
    found = labels[image].points.counts(5)
    true = read_counts_csv(sealions / "counts.csv", SEALION_CLASSES)[image]
    checks = [("total", found.sum(), true.sum(), 0.05)]
    checks += [(n, f, t, 0.10) for n, f, t in zip(SEALION_CLASSES.names, found, true, strict=True) if t >= 20]
    for name, f, t, tolerance in checks:
        if (image, name) not in KNOWN_LIMITS:
            assert abs(int(f) - int(t)) <= tolerance * t, f"image {image} {name}: found {f}, true {t}"
    assert labels[image].size == read_image(sealions / "train" / f"{image}.jpg").shape[1::-1]


@pytest.mark.xfail(
    strict=True,
    reason="at 1/4 scale about 30 % of the pups of the dense colony (image 0) leave only a JPEG-level "
    "colour trace, no stronger than the chroma noise of the pair: ~240 of 344 are found (a matched green "
    "filter on the residual with a local noise estimate adds missed pups and noise peaks about 1:1)",
)
def test_pair_mode_finds_the_pups_of_the_dense_colony(sealions, sample_pairs):
    found = next(lab for lab in sample_pairs.labels if lab.image == "0").points.counts(5)
    true = read_counts_csv(sealions / "counts.csv", SEALION_CLASSES)["0"]
    assert abs(int(found[4]) - int(true[4])) <= 0.10 * true[4]
    assert abs(int(found.sum()) - int(true.sum())) <= 0.05 * true.sum()


def test_pair_mode_points_sit_on_true_dots(sealions, sample_pairs):
    """Almost every point found in the downscaled pairs is within 2 px of a true point: at most 6 %
    (or 2) are JPEG noise taken for a dot."""
    truth = read_points_csv(sealions / "points.csv", SEALION_CLASSES)
    for lab in sample_pairs.labels:
        nearest = cdist(lab.points.xy, truth[lab.image].points.xy).min(axis=1)
        assert (nearest > 2.0).sum() <= max(2, 0.06 * len(nearest)), lab.image
    assert sample_pairs.skipped == [] and sample_pairs.unknown == []


# --- synthetic surveys -----------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["synth_survey", "synth_survey_jpg"])  # lossless and JPEG photos
@pytest.mark.parametrize("pair", [True, False])  # pair mode, painted-only mode
def test_synthetic_points_equal_the_generators(request, fixture, pair):
    survey = request.getfixturevalue(fixture)
    images = survey.out / "train" if pair else None
    report = find_dots(survey.out / "dotted", survey.classes, images_dir=images, workers=1)
    assert report.skipped == [] and report.unknown == []
    truth = read_points_csv(survey.out / "points.csv", survey.classes)
    assert [lab.image for lab in report.labels] == survey.images
    for lab in report.labels:
        assert lab.size == (1600, 1200)
        assert_same_points(truth[lab.image].points, lab.points, len(survey.classes), tolerance=1.0)


@pytest.mark.parametrize(
    "scale, image_format",
    [
        (0.5, "png"),  # dots of radius 2
        (0.75, "png"),  # radius 3
        (0.75, "jpg"),  # radius 3, JPEG: a small magenta dot keeps less of its colour
    ],
)
def test_painted_only_mode_finds_dots_smaller_than_the_usual(tmp_path, scale, image_format):
    """The centre test adapts to small dots (at half scale with JPEG, most vivid dots are lost: pair mode)."""
    survey = generate_survey(
        tmp_path, images=1, size=(1000, 750), num_classes=5, seed=2, workers=1, image_format=image_format,
        object_scale=scale,
    )  # fmt: skip
    report = find_dots(survey.out / "dotted", survey.classes, workers=1)
    truth = read_points_csv(survey.out / "points.csv", survey.classes)["0"].points
    assert report.unknown == [] and len(truth) > 20
    assert_same_points(truth, report.labels[0].points, 5, tolerance=1.0)


@pytest.mark.parametrize("pair", [True, False])  # pair mode, painted-only mode
def test_masks_out_writes_the_blacked_out_regions(synth_survey, tmp_path, pair):
    images = synth_survey.out / "train" if pair else None
    find_dots(synth_survey.out / "dotted", synth_survey.classes, images, masks_out=tmp_path / "m", workers=1)
    for name in synth_survey.images:
        written = read_image(tmp_path / "m" / f"{name}.png", cv2.IMREAD_GRAYSCALE)
        truth = read_image(synth_survey.out / "masks" / f"{name}.png", cv2.IMREAD_GRAYSCALE)
        assert set(np.unique(written)) <= {0, 255}
        assert np.mean(written == truth) > 0.995


def test_workers_give_the_same_points(synth_survey_jpg):
    def run(workers: int) -> list[tuple[str, list, list]]:
        report = find_dots(synth_survey_jpg.out / "dotted", synth_survey_jpg.classes, workers=workers)
        return [(lab.image, lab.points.xy.tolist(), lab.points.cls.tolist()) for lab in report.labels]

    assert run(2) == run(1)


# --- small scenes built here -----------------------------------------------------------------------


def scene(seed: int = 0, size: tuple[int, int] = (240, 320)) -> np.ndarray:
    """A grey, grainy background (BGR)."""
    rng = np.random.default_rng(seed)
    grain = rng.integers(-6, 7, size=(*size, 1))
    return np.clip(np.array([120, 125, 130]) + grain, 0, 255).astype(np.uint8)


def paint(image: np.ndarray, dots: list[tuple[int, int, tuple[int, int, int]]], radius: int = 5) -> np.ndarray:
    out = image.copy()
    for x, y, rgb in dots:
        cv2.circle(out, (x, y), radius, rgb[::-1], -1)
    return out


THREE = Classes((ClassSpec("males", RED), ClassSpec("females", BROWN), ClassSpec("juveniles", BLUE)))


@pytest.mark.parametrize(
    "touching, expected",
    [
        ([(150, 100, RED), (160, 100, RED)], [(150, 100, 0), (160, 100, 0)]),  # two red dots touching
        ([(150, 100, RED), (160, 100, BLUE)], [(150, 100, 0), (160, 100, 2)]),  # red touching blue
    ],
)
@pytest.mark.parametrize("pair", [True, False])  # pair mode, painted-only mode
def test_touching_dots_give_two_points(touching, expected, pair):
    singles = [(40, 40, RED), (40, 120, RED), (40, 200, RED), (260, 60, BLUE)]
    clean = scene()
    painted = paint(clean, singles + touching)
    points = (find_dots_pair(clean, painted, THREE) if pair else find_dots_painted(painted, THREE))[0]
    truth = Points(
        np.array([(x, y) for x, y, _ in singles] + [(x, y) for x, y, _ in expected], float),
        np.array([0, 0, 0, 2] + [k for *_, k in expected]),
    )
    assert_same_points(truth, points, 3, tolerance=1.0)


def test_brown_dots_are_told_apart_from_brown_rocks():
    """A rock of a brown close to the dots' (many of its pixels within the colour tolerance) holds no
    dot; the brown dots on and off it are found."""
    rng = np.random.default_rng(1)
    painted = scene(2)
    rock_brown = np.array((110, 70, 40))  # RGB: 23-30 from the dot colour in each channel
    rock = np.clip(rock_brown[::-1] + rng.normal(0, 25, size=(120, 160, 3)), 0, 255).astype(np.uint8)
    painted[60:180, 80:240] = cv2.GaussianBlur(rock, (0, 0), 1.5)
    dots = [(120, 100, BROWN), (200, 150, BROWN), (30, 30, BROWN)]
    points, _, _ = find_dots_painted(paint(painted, dots, radius=4), THREE)
    truth = Points(np.array([(x, y) for x, y, _ in dots], float), np.ones(3, np.int64))
    assert_same_points(truth, points, 3, tolerance=1.0)


@pytest.mark.parametrize(
    "rim, core",
    [
        (BROWN, (112, 71, 35)),  # a centre 25 levels lighter per channel (as shading on an animal)
        (RED, (200, 40, 40)),  # a duller centre: within the red tolerance, 64 from the colour
    ],
)
def test_a_rim_of_dot_colour_without_its_centre_is_no_dot(rim, core):
    """Painted-only mode: a blob whose pixels are within the colour tolerance on average but whose
    centre (radius 2.5 px) is far from the class colour is not paint; the real dots beside it are."""
    dots = [(220, 60, BROWN), (250, 180, RED)]
    painted = paint(scene(5), [*dots, (100, 120, rim)], radius=4)
    cv2.circle(painted, (100, 120), 3, core[::-1], -1)
    points, _, unknown = find_dots_painted(painted, THREE)
    truth = Points(np.array([(220, 60), (250, 180)], float), np.array([1, 0]))
    assert_same_points(truth, points, 3, tolerance=0.5)
    assert unknown == []


def test_blacked_out_regions_are_ignored_and_returned():
    """A blacked-out region is no difference to explain, and dots just outside it count."""
    clean = paint(scene(3), [(150, 150, (60, 200, 230))])  # something vivid in the ignored region
    painted = paint(clean, [(60, 60, RED), (250, 180, BLUE), (100, 208, RED)])
    painted[100:200, 100:200] = 0
    for points, ignore, unknown in (find_dots_pair(clean, painted, THREE), find_dots_painted(painted, THREE)):
        assert points.counts(3).tolist() == [2, 0, 1] and unknown == []
        assert ignore.dtype == bool and ignore[120, 120] and not ignore[20, 20]
        assert 0.9 < ignore.sum() / 10_000 <= 1.0


def test_unknown_colour_is_reported_with_its_position_not_counted():
    clean = scene(4)
    green = (38, 174, 21)  # no class of THREE has it
    painted = paint(clean, [(60, 60, RED), (200, 120, green)])
    for points, _, unknown in (
        find_dots_pair(clean, painted, THREE, "a"),
        find_dots_painted(painted, THREE, "a"),
    ):
        assert points.counts(3).tolist() == [1, 0, 0]
        assert len(unknown) == 1
        dot = unknown[0]
        assert dot.image == "a" and abs(dot.x - 200) <= 1 and abs(dot.y - 120) <= 1
        assert np.abs(np.array(dot.rgb) - green).max() <= 10


def test_unknown_dot_reads_as_one_sentence():
    text = str(UnknownDot("17", 10.4, 20.6, (38, 174, 21)))
    assert text.startswith("17: ") and ". " not in text and not text.endswith(".") and "(38, 174, 21)" in text
    assert "x=10" in text and "y=21" in text and "not counted" in text
