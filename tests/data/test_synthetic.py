"""The synthetic survey generator: layout on disk, exact dots, JPEG locality, determinism, sizes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from rookery.data.classes import SEALION_CLASSES, Classes
from rookery.data.points_csv import read_counts_csv, read_points_csv
from rookery.data.synthetic import SurveySummary, dot_radius, generate_survey, make_scene, survey_classes
from rookery.data.synthetic.animals import body_colors, draw_animals
from rookery.data.synthetic.layout import Layout, blackout_polygons, ignore_mask, place_animals
from rookery.data.synthetic.profiles import PROFILES
from rookery.data.synthetic.scene import disc_offsets
from rookery.errors import ConfigError
from rookery.imaging import read_image


def _load(survey: SurveySummary, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ext = "png" if (survey.out / "train" / f"{name}.png").is_file() else "jpg"
    photo = read_image(survey.out / "train" / f"{name}.{ext}")
    twin = read_image(survey.out / "dotted" / f"{name}.{ext}")
    mask = read_image(survey.out / "masks" / f"{name}.png", cv2.IMREAD_GRAYSCALE)
    return photo, twin, mask


def _points(survey: SurveySummary) -> dict:
    return read_points_csv(survey.out / "points.csv", survey.classes)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_on_disk(synth_survey):
    out = synth_survey.out
    assert synth_survey.images == ["0", "1", "2"]
    for name in synth_survey.images:
        for sub in ("train", "dotted", "masks"):
            assert (out / sub / f"{name}.png").is_file()
        photo, twin, mask = _load(synth_survey, name)
        assert photo.shape == twin.shape == (1200, 1600, 3) and mask.shape == (1200, 1600)
        assert set(np.unique(mask)) <= {0, 255}
    assert Classes.load(out / "classes.yaml") == synth_survey.classes
    assert synth_survey.classes.names == ["adult_males", "adult_females", "pups"]


@pytest.mark.parametrize("fixture", ["synth_survey", "synth_survey_jpg"])  # png and jpg surveys
def test_counts_csv_equals_points_csv(fixture, request):
    survey = request.getfixturevalue(fixture)
    counts = read_counts_csv(survey.out / "counts.csv", survey.classes)
    points = _points(survey)
    assert set(counts) == set(points) == set(survey.images)
    for name in survey.images:
        np.testing.assert_array_equal(counts[name], points[name].points.counts(len(survey.classes)))
        np.testing.assert_array_equal(counts[name], survey.counts[name])
    assert sum(int(c.sum()) for c in counts.values()) / len(counts) >= 20  # a few dozen per photo


def test_same_seed_same_bytes_whatever_workers(tmp_path):
    args = {"images": 2, "size": (480, 360), "object_scale": 0.5, "seed": 7}
    generate_survey(tmp_path / "a", workers=1, **args)
    generate_survey(tmp_path / "b", workers=2, **args)
    generate_survey(tmp_path / "c", workers=1, **{**args, "seed": 8})
    a, b, c = (_files(tmp_path / d) for d in "abc")
    assert a == b
    assert a["train/0.jpg"] != c["train/0.jpg"] and a["points.csv"] != c["points.csv"]


def test_png_twin_is_photo_plus_exact_dots_and_black_regions(synth_survey):
    points = _points(synth_survey)
    radius = dot_radius(1.0)
    bgr = np.array([c[::-1] for c in synth_survey.classes.colors], np.uint8)
    saw_ignore = False
    for name in synth_survey.images:
        photo, twin, mask = _load(synth_survey, name)
        lab = points[name].points
        xy = lab.xy.astype(np.int64)
        np.testing.assert_array_equal(lab.xy, xy)  # integer centres: a dot's centroid is its point
        dots = np.zeros(mask.shape, bool)
        pix = xy[:, None, :] + disc_offsets(radius)[None]
        dots[pix[..., 1], pix[..., 0]] = True
        # Every dot is whole, in the annotated region, and of its class's exact colour.
        assert (mask[pix[..., 1], pix[..., 0]] == 255).all()
        assert (twin[pix[..., 1], pix[..., 0]] == bgr[lab.cls][:, None, :]).all()
        # The ignore region is pure black; everything else is the photo, untouched.
        assert (twin[mask == 0] == 0).all()
        rest = ~dots & (mask == 255)
        np.testing.assert_array_equal(twin[rest], photo[rest])
        saw_ignore |= bool((mask == 0).any())
    assert saw_ignore  # this survey has blacked-out regions, so their handling was checked


def test_jpg_twin_differs_only_near_dots_or_in_ignore_region(synth_survey_jpg):
    points = _points(synth_survey_jpg)
    bgr = np.array([c[::-1] for c in synth_survey_jpg.classes.colors], np.float64)
    reach = 20  # JPEG codes 16x16 blocks (4:2:0): a dot of radius 4 changes pixels within ~20 px
    window = np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)
    for name in synth_survey_jpg.images:
        photo, twin, mask = _load(synth_survey_jpg, name)
        lab = points[name].points
        xy = lab.xy.astype(np.int64)
        centres = np.zeros(mask.shape, np.uint8)
        centres[xy[:, 1], xy[:, 0]] = 1
        allowed = (cv2.dilate(centres, window) > 0) | (cv2.dilate((mask == 0).astype(np.uint8), window) > 0)
        differ = np.abs(photo.astype(np.int16) - twin.astype(np.int16)).max(axis=2) > 3
        assert differ.any()
        assert not (differ & ~allowed).any(), f"image {name}: twin differs far from any dot"
        # Each dot survives JPEG: the centre pixel is nearest to its own class colour.
        centre = twin[xy[:, 1], xy[:, 0]].astype(np.float64)
        nearest = np.linalg.norm(centre[:, None, :] - bgr[None], axis=2).argmin(axis=1)
        np.testing.assert_array_equal(nearest, lab.cls)


def test_dots_never_touch_and_keep_clear_of_ignore_edges(synth_survey):
    points = _points(synth_survey)
    radius = dot_radius(1.0)
    for name in synth_survey.images:
        _, _, mask = _load(synth_survey, name)
        xy = points[name].points.xy
        d = np.linalg.norm(xy[:, None] - xy[None], axis=2) + np.eye(len(xy)) * 1e9
        assert d.min() >= 2 * radius + 3
        # Distance from each point to the nearest ignored pixel (or to the border if none).
        dist = cv2.distanceTransform(mask, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        assert (dist[xy[:, 1].astype(int), xy[:, 0].astype(int)] > radius + 3).all()


def test_animals_in_ignore_regions_are_drawn_but_not_labelled():
    # Small scenes until one has animals under a blacked-out region (deterministic for the seed).
    scene = next(s for s in (make_scene((800, 600), 3, 3, i, 0.5) for i in range(20)) if s.hidden)
    ignored = scene.mask == 0
    assert (scene.twin[ignored] == 0).all()
    assert len(np.unique(scene.photo[ignored].reshape(-1, 3), axis=0)) > 100  # the photo shows the ground
    xy = scene.points.xy.astype(int)
    assert (scene.mask[xy[:, 1], xy[:, 0]] == 255).all()


def test_background_is_textured_not_flat(synth_survey):
    photo, _, _ = _load(synth_survey, "0")
    gray = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY).astype(np.float64)
    # Texture at several scales: fine (Laplacian), patch (64 px) and image-wide variation.
    assert cv2.Laplacian(gray, cv2.CV_64F).std() > 5
    patches = gray[:1152, :1600].reshape(18, 64, 25, 64).std(axis=(1, 3))
    assert np.median(patches) > 4
    assert gray.std() > 10


@pytest.mark.parametrize(
    "num_classes, names",
    [
        (1, ["adult_females"]),  # one class: the commonest
        (3, ["adult_males", "adult_females", "pups"]),  # the default: one class is small
        (5, SEALION_CLASSES.names),  # all five, in the palette's order
    ],
)
def test_classes_taken_in_order_listed_in_palette_order(num_classes, names):
    classes = survey_classes(num_classes)
    assert classes.names == names
    assert classes.colors == [SEALION_CLASSES.specs[SEALION_CLASSES.index(n)].color for n in names]
    for spec in classes:
        lo, hi = PROFILES[spec.name].length
        assert spec.box == pytest.approx((lo + hi) / 2)
    assert survey_classes(num_classes, 0.5).specs[0].box == pytest.approx(classes.specs[0].box / 2)


@pytest.mark.parametrize("scale", [1.0, 0.5])  # full resolution and half-size objects
def test_body_sizes_follow_class_and_scale(scale):
    classes = survey_classes(5, scale)
    lengths = {name: [] for name in classes.names}
    for seed in range(3):
        size = (round(4992 * scale), round(3328 * scale))  # a full scene's worth of animals
        layout = place_animals(np.random.default_rng(seed), size, classes, scale)
        for i, name in enumerate(classes.names):
            lengths[name].extend(layout.length[layout.cls == i])
            ratio = layout.width[layout.cls == i] / layout.length[layout.cls == i]
            assert ratio.min() >= 0.4 and ratio.max() <= 0.5
    for name, values in lengths.items():
        lo, hi = PROFILES[name].length
        assert len(values) > 5 and lo * scale <= min(values) and max(values) <= hi * scale
    mean = {name: np.mean(v) for name, v in lengths.items()}
    order = ["adult_males", "subadult_males", "adult_females", "juveniles", "pups"]  # largest first
    assert [mean[n] for n in order] == sorted(mean.values(), reverse=True)


def _draw_one(name: str, length: float, classes: Classes) -> tuple[np.ndarray, np.ndarray]:
    """One animal of class `name`, head towards +x, drawn on flat grey; returns (canvas, changed)."""
    canvas = np.full((200, 200, 3), 128, np.uint8)
    cls = np.array([classes.index(name)])
    size = np.array([length]), np.array([0.45 * length])
    layout = Layout(np.array([[100, 100]]), cls, *size, np.array([0.0]))
    colors = body_colors(np.random.default_rng(0), layout, classes)
    draw_animals(canvas, layout, colors, sun=np.pi / 2)  # shadow falls towards -y, off the body's axis
    return canvas, np.abs(canvas.astype(int) - 128).max(axis=2) > 10


@pytest.mark.parametrize("name", ["adult_males", "adult_females", "pups"])  # large, middle, small
def test_drawn_body_has_the_length_asked_for(name):
    classes = survey_classes(5)
    length = float(np.mean(PROFILES[name].length))
    _, changed = _draw_one(name, length, classes)
    cols = np.flatnonzero(changed[100])  # along the body's axis
    assert cols.max() - cols.min() + 1 == pytest.approx(length, rel=0.12)
    rows = np.flatnonzero(changed[:, 100 - round(0.08 * length)])  # across the widest part (and shadow)
    assert 0.35 * length <= rows.max() - rows.min() + 1 <= 0.75 * length


def test_class_colours_differ():
    classes = survey_classes(5)
    brightness = {}
    for name in classes.names:
        canvas, _ = _draw_one(name, float(np.mean(PROFILES[name].length)), classes)
        brightness[name] = float(canvas[100, 96:104].mean())
    assert brightness["pups"] < 70 < brightness["adult_males"] < brightness["adult_females"]


def test_colony_density_follows_area():
    classes = survey_classes(3)
    full = [len(place_animals(np.random.default_rng(s), (4992, 3328), classes)) for s in range(5)]
    assert all(140 <= n <= 500 for n in full)
    small = [len(place_animals(np.random.default_rng(s), (1600, 1200), classes)) for s in range(5)]
    assert all(15 <= n <= 80 for n in small)
    # Objects at half size: four times as many fit the same area.
    scaled = [len(place_animals(np.random.default_rng(s), (1600, 1200), classes, 0.5)) for s in range(5)]
    assert np.mean(scaled) > 2.5 * np.mean(small)


def test_animals_cluster_in_colonies():
    classes = survey_classes(3)
    layout = place_animals(np.random.default_rng(0), (4992, 3328), classes)
    xy = layout.xy.astype(float)
    d = np.linalg.norm(xy[:, None] - xy[None], axis=2) + np.eye(len(xy)) * 1e9
    # The nearest neighbour is far closer than for the same number of animals spread uniformly.
    uniform = 0.5 / np.sqrt(len(xy) / (4992 * 3328))
    assert np.median(d.min(axis=1)) < 0.5 * uniform


def test_blackout_regions_cover_3_to_15_percent_each():
    sizes, counts = (1600, 1200), []
    for seed in range(40):
        polygons = blackout_polygons(np.random.default_rng(seed), sizes)
        counts.append(len(polygons))
        for poly in polygons:
            frac = (ignore_mask(sizes, [poly]) == 0).mean()
            assert 0.025 <= frac <= 0.16
    assert set(counts) == {0, 1, 2}


@pytest.mark.parametrize("scale, radius", [(1.0, 4), (0.5, 2), (0.25, 2), (2.0, 8)])  # never below 2
def test_dot_radius_follows_object_scale(scale, radius):
    assert dot_radius(scale) == radius
    scene = make_scene((400, 300), 3, 0, 0, scale)
    x, y = scene.points.xy[0].astype(int)
    colour = scene.twin[y, x]
    around = scene.twin[y - radius - 2 : y + radius + 3, x - radius - 2 : x + radius + 3]
    assert (around == colour).all(axis=2).sum() == len(disc_offsets(radius))


def test_rerun_replaces_numbered_photos_and_keeps_other_files(tmp_path):
    args = {"size": (320, 240), "object_scale": 0.5, "workers": 1}
    generate_survey(tmp_path, images=3, **args)
    (tmp_path / "train" / "notes.txt").write_text("mine")
    summary = generate_survey(tmp_path, images=1, image_format="png", **args)
    assert summary.images == ["0"]
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == ["0.png", "notes.txt"]
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["0.png"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"images": 0}, "number of images"),  # nothing to make
        ({"num_classes": 0}, "number of classes"),  # too few classes
        ({"num_classes": 6}, "number of classes"),  # more than the palette has
        ({"size": (10, 10)}, "photo size"),  # too small to hold an animal
        ({"object_scale": 0.0}, "object scale"),  # objects must have a size
        ({"image_format": "gif"}, "image format"),  # only jpg and png
        ({"seed": -1}, "seed"),  # seeds are non-negative
    ],
)
def test_bad_arguments_are_config_errors(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        generate_survey(tmp_path / "out", **{"size": (320, 240), **kwargs})
    assert not (tmp_path / "out").exists()  # nothing written


@pytest.mark.parametrize("below", ["", "sub"])  # out is a file; out would be inside a file
def test_out_that_is_not_a_writable_folder(tmp_path, below):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=str(blocker)):
        generate_survey(blocker / below if below else blocker, images=1, size=(320, 240))


def test_colonies_lie_on_land():
    classes = survey_classes(3)
    land = np.zeros((30, 40), bool)
    land[:, :20] = True  # the left half of the photo is dry land, the right half water
    layout = place_animals(np.random.default_rng(1), (4992, 3328), classes, land=land)
    in_water = (layout.xy[:, 0] >= 4992 / 2).mean()
    assert 0 < in_water <= 0.1 + 0.05  # only solitary animals swim (10 % of them, by chance half at sea)
