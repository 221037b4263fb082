"""Painted dots removed from painted-only photos (inpainted), so that they can be trained on."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_dots import BROWN, RED, THREE, paint, scene
from test_dots_fullres import sealions_fullres  # noqa: F401 - the fixture

from rookery.data.classes import SEALION_CLASSES, Classes
from rookery.data.dots import find_dots, find_dots_painted
from rookery.data.dots_colour import DULL_EUCLID_TOLERANCE, EUCLID_TOLERANCE, is_vivid
from rookery.data.inpaint import LOSSLESS_MARGIN, MARGIN, remove_dots, rim_margin
from rookery.errors import InputError
from rookery.imaging import read_image
from rookery.types import Points

CORE = 4.0  # px around a found dot in which no pixel may keep a class colour
FAR = 12.0  # px from every dot beyond which nothing may change


def near(shape: tuple[int, ...], xy: np.ndarray, radius: float) -> np.ndarray:
    """bool: pixels within `radius` of any of the points."""
    mask = np.zeros(shape[:2], np.uint8)
    for x, y in xy:
        cv2.circle(mask, (round(x * 16), round(y * 16)), round(radius * 16), 255, -1, shift=4)
    return mask > 0


def paint_left(bgr: np.ndarray, xy: np.ndarray, classes: Classes) -> int:
    """Pixels within CORE of a dot still within the colour tolerance of a class colour (the Euclidean
    tolerance that places a dot: 45, 20 for a dull colour)."""
    pix = bgr[near(bgr.shape, xy, CORE)].astype(np.float64)
    colours = np.array([c[::-1] for c in classes.colors], np.float64)
    tol = np.where(is_vivid(classes), EUCLID_TOLERANCE, DULL_EUCLID_TOLERANCE)
    return int((np.linalg.norm(pix[:, None] - colours[None], axis=2) <= tol[None]).any(axis=1).sum())


def check_cleaned(painted: np.ndarray, clean: np.ndarray, holes: np.ndarray, points: Points, classes: Classes):
    assert paint_left(painted, points.xy, classes) > 0  # the check sees paint where there is some
    assert paint_left(clean, points.xy, classes) == 0
    untouched = holes == 0
    np.testing.assert_array_equal(clean[untouched], painted[untouched])
    assert not (holes > 0)[~near(holes.shape, points.xy, FAR)].any()  # only discs around the dots


def error_near_dots(bgr: np.ndarray, twin: np.ndarray, xy: np.ndarray, ignore: np.ndarray) -> float:
    """Mean absolute difference from the clean twin within 8 px of the dots, outside the blacked-out
    regions."""
    around = near(bgr.shape, xy, 8.0) & ~ignore
    return float(np.abs(bgr[around].astype(np.int16) - twin[around].astype(np.int16)).mean())


# --- synthetic surveys -----------------------------------------------------------------------------


@pytest.mark.parametrize("margin", [LOSSLESS_MARGIN, MARGIN])  # for lossless photos, for JPEG
def test_synthetic_dots_are_removed_and_nothing_else_changes(synth_survey, margin):
    painted = read_image(synth_survey.out / "dotted" / "0.png")
    twin = read_image(synth_survey.out / "train" / "0.png")
    points, ignore, _ = find_dots_painted(painted, synth_survey.classes)
    clean, holes = remove_dots(painted, points, synth_survey.classes, margin)
    check_cleaned(painted, clean, holes, points, synth_survey.classes)
    # What fills a dot is close to what the paint hid (the synthetic clean twin), on animals wider than
    # a dot; a synthetic pup (~10 px wide) mostly vanishes under its disc.
    large = points.xy[points.cls != synth_survey.classes.index("pups")]
    before, after = (error_near_dots(im, twin, large, ignore) for im in (painted, clean))
    assert after < (0.15 if margin == LOSSLESS_MARGIN else 0.35) * before


def test_colour_that_is_not_a_dot_is_left_alone():
    """A blob of dot colour whose centre lacks it (not a dot) keeps its pixels; the real dots go."""
    painted = paint(scene(5), [(220, 60, BROWN), (250, 180, RED), (100, 120, BROWN)], radius=4)
    cv2.circle(painted, (100, 120), 3, (35, 71, 112), -1)  # BGR: the centre 25 levels off the brown
    points, _, _ = find_dots_painted(painted, THREE)
    assert len(points) == 2
    clean, holes = remove_dots(painted, points, THREE)
    check_cleaned(painted, clean, holes, points, THREE)
    np.testing.assert_array_equal(clean[110:131, 90:111], painted[110:131, 90:111])


def test_find_dots_writes_the_cleaned_photos(synth_survey, synth_survey_jpg, tmp_path: Path):
    """Lossless photos stay lossless (<image>.png, exactly what remove_dots gives), JPEG ones become
    <image>.jpg (quality 95)."""
    for survey, suffix in ((synth_survey, ".png"), (synth_survey_jpg, ".jpg")):
        out = tmp_path / suffix[1:]
        report = find_dots(survey.out / "dotted", survey.classes, masks_out=out / "m", clean_out=out / "c", workers=1)
        assert sorted(p.name for p in (out / "c").iterdir()) == [f"{n}{suffix}" for n in survey.images]
        for lab in report.labels:
            painted = read_image(next((survey.out / "dotted").glob(f"{lab.image}.*")))
            expected, _ = remove_dots(painted, lab.points, survey.classes, rim_margin(suffix))
            written = read_image(out / "c" / f"{lab.image}{suffix}")
            diff = np.abs(written.astype(np.int16) - expected.astype(np.int16))
            assert diff.max() == 0 if suffix == ".png" else diff.mean() < 1.5
            assert paint_left(written, lab.points.xy, survey.classes) == 0


def test_dots_of_an_unknown_colour_are_removed_too(synth_survey, tmp_path: Path):
    """Without pups in classes.yaml their green dots are not counted, but they are paint all the same."""
    partial = Classes(tuple(s for s in synth_survey.classes if s.name != "pups"))
    report = find_dots(synth_survey.out / "dotted", partial, masks_out=tmp_path / "m", clean_out=tmp_path / "c")
    unknown = np.array([(u.x, u.y) for u in report.unknown if u.image == "0"])
    assert len(unknown) > 0
    clean = read_image(tmp_path / "c" / "0.png")
    assert paint_left(read_image(synth_survey.out / "dotted" / "0.png"), unknown, synth_survey.classes) > 0
    assert paint_left(clean, unknown, synth_survey.classes) == 0


@pytest.mark.parametrize(
    "where, words",
    [
        ("pair", "in pair mode the clean photos"),  # with the clean photos given
        ("dotted", "a folder of their own"),  # into the folder of the painted photos
        ("masks", "a folder of their own"),  # into the folder of the masks
    ],
)
def test_clean_out_is_refused_where_it_would_do_harm(synth_survey, tmp_path: Path, where, words):
    dotted = tmp_path / "dotted"
    shutil.copytree(synth_survey.out / "dotted", dotted)
    clean_out = {"pair": tmp_path / "c", "dotted": dotted, "masks": tmp_path / "m"}[where]
    images = synth_survey.out / "train" if where == "pair" else None
    with pytest.raises(InputError, match=words):
        find_dots(dotted, synth_survey.classes, images, masks_out=tmp_path / "m", clean_out=clean_out)
    assert sorted(p.name for p in dotted.iterdir()) == sorted(f"{n}.png" for n in synth_survey.images)


# --- the real full-resolution sample -----------------------------------------------------------------


@pytest.mark.parametrize(
    "folder, image",
    [
        ("dotted", "42"),  # a pair: the clean twin shows what the paint hides
        ("dotted_only", "41"),  # painted only, with a dark brown spot on an animal that is no dot
    ],
)
def test_real_dots_are_removed_and_nothing_else_changes(sealions_fullres, folder, image):  # noqa: F811
    painted = read_image(sealions_fullres / folder / f"{image}.jpg")
    points, ignore, _ = find_dots_painted(painted, SEALION_CLASSES, image)
    clean, holes = remove_dots(painted, points, SEALION_CLASSES)
    check_cleaned(painted, clean, holes, points, SEALION_CLASSES)
    if folder == "dotted":
        twin = read_image(sealions_fullres / "train" / f"{image}.jpg")
        before, after = (error_near_dots(im, twin, points.xy, ignore) for im in (painted, clean))
        assert after < 0.5 * before
        # Hardly any paint is left around the discs: pixels off the clean twin by more than 20 levels.
        off = np.abs(painted.astype(np.int16) - twin.astype(np.int16)).max(axis=2) > 20
        assert (off & (holes == 0) & near(off.shape, points.xy, FAR)).sum() <= 5
    else:
        spot = np.s_[1722:1735, 3278:3291]  # the brown shading at (3284, 1728), rejected as a dot
        np.testing.assert_array_equal(clean[spot], painted[spot])
