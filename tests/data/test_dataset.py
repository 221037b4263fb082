"""Building a tiled YOLO data set: split by photo, labels, negatives, ignore regions, manifest, bad input."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rookery.data.boxes import points_to_boxes
from rookery.data.classes import Classes, ClassSpec
from rookery.data.dataset import BuildParams, assign_splits, build_dataset
from rookery.data.manifest import Manifest
from rookery.data.photo_tiles import MAX_IGNORED_NEGATIVE, in_mask, plan_tiles, yolo_lines
from rookery.data.points_csv import read_counts_csv, read_points_csv
from rookery.data.tiling import Tile, ignored_fractions, tile_grid
from rookery.errors import ConfigError, InputError
from rookery.types import Boxes, Points

CLASSES = Classes((ClassSpec("seal", (255, 0, 0), box=12.0), ClassSpec("pup", (0, 255, 0), box=6.0)))
SMALL = BuildParams(tile=96, overlap=16, empty_fraction=0.5, split=(0.5, 0.25, 0.25))
SIZE = (260, 180)  # width, height of the tiny photos


def _photo(seed: int, size: tuple[int, int] = SIZE) -> np.ndarray:
    return np.random.default_rng(seed).integers(40, 220, (size[1], size[0], 3), dtype=np.uint8)


def make_inputs(
    root: Path,
    n_photos: int = 4,
    points: Sequence[tuple[str, float, float, str]] | None = None,
    masks: bool = True,
) -> tuple[Path, Path, Path | None]:
    """Photos p0..p{n-1} (noise, PNG), a points.csv and masks whose left 40 columns are ignore region."""
    images, mask_dir = root / "photos", root / "masks"
    images.mkdir(parents=True)
    mask_dir.mkdir()
    rng = np.random.default_rng(7)
    rows = list(points) if points is not None else []
    for i in range(n_photos):
        cv2.imwrite(str(images / f"p{i}.png"), _photo(i))
        mask = np.full((SIZE[1], SIZE[0]), 255, np.uint8)
        mask[:, :40] = 0
        cv2.imwrite(str(mask_dir / f"p{i}.png"), mask)
        if points is None:
            for _ in range(15):
                x, y = rng.uniform(45, SIZE[0] - 1), rng.uniform(0, SIZE[1] - 1)
                rows.append((f"p{i}", round(x, 2), round(y, 2), "seal" if rng.random() < 0.6 else "pup"))
    csv_path = root / "points.csv"
    with csv_path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(("image", "x", "y", "class"))
        w.writerows(rows)
    return csv_path, images, (mask_dir if masks else None)


def build(root: Path, out: str = "ds", params: BuildParams = SMALL, **kw) -> tuple[Manifest, Path]:
    points, images, masks = make_inputs(root, **kw)
    manifest = build_dataset(points, images, CLASSES, root / out, masks=masks, params=params, workers=1)
    return manifest, root / out


def read_label_counts(ds: Path, split: str) -> np.ndarray:
    counts = np.zeros(len(CLASSES), np.int64)
    for f in (ds / "labels" / split).glob("*.txt"):
        for line in f.read_text().splitlines():
            counts[int(line.split()[0])] += 1
    return counts


def tree(ds: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(ds)): p.read_bytes()
        for p in sorted(ds.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }


# --- the layout and the labels -----------------------------------------------------------------------


def test_build_writes_an_ultralytics_dataset(tmp_path: Path) -> None:
    manifest, ds = build(tmp_path)
    data = yaml.safe_load((ds / "data.yaml").read_text())
    assert Path(data["path"]).is_absolute() and Path(data["path"]) == ds.resolve()
    assert (data["train"], data["val"], data["test"]) == ("images/train", "images/val", "images/test")
    assert data["names"] == {0: "seal", 1: "pup"}
    for split in ("train", "val", "test"):
        imgs = sorted(p.stem for p in (ds / "images" / split).glob("*.jpg"))
        labels = sorted(p.stem for p in (ds / "labels" / split).glob("*.txt"))
        assert imgs == labels
        for stem in imgs:
            tile = cv2.imread(str(ds / "images" / split / f"{stem}.jpg"))
            assert tile.shape == (96, 96, 3)
            for line in (ds / "labels" / split / f"{stem}.txt").read_text().splitlines():
                cls, *xywh = line.split()
                assert cls in ("0", "1") and all(len(v.split(".")[1]) == 6 for v in xywh)
                assert all(0 <= float(v) <= 1 for v in xywh)
    assert Manifest.load(ds) == manifest


def test_yolo_label_values() -> None:
    # A 12 px box centred on pixel (49.5, 29.5) of a 100x60 tile: its centre is at 50/100, 30/60.
    boxes = points_to_boxes(Points([[49.5, 29.5]], [1]), [6.0, 12.0])
    assert yolo_lines(boxes, Tile(0, 0, 100, 60)) == "1 0.500000 0.500000 0.120000 0.200000\n"
    assert yolo_lines(Boxes.empty(), Tile(0, 0, 1, 1)) == ""


def test_manifest_counts_match_the_label_files(tmp_path: Path) -> None:
    manifest, ds = build(tmp_path, n_photos=6)
    for split in ("train", "val", "test"):
        assert [manifest.objects[split][c] for c in CLASSES.names] == read_label_counts(ds, split).tolist()
        files = list((ds / "labels" / split).glob("*.txt"))
        assert manifest.tiles[split] == len(files)
        assert manifest.negatives[split] == sum(f.read_text() == "" for f in files)
    assert sum(p.tiles for p in manifest.photos) == sum(manifest.tiles.values())


def test_ground_truth_counts_only_points_inside_the_mask(tmp_path: Path) -> None:
    pts = [("p0", 10, 50, "seal"), ("p0", 100, 50, "seal"), ("p0", 150, 60, "pup"), ("p1", 20, 20, "pup")]
    manifest, ds = build(tmp_path, n_photos=2, points=pts)
    gt = manifest.ground_truth()
    assert gt["p0"].tolist() == [1, 1]  # the seal at x=10 is in the ignore region (x < 40)
    assert gt["p1"].tolist() == [0, 0]
    photo = {p.image: p for p in manifest.photos}
    assert photo["p0"].points == 3 and photo["p0"].mask == "p0.png"
    centres = set()  # every label, back in photo coordinates: only the two points inside the mask
    for f in (ds / "labels").rglob("p0_*.txt"):
        _, x0, y0 = f.stem.split("_")
        for line in f.read_text().splitlines():
            c, cx, cy, _, _ = map(float, line.split())
            centres.add((int(c), cx * 96 - 0.5 + int(x0), cy * 96 - 0.5 + int(y0)))
    for cls, x, y in [(0, 100, 50), (1, 150, 60)]:
        assert {k for k, a, b in centres if abs(a - x) <= 6 and abs(b - y) <= 6} == {cls}
    assert all(x >= 40 for _, x, _ in centres)  # (clipped pieces of a box have shifted centres)


def test_scale_resizes_photos_points_and_boxes(tmp_path: Path) -> None:
    pts = [("p0", 199.5, 99.5, "seal")]
    params = BuildParams(tile=256, overlap=16, scale=0.5, empty_fraction=0.0, split=(1.0, 0.0, 0.0))
    manifest, ds = build(tmp_path, n_photos=1, points=pts, params=params, masks=False)
    (label,) = (ds / "labels" / "train").glob("*.txt")
    assert label.name == "p0_0_0.txt"
    # 130x90 after scaling; the point is at 100/130, 50/90 of the tile; the 12 px box is now 6 px.
    assert label.read_text() == "0 0.769231 0.555556 0.046154 0.066667\n"
    tile = cv2.imread(str(ds / "images" / "train" / "p0_0_0.jpg"))
    assert tile.shape == (90, 130, 3)
    assert manifest.photos[0].width == 260  # the manifest describes the source photo


# --- split -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "fractions", "expected"),
    [
        (1, (0.7, 0.2, 0.1), (1, 0, 0)),  # one photo: train only
        (2, (0.7, 0.2, 0.1), (1, 1, 0)),  # two: train and val get one each
        (2, (0.9, 0.1, 0.0), (1, 1, 0)),  # val is forced even when 10 % rounds to 0
        (2, (1.0, 0.0, 0.0), (2, 0, 0)),  # ... but not when the user asked for no val
        (3, (0.7, 0.2, 0.1), (2, 1, 0)),  # largest remainder
        (10, (0.7, 0.2, 0.1), (7, 2, 1)),  # exact
        (7, (0.34, 0.33, 0.33), (3, 2, 2)),
    ],
)
def test_assign_splits_sizes(n: int, fractions: tuple[float, float, float], expected: tuple) -> None:
    splits = assign_splits([f"im{i}" for i in range(n)], fractions, seed=0)
    assert tuple(list(splits.values()).count(s) for s in ("train", "val", "test")) == expected


def test_assign_splits_is_seeded_and_independent_of_input_order() -> None:
    names = [f"im{i}" for i in range(20)]
    a = assign_splits(names, (0.5, 0.3, 0.2), seed=1)
    assert a == assign_splits(list(reversed(names)), (0.5, 0.3, 0.2), seed=1)
    assert a != assign_splits(names, (0.5, 0.3, 0.2), seed=2)


def test_tiles_of_a_photo_are_all_in_its_split(tmp_path: Path) -> None:
    manifest, ds = build(tmp_path, n_photos=8)
    split_of = manifest.split_of()
    seen: dict[str, set[str]] = {}
    for split in ("train", "val", "test"):
        for f in (ds / "images" / split).glob("*.jpg"):
            seen.setdefault(f.stem.rsplit("_", 2)[0], set()).add(split)
    assert seen and all(splits == {split_of[stem]} for stem, splits in seen.items())
    assert {p.split for p in manifest.photos} == {"train", "val", "test"}


# --- determinism and the fingerprint -----------------------------------------------------------------


def test_build_is_deterministic_whatever_the_workers(tmp_path: Path) -> None:
    points, images, masks = make_inputs(tmp_path, n_photos=5)
    m1 = build_dataset(points, images, CLASSES, tmp_path / "a", masks=masks, params=SMALL, workers=1)
    m2 = build_dataset(points, images, CLASSES, tmp_path / "b", masks=masks, params=SMALL, workers=2)
    assert m1.fingerprint == m2.fingerprint
    assert tree(tmp_path / "a") == {
        k: v.replace(str(tmp_path / "b").encode(), str(tmp_path / "a").encode())
        for k, v in tree(tmp_path / "b").items()
    }
    assert m1.model_dump(exclude={"created"}) == m2.model_dump(exclude={"created"})


def test_fingerprint_changes_with_a_parameter_and_with_one_pixel(tmp_path: Path) -> None:
    points, images, masks = make_inputs(tmp_path, n_photos=3)

    def run(out: str, params: BuildParams = SMALL) -> str:
        return build_dataset(points, images, CLASSES, tmp_path / out, masks, params, workers=1).fingerprint

    base = run("a")
    assert run("a") == base  # rebuilt in place: the same
    assert run("b", BuildParams(**{**SMALL.__dict__, "min_visible": 0.6})) != base
    photo = cv2.imread(str(images / "p1.png"))
    photo[5, 5, 0] ^= 1
    cv2.imwrite(str(images / "p1.png"), photo)
    assert run("c") != base


# --- negatives and ignore regions --------------------------------------------------------------------


def test_negatives_are_capped_seeded_and_never_mostly_ignored() -> None:
    size = (1000, 700)
    mask = np.full((size[1], size[0]), 255, np.uint8)
    mask[:, :300] = 0  # the left tiles are (almost) all ignore region
    boxes = points_to_boxes(Points([[700, 300]], [0]), [12.0], size)

    def params(fraction: float, seed: int = 0) -> BuildParams:
        return BuildParams(tile=128, overlap=16, empty_fraction=fraction, seed=seed)

    grid = tile_grid(*size, 128, 16)
    full = plan_tiles(size, boxes, mask, params(1.0), "x")
    eligible = {p.tile for p in full if len(p.boxes) == 0}
    ignored = dict(zip(grid, ignored_fractions(mask, grid), strict=True))
    assert eligible and all(ignored[t] < MAX_IGNORED_NEGATIVE for t in eligible)
    assert any(ignored[t] >= MAX_IGNORED_NEGATIVE for t in grid)  # such tiles exist and were left out
    labelled = [p.tile for p in full if len(p.boxes)]
    assert labelled and all(len(p.boxes) == 1 for p in full if len(p.boxes))
    assert [p.tile for p in plan_tiles(size, boxes, mask, params(0.0), "x")] == labelled  # no negatives
    for f in (0.1, 0.37):
        negatives = {p.tile for p in plan_tiles(size, boxes, mask, params(f), "x") if len(p.boxes) == 0}
        assert negatives <= eligible
        assert math.floor(f * len(eligible)) <= len(negatives) <= math.ceil(f * len(eligible))
    picks = {seed: {p.tile for p in plan_tiles(size, boxes, mask, params(0.3, seed), "x")} for seed in range(4)}
    assert picks[0] == {p.tile for p in plan_tiles(size, boxes, mask, params(0.3, 0), "x")}
    assert len({frozenset(v) for v in picks.values()}) > 1


def test_ignore_regions_are_black_in_the_written_tiles(tmp_path: Path) -> None:
    params = BuildParams(tile=96, overlap=16, empty_fraction=1.0, split=(1.0, 0.0, 0.0))
    _, ds = build(tmp_path, n_photos=1, params=params)
    checked = 0
    for f in (ds / "images" / "train").glob("*.jpg"):
        x0 = int(f.stem.split("_")[1])
        tile = cv2.imread(str(f)).astype(int)
        if x0 < 40 - 8:  # the ignore region is x < 40; JPEG blurs a few px at its edge
            assert tile[:, : 40 - 8 - x0].max() <= 8
            checked += 1
        assert tile[:, max(0, 48 - x0) :].mean() > 60  # the annotated part is not blanked
    assert checked > 0


def test_photos_without_points_are_used_as_negatives(tmp_path: Path) -> None:
    params = BuildParams(tile=96, overlap=16, empty_fraction=1.0, split=(0.5, 0.5, 0.0))
    manifest, _ = build(tmp_path, n_photos=2, points=[("p0", 100, 100, "seal")], params=params)
    photo = {p.image: p for p in manifest.photos}
    assert photo["p1"].points == 0 and photo["p1"].tiles == photo["p1"].negatives > 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    w=st.integers(20, 400),
    h=st.integers(20, 400),
    tile=st.integers(32, 128),
    n=st.integers(0, 30),
    data=st.data(),
)
def test_every_point_inside_the_mask_is_labelled_in_some_kept_tile(w, h, tile, n, data) -> None:
    overlap = data.draw(st.integers(12, tile // 2))
    sizes = data.draw(st.lists(st.floats(2, 12), min_size=2, max_size=2))
    xy = np.array(
        data.draw(st.lists(st.tuples(st.floats(-0.5, w - 0.5), st.floats(-0.5, h - 0.5)), min_size=n, max_size=n))
    ).reshape(-1, 2)
    pts = Points(xy, data.draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    x_cut = data.draw(st.integers(0, w))  # the ignore region: columns left of x_cut
    mask = np.full((h, w), 255, np.uint8)
    mask[:, :x_cut] = 0
    pts = pts.select(in_mask(pts.xy, mask))
    boxes = points_to_boxes(pts, sizes, (w, h))
    params = BuildParams(tile=tile, overlap=overlap, empty_fraction=0.0)
    plan = plan_tiles((w, h), boxes, mask, params, "s")
    found = np.zeros(len(boxes), dtype=bool)
    for p in plan:
        assert len(p.boxes) > 0  # empty_fraction 0: no negatives
        back = p.boxes.xyxy + np.tile(p.tile.offset, 2)
        found |= np.any(np.all(np.isclose(boxes.xyxy[:, None], back[None]), axis=2), axis=1)
    assert found.all()


# --- output folder -----------------------------------------------------------------------------------


def test_refuses_a_non_empty_folder_that_is_not_a_dataset(tmp_path: Path) -> None:
    points, images, masks = make_inputs(tmp_path)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.tex").write_text("precious")
    with pytest.raises(InputError, match="is not empty and is not a rookery data set"):
        build_dataset(points, images, CLASSES, tmp_path / "notes", masks=masks, params=SMALL, workers=1)
    assert (tmp_path / "notes" / "thesis.tex").read_text() == "precious"
    with pytest.raises(InputError, match="inside the output folder"):
        build_dataset(points, images, CLASSES, tmp_path, masks=masks, params=SMALL, workers=1)


def test_rebuilding_replaces_a_previous_dataset(tmp_path: Path) -> None:
    points, images, masks = make_inputs(tmp_path)
    out = tmp_path / "ds"
    build_dataset(points, images, CLASSES, out, masks=masks, params=SMALL, workers=1)
    (out / "stats.png").write_bytes(b"old")
    params = BuildParams(tile=128, overlap=16, split=SMALL.split)
    manifest = build_dataset(points, images, CLASSES, out, masks=masks, params=params, workers=1)
    assert not (out / "stats.png").exists()
    sizes = {cv2.imread(str(f)).shape[:2] for f in (out / "images").rglob("*.jpg")}
    assert sizes == {(128, 128)} and manifest.params["tile"] == 128
    assert not list(tmp_path.glob(".ds.building-*"))


# --- bad input ---------------------------------------------------------------------------------------


def test_bad_photos_and_points_are_reported_and_the_others_kept(tmp_path: Path) -> None:
    rows = [(f"p{i}", 120, 90, "seal") for i in range(5)] + [("p4", 900, 10, "pup"), ("gone", 5, 5, "seal")]
    points, images, masks = make_inputs(tmp_path, n_photos=5, points=rows)
    (images / "p1.png").write_bytes(b"not a png at all")  # corrupt photo
    cv2.imwrite(str(masks / "p2.png"), np.full((10, 10), 255, np.uint8))  # mask of another size
    manifest = build_dataset(points, images, CLASSES, tmp_path / "ds", masks=masks, params=SMALL, workers=2)
    reasons = {s.item: s.reason for s in manifest.skipped}
    assert "not a readable image" in reasons["p1"]
    assert reasons["p2"] == "mask p2.png is 10x10 but its photo is 260x180"
    assert "no image of that name" in reasons["gone"]
    assert reasons["p4: 1 point(s)"] == "outside the 260x180 photo, e.g. (900, 10)"
    assert sorted(p.image for p in manifest.photos) == ["p0", "p3", "p4"]
    assert manifest.ground_truth()["p4"].tolist() == [1, 0]


def test_a_class_missing_from_classes_yaml_is_a_clear_error(tmp_path: Path) -> None:
    points, images, masks = make_inputs(tmp_path, n_photos=1, points=[("p0", 5, 5, "walrus")])
    with pytest.raises(InputError, match=r"class 'walrus' is not in classes\.yaml"):
        build_dataset(points, images, CLASSES, tmp_path / "ds", masks=masks, params=SMALL, workers=1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"split": (0.5, 0.6, 0.0)}, "summing to 1"),  # fractions over 1
        ({"tile": 64, "overlap": 64}, "overlap between 0 and tile - 1"),  # overlap = tile
        ({"scale": 0.0}, "scale must be above 0"),  # no photo left
        ({"empty_fraction": 1.5}, "empty_fraction must be between 0 and 1, got 1.5"),
        ({"min_visible": 0.0}, "min_visible must be above 0"),
    ],
)
def test_bad_parameters_are_config_errors(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BuildParams(**change)


# --- on realistic input ------------------------------------------------------------------------------


def test_build_from_a_synthetic_survey(tmp_path: Path) -> None:
    from rookery.data.synthetic import generate_survey

    survey = generate_survey(tmp_path / "survey", images=4, size=(900, 600), num_classes=3, seed=3, workers=1)
    params = BuildParams(tile=320, overlap=64, empty_fraction=0.2)
    manifest = build_dataset(
        survey.out / "points.csv",
        survey.out / "train",
        survey.classes,
        tmp_path / "ds",
        masks=survey.out / "masks",
        params=params,
        workers=2,
    )
    assert not manifest.skipped and len(manifest.photos) == 4
    expected = read_counts_csv(survey.out / "counts.csv", survey.classes)
    got = manifest.ground_truth()
    assert {k: v.tolist() for k, v in got.items()} == {k: v.tolist() for k, v in expected.items()}
    assert all(not e.estimated for e in manifest.box_sizes.values())
    assert sum(sum(v.values()) for v in manifest.objects.values()) >= sum(int(v.sum()) for v in got.values())


def test_every_annotated_animal_is_whole_in_some_written_tile(synth_survey_jpg, tmp_path: Path) -> None:
    # The shared synthetic survey at full object scale, default parameters, read back from the files.
    survey = synth_survey_jpg
    manifest = build_dataset(
        survey.out / "points.csv", survey.out / "train", survey.classes, tmp_path / "ds", survey.out / "masks"
    )
    assert not manifest.skipped and not manifest.warnings
    sizes = [e.size for e in manifest.box_sizes.values()]
    labels = read_points_csv(survey.out / "points.csv", survey.classes)
    for photo in manifest.photos:
        mask = cv2.imread(str(survey.out / "masks" / f"{photo.image}.png"), cv2.IMREAD_GRAYSCALE)
        pts = labels[photo.image].points
        expected = points_to_boxes(pts.select(in_mask(pts.xy, mask)), sizes, (photo.width, photo.height))
        written = []
        for f in (tmp_path / "ds" / "labels" / photo.split).glob(f"{photo.image}_*.txt"):
            x0, y0 = map(int, f.stem.split("_")[1:])
            rows = np.array(f.read_text().split(), dtype=np.float64).reshape(-1, 5)
            cx, cy, w, h = (rows[:, 1:] * 640).T
            xyxy = np.column_stack([cx - w / 2 + x0, cy - h / 2 + y0, cx + w / 2 + x0, cy + h / 2 + y0]) - 0.5
            written.append(np.column_stack([rows[:, 0], xyxy]))
        found = np.vstack(written)
        ours = np.column_stack([expected.cls, expected.xyxy])
        close = np.all(np.abs(ours[:, None] - found[None]) < 0.01, axis=2).any(axis=1)
        assert close.all()
        assert len(ours) == sum(photo.counts_in_mask.values())


def test_build_from_the_real_sample(tmp_path: Path, sealions: Path) -> None:
    from rookery.data.classes import SEALION_CLASSES

    params = BuildParams(tile=320, overlap=48)
    manifest = build_dataset(
        sealions / "points.csv",
        sealions / "train",
        SEALION_CLASSES,
        tmp_path / "ds",
        sealions / "masks",
        params,
    )
    expected = read_counts_csv(sealions / "counts.csv", SEALION_CLASSES)
    assert {k: v.tolist() for k, v in manifest.ground_truth().items()} == {k: v.tolist() for k, v in expected.items()}
    assert all(e.estimated for e in manifest.box_sizes.values())
    sizes = [e.size for e in manifest.box_sizes.values()]
    assert min(sizes) >= 4 and max(sizes) <= 48  # animals are 3-20 px at this scale
