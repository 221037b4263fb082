"""Ground resolution: photos of two scales become one data set, and counting resizes each photo alike."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from rookery.data.classes import Classes
from rookery.data.dataset import BuildParams, build_dataset
from rookery.data.scale import frame_scale
from rookery.inference.canonical import Canonical, scaled_groups
from rookery.inference.options import PredictOptions


@pytest.fixture(scope="module")
def two_scales(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic survey at full size (640x480) plus a half-size copy of each photo (320x240): the same
    animals, at two ground resolutions, as a survey's full frames and their downscaled copies."""
    from rookery.data.synthetic import generate_survey

    root = tmp_path_factory.mktemp("scales")
    survey = generate_survey(root / "survey", images=2, size=(640, 480), num_classes=2, seed=3, workers=1).out
    out = root / "mixed"
    (out / "train").mkdir(parents=True)
    (out / "masks").mkdir()
    rows = ["image,x,y,class"]
    lines = (survey / "points.csv").read_text().splitlines()[1:]
    for path in sorted((survey / "train").glob("*.jpg")):
        image = cv2.imread(str(path))
        mask = cv2.imread(str(survey / "masks" / f"{path.stem}.png"), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(out / "train" / f"{path.stem}.jpg"), image)
        cv2.imwrite(str(out / "masks" / f"{path.stem}.png"), mask)
        cv2.imwrite(
            str(out / "train" / f"{path.stem}_half.jpg"), cv2.resize(image, (320, 240), interpolation=cv2.INTER_AREA)
        )
        cv2.imwrite(
            str(out / "masks" / f"{path.stem}_half.png"), cv2.resize(mask, (320, 240), interpolation=cv2.INTER_NEAREST)
        )
        for line in lines:
            name, x, y, cls = line.split(",")
            if name == path.stem:
                rows.append(line)
                rows.append(f"{name}_half,{(float(x) + 0.5) / 2 - 0.5},{(float(y) + 0.5) / 2 - 0.5},{cls}")
    (out / "points.csv").write_text("\n".join(rows) + "\n")
    (out / "classes.yaml").write_text((survey / "classes.yaml").read_text())
    return out


def test_build_brings_both_scales_to_one_resolution(two_scales: Path, tmp_path: Path):
    classes = Classes.load(two_scales / "classes.yaml")
    params = BuildParams(split=(1.0, 0.0, 0.0), tile=128, overlap=32, resolution=0.5, empty_fraction=0.0)
    m = build_dataset(two_scales / "points.csv", two_scales / "train", classes, tmp_path / "ds",
                      masks=two_scales / "masks", params=params, workers=1)  # fmt: skip
    assert m.params["frame_px"] == 640  # the longest photo side is taken as full resolution
    scales = {p.image: p.scale for p in m.photos}
    for stem, s in scales.items():
        assert s == pytest.approx(1.0 if stem.endswith("_half") else 0.5)
    # a full photo and its half copy give tiles of one size, with the same animals in them
    full = next(p for p in m.photos if not p.image.endswith("_half"))
    half = next(p for p in m.photos if p.image == f"{full.image}_half")
    assert full.counts_in_mask == half.counts_in_mask
    assert abs(full.tiles - half.tiles) <= 1


def test_counting_resizes_each_photo_to_the_model_resolution():
    canonical = Canonical(resolution=0.5, frame_px=640, animal_px=20.0, tile=128, overlap=32)
    options = PredictOptions(tile=128, overlap=32, imgsz=128)
    assert frame_scale(640, 480, 640, 0.5) == 0.5
    full = canonical.options_for(options, 640, 480)  # full resolution: tiles of 256 photo px -> 128
    half = canonical.options_for(options, 320, 240)  # already at the model's resolution
    assert (full.tile, full.overlap, full.imgsz) == (256, 64, 128)
    assert (half.tile, half.overlap, half.imgsz) == (128, 32, 128)
    # a photo whose animals the user measured: 40 px animals -> factor 20 / 40
    measured = canonical.options_for(PredictOptions(tile=128, overlap=32, imgsz=128, animal_px=40.0), 999, 999)
    assert measured.tile == 256
    items = [(np.zeros((480, 640, 3), np.uint8), None, "a"), (np.zeros((480, 640, 3), np.uint8), None, "b"),
             (np.zeros((240, 320, 3), np.uint8), None, "c")]  # fmt: skip
    groups = list(scaled_groups(canonical, options, items))
    assert [[n for _, _, n in g] for _, g in groups] == [["a", "b"], ["c"]]
