"""Bad input to the dots finder: each is reported in one sentence, and the good photos are kept."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from rookery.data.classes import Classes
from rookery.data.dots import find_dots, find_dots_pair
from rookery.data.points_csv import read_points_csv
from rookery.errors import InputError, RookeryError
from rookery.imaging import read_image, write_image


def _copy_pair(survey, name: str, dest: Path, as_name: str | None = None) -> None:
    for sub in ("train", "dotted"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy(survey.out / sub / f"{name}.png", dest / sub / f"{as_name or name}.png")


def _corrupt(survey, root: Path) -> None:
    (root / "dotted" / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    (root / "train" / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")


def _smaller(survey, root: Path) -> None:
    _copy_pair(survey, "1", root, "small")
    painted = read_image(root / "dotted" / "small.png")
    write_image(root / "dotted" / "small.png", cv2.resize(painted, (800, 600), interpolation=cv2.INTER_AREA))


def _rotated(survey, root: Path) -> None:
    _copy_pair(survey, "1", root, "rot")
    painted = read_image(root / "dotted" / "rot.png")
    write_image(root / "dotted" / "rot.png", cv2.rotate(painted, cv2.ROTATE_180))


def _other_region(survey, root: Path) -> None:
    _copy_pair(survey, "1", root, "other")
    shutil.copy(survey.out / "dotted" / "2.png", root / "dotted" / "other.png")


def _patched(survey, root: Path) -> None:
    _copy_pair(survey, "1", root, "patched")
    painted = read_image(root / "dotted" / "patched.png")
    painted[100:280, 100:280] = read_image(survey.out / "train" / "2.png")[500:680, 700:880]
    write_image(root / "dotted" / "patched.png", painted)


def _no_twin(survey, root: Path) -> None:
    _copy_pair(survey, "1", root, "lonely")
    (root / "train" / "lonely.png").unlink()


@pytest.mark.parametrize(
    "make, name, words",
    [
        (_corrupt, "bad", "not a readable image"),  # a file that is no image
        (_smaller, "small", "must be the same size"),  # painted copy of another size
        (_rotated, "rot", "not the same photo"),  # painted copy rotated 180 degrees
        (_other_region, "other", "not the same photo"),  # the painted photo of another region
        (_patched, "patched", "in large patches"),  # a patch of another photo pasted into the painted one
        (_no_twin, "lonely", "no clean photo named lonely"),  # a painted photo without its clean twin
    ],
)
def test_bad_pair_is_skipped_with_its_reason_and_the_good_one_kept(
    synth_survey, tmp_path: Path, make: Callable, name: str, words: str
):
    _copy_pair(synth_survey, "0", tmp_path)
    make(synth_survey, tmp_path)
    report = find_dots(tmp_path / "dotted", synth_survey.classes, images_dir=tmp_path / "train", workers=1)
    assert [lab.image for lab in report.labels] == ["0"]
    truth = read_points_csv(synth_survey.out / "points.csv", synth_survey.classes)["0"].points
    np.testing.assert_array_equal(report.labels[0].points.counts(3), truth.counts(3))
    assert len(report.skipped) == 1
    skipped = report.skipped[0]
    assert skipped.item == name and words in skipped.reason
    assert skipped.reason.count(". ") == 0 and not skipped.reason.endswith(".")  # one sentence


def test_corrupt_painted_photo_is_skipped_in_painted_only_mode(synth_survey, tmp_path: Path):
    _copy_pair(synth_survey, "0", tmp_path)
    _corrupt(synth_survey, tmp_path)
    report = find_dots(tmp_path / "dotted", synth_survey.classes, workers=1)
    assert [lab.image for lab in report.labels] == ["0"]
    assert [(s.item, "not a readable image" in s.reason) for s in report.skipped] == [("bad", True)]


@pytest.mark.parametrize("pair", [True, False])  # pair mode, painted-only mode
def test_class_missing_from_classes_yaml_is_reported_as_unknown_dots(synth_survey, tmp_path: Path, pair):
    """Without pups in classes.yaml, their green dots are reported with their colour, not counted,
    and the other classes are found as before."""
    _copy_pair(synth_survey, "0", tmp_path)
    _copy_pair(synth_survey, "1", tmp_path)
    full = synth_survey.classes
    partial = Classes(tuple(s for s in full if s.name != "pups"))
    images = tmp_path / "train" if pair else None
    report = find_dots(tmp_path / "dotted", partial, images_dir=images, workers=1)
    truth = read_points_csv(synth_survey.out / "points.csv", full)
    pups = full.index("pups")
    assert [lab.image for lab in report.labels] == ["0", "1"] and report.skipped == []
    for lab in report.labels:
        expected = [int(c) for k, c in enumerate(truth[lab.image].points.counts(3)) if k != pups]
        assert lab.points.counts(2).tolist() == expected
        unknown = [u for u in report.unknown if u.image == lab.image]
        true_pups = truth[lab.image].points.xy[truth[lab.image].points.cls == pups]
        assert len(unknown) == len(true_pups) > 0
        found = np.array([(u.x, u.y) for u in unknown])
        assert np.abs(np.sort(found, axis=0) - np.sort(true_pups, axis=0)).max() <= 1.0
        for u in unknown:
            assert np.abs(np.array(u.rgb) - full.specs[pups].color).max() <= 40
            assert str(u).startswith(f"{lab.image}: ")


@pytest.mark.parametrize(
    "files",
    [
        [],  # an empty folder
        ["notes.txt", "points.csv"],  # a folder with no images
    ],
)
def test_folder_without_images_is_an_error(synth_survey, tmp_path: Path, files: list[str]):
    for f in files:
        (tmp_path / f).write_text("x")
    with pytest.raises(RookeryError, match="holds no images"):
        find_dots(tmp_path, synth_survey.classes)


@pytest.mark.parametrize(
    "dotted, images, words",
    [
        ("missing", None, "is not a folder"),  # the painted photos' folder does not exist
        ("dotted", "missing", "(the clean photos) is not a folder"),  # neither does the clean one
    ],
)
def test_missing_folder_is_an_input_error(synth_survey, dotted, images, words):
    root = synth_survey.out
    with pytest.raises(InputError, match=words.replace("(", r"\(").replace(")", r"\)")):
        find_dots(root / dotted, synth_survey.classes, images_dir=None if images is None else root / images)


@pytest.mark.parametrize(
    "clean, painted, words",
    [
        (np.zeros((40, 60, 3), np.uint8), np.zeros((60, 40, 3), np.uint8), "same size"),  # transposed
        (np.zeros((40, 60), np.uint8), np.zeros((40, 60), np.uint8), "(H, W, 3) uint8"),  # grey images
        (np.zeros((40, 60, 3), np.float32), np.zeros((40, 60, 3), np.uint8), "(H, W, 3) uint8"),  # floats
    ],
)
def test_pair_arrays_are_checked(clean, painted, words):
    with pytest.raises(InputError, match=words.replace("(", r"\(").replace(")", r"\)")):
        find_dots_pair(clean, painted, Classes.from_dict({"a": [255, 0, 0]}))
