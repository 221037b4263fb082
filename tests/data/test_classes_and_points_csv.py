"""classes.yaml and the points.csv / counts.csv exchange files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rookery.data.classes import SEALION_CLASSES, Classes
from rookery.data.points_csv import read_counts_csv, read_points_csv, write_counts_csv, write_points_csv
from rookery.errors import ConfigError, InputError
from rookery.types import ImageLabels, Points


def test_classes_accept_both_forms_and_keep_order(tmp_path: Path):
    path = tmp_path / "classes.yaml"
    path.write_text("seal: [1, 2, 3]\npup: {color: [4, 5, 6], box: 20}\n")
    classes = Classes.load(path)
    assert classes.names == ["seal", "pup"]
    assert classes.colors == [(1, 2, 3), (4, 5, 6)]
    assert [c.box for c in classes] == [None, 20.0]
    classes.save(path)
    assert Classes.load(path) == classes


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seal: [1, 2]\n", "needs a colour"),  # two channels
        ("seal: [1, 2, 300]\n", "needs a colour"),  # out of range
        ("seal: {color: [1, 2, 3], box: -4}\n", "positive number"),  # negative box
        ("- seal\n", "must map each class name"),  # a list, not a mapping
        ("seal: [1, 2\n", "not valid YAML"),  # broken YAML
    ],
)
def test_bad_classes_files_say_what_is_wrong(tmp_path: Path, text: str, message: str):
    path = tmp_path / "classes.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        Classes.load(path)


def test_missing_classes_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        Classes.load(tmp_path / "nope.yaml")


def test_points_csv_round_trip(tmp_path: Path):
    labels = [
        ImageLabels("a", Points([[1.5, 2.25], [3, 4]], [0, 4])),
        ImageLabels("b", Points([[10, 20]], [2])),
    ]
    write_points_csv(tmp_path / "points.csv", labels, SEALION_CLASSES)
    back = read_points_csv(tmp_path / "points.csv", SEALION_CLASSES)
    assert list(back) == ["a", "b"]
    np.testing.assert_allclose(back["a"].points.xy, labels[0].points.xy)
    assert back["a"].points.cls.tolist() == [0, 4]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("image,x,y\n0,1,2\n", "lacks the column"),  # no class column
        ("image,x,y,class\n0,one,2,pups\n", "line 2: x and y must be finite numbers"),  # not a number
        ("image,x,y,class\n0,1,2,pups\n0,nan,2,pups\n", "line 3: x and y must be finite"),  # NaN
        ("image,x,y,class\n0,1,2,walrus\n", "class 'walrus' is not in classes.yaml"),  # unknown class
    ],
)
def test_bad_points_csv(tmp_path: Path, body: str, message: str):
    path = tmp_path / "points.csv"
    path.write_text(body)
    with pytest.raises(InputError, match=message):
        read_points_csv(path, SEALION_CLASSES)


def test_real_counts_equal_real_points(sealions: Path):
    # The shipped sample's counts.csv is the per-image tally of its points.csv.
    points = read_points_csv(sealions / "points.csv", SEALION_CLASSES)
    counts = read_counts_csv(sealions / "counts.csv", SEALION_CLASSES)
    for image, c in counts.items():
        assert points[image].points.counts(len(SEALION_CLASSES)).tolist() == c.tolist()


def test_counts_csv_round_trip(tmp_path: Path):
    counts = {"0": np.array([1, 2, 3, 4, 5]), "1": np.array([0, 0, 0, 0, 7])}
    write_counts_csv(tmp_path / "counts.csv", counts, SEALION_CLASSES)
    back = read_counts_csv(tmp_path / "counts.csv", SEALION_CLASSES)
    assert {k: v.tolist() for k, v in back.items()} == {k: v.tolist() for k, v in counts.items()}
    assert (tmp_path / "counts.csv").read_text().splitlines()[1].endswith(",15")
