"""Annotation formats: round trips, hand-written files per format, the pixel convention, and errors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rookery.data.classes import SEALION_CLASSES, Classes
from rookery.data.formats import (
    FORMATS_IN,
    FORMATS_OUT,
    read_annotations,
    read_annotations_report,
    write_annotations,
    write_annotations_report,
)
from rookery.errors import ConfigError, InputError
from rookery.types import Boxes, ImageLabels, Points

CLASSES = Classes.from_dict(
    {"adult_males": [243, 8, 5], "juveniles": {"color": [25, 56, 176], "box": 20}, "pups": [38, 174, 21]}
)
# The same classes with a box side for each, so that points without boxes can be written as YOLO.
BOXED = CLASSES.with_boxes([40, 20, 10])


def _image(folder: Path, name: str, width: int, height: int, suffix: str = ".png") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}{suffix}"
    assert cv2.imwrite(str(path), np.zeros((height, width), np.uint8))
    return path


def _same(a_xy: np.ndarray, a_cls: np.ndarray, b_xy: np.ndarray, b_cls: np.ndarray) -> None:
    """Same rows in the same order (every reader keeps file order and every writer keeps label order)."""
    np.testing.assert_array_equal(a_cls, b_cls)
    np.testing.assert_allclose(a_xy, b_xy, rtol=0, atol=1e-6)


def _by_name(labels: list[ImageLabels]) -> dict[str, ImageLabels]:
    return {lab.image: lab for lab in labels}


def _sample() -> list[ImageLabels]:
    boxes = Boxes([[10.25, 20.5, 50.75, 60.0], [0.0, 0.0, 8.0, 8.0], [-0.5, 100.5, 29.5, 139.5]], [0, 2, 1])
    mixed_box = Boxes([[200.0, 10.0, 240.0, 50.0]], [0])
    return [
        # boxes, with their centres as points
        ImageLabels("boxes", Points(boxes.centers(), boxes.cls), boxes, (640, 480)),
        # points only
        ImageLabels("points", Points([[3.0, 4.0], [639.5, 479.5], [100.123456, 7.0]], [2, 1, 1]), None, (640, 480)),
        # no objects at all
        ImageLabels("empty", Points.empty(), None, (320, 240)),
        # one box and one object known only as a point
        ImageLabels(
            "mixed",
            Points(np.vstack([mixed_box.centers(), [[17.0, 33.5]]]), [0, 2]),
            mixed_box,
            (1000, 700),
        ),
    ]


@pytest.mark.parametrize("fmt", FORMATS_OUT)
def test_round_trip(tmp_path: Path, fmt: str) -> None:
    labels = _sample()
    images = tmp_path / "images"
    for lab in labels:
        assert lab.size is not None
        _image(images, lab.image, *lab.size)
    out = tmp_path / {"csv": "points.csv", "coco": "ann.json", "yolo": "labels"}[fmt]
    write_annotations(labels, out, fmt, BOXED)
    back = _by_name(read_annotations(out, fmt, BOXED, images_dir=images))

    # csv has no row for an image without points; the other formats keep it
    expected = {lab.image for lab in labels if fmt != "csv" or len(lab.points)}
    assert set(back) == expected
    for lab in labels:
        if lab.image not in back:
            continue
        got = back[lab.image]
        _same(lab.points.xy, lab.points.cls, got.points.xy, got.points.cls)
        if fmt == "csv":
            assert got.boxes is None
            continue
        assert got.size == lab.size
        if fmt == "coco":
            assert (got.boxes is None) == (lab.boxes is None)
        if lab.boxes is not None and got.boxes is not None and fmt == "coco":
            _same(lab.boxes.xyxy, lab.boxes.cls, got.boxes.xyxy, got.boxes.cls)
    if fmt == "yolo":
        # YOLO always has boxes: the original ones plus a class-sized square around each lone point
        mixed = back["mixed"].boxes
        assert mixed is not None
        square = np.array([[17.0 - 5, 33.5 - 5, 17.0 + 5, 33.5 + 5]])
        _same(np.vstack([[[200.0, 10.0, 240.0, 50.0]], square]), np.array([0, 2]), mixed.xyxy, mixed.cls)
        assert back["empty"].boxes is not None and len(back["empty"].boxes) == 0


@st.composite
def _labels(draw: st.DrawFn) -> list[ImageLabels]:
    out = []
    for i in range(draw(st.integers(1, 3))):
        w, h = draw(st.integers(1, 1500)), draw(st.integers(1, 1500))
        rows, cls = [], []
        for _ in range(draw(st.integers(0, 6))):
            # inside the image (-0.5 .. size - 0.5 in rookery) and at least 0.01 px wide and high
            x1, y1 = draw(st.floats(-0.5, w - 0.51)), draw(st.floats(-0.5, h - 0.51))
            x2, y2 = draw(st.floats(x1 + 0.01, w - 0.5)), draw(st.floats(y1 + 0.01, h - 0.5))
            rows.append([x1, y1, x2, y2])
            cls.append(draw(st.integers(0, 2)))
        boxes = Boxes(np.array(rows).reshape(-1, 4), cls)
        out.append(ImageLabels(f"img{i}", Points(boxes.centers(), boxes.cls), boxes, (w, h)))
    return out


@pytest.mark.parametrize("fmt", FORMATS_OUT)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(labels=_labels())
def test_round_trip_property(tmp_path_factory: pytest.TempPathFactory, fmt: str, labels: list[ImageLabels]) -> None:
    # any boxes inside any image size: write then read gives the same boxes and points within 1e-6 px
    tmp = tmp_path_factory.mktemp(fmt)
    for lab in labels:
        assert lab.size is not None
        if fmt == "yolo":  # only YOLO needs the images, to read their sizes back
            _image(tmp / "images", lab.image, *lab.size)
    write_annotations(labels, tmp / "out", fmt, CLASSES)
    back = _by_name(read_annotations(tmp / "out", fmt, CLASSES, images_dir=tmp / "images"))
    for lab in labels:
        if fmt == "csv" and len(lab.points) == 0:
            continue
        got = back[lab.image]
        _same(lab.points.xy, lab.points.cls, got.points.xy, got.points.cls)
        if fmt != "csv" and len(lab.boxes or ()):
            assert lab.boxes is not None and got.boxes is not None
            _same(lab.boxes.xyxy, lab.boxes.cls, got.boxes.xyxy, got.boxes.cls)


# --- the pixel convention -------------------------------------------------------------------------


def _coco(tmp_path: Path, anns: list[dict], categories: list[dict] | None = None, **image: object) -> Path:
    doc = {
        "images": [{"id": 1, "file_name": "sub/DSC_1.JPG", "width": 640, "height": 480, **image}],
        "annotations": [{"id": i + 1, "image_id": 1, "category_id": 3, **a} for i, a in enumerate(anns)],
        "categories": categories or [{"id": 3, "name": "pups"}, {"id": 9, "name": "adult_males"}],
    }
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    "ann",
    [
        {"keypoints": [10.5, 20.5, 2], "num_keypoints": 1},  # a 1-keypoint annotation
        {"bbox": [10.5, 20.5, 0, 0]},  # a point as a zero-size bbox
    ],
)
def test_coco_point_at_pixel_centre(tmp_path: Path, ann: dict) -> None:
    (lab,) = read_annotations(_coco(tmp_path, [ann]), "coco", CLASSES)
    assert lab.image == "DSC_1" and lab.size == (640, 480)
    np.testing.assert_allclose(lab.points.xy, [[10.0, 20.0]])
    assert lab.points.cls.tolist() == [2] and lab.boxes is None


def test_coco_box_covering_pixels(tmp_path: Path) -> None:
    # a bbox over exactly pixel columns 0..9 and rows 0..19 spans -0.5..9.5 / -0.5..19.5 in rookery
    (lab,) = read_annotations(_coco(tmp_path, [{"bbox": [0, 0, 10, 20]}]), "coco", CLASSES)
    assert lab.boxes is not None
    np.testing.assert_allclose(lab.boxes.xyxy, [[-0.5, -0.5, 9.5, 19.5]])
    np.testing.assert_allclose(lab.points.xy, [[4.5, 9.5]])


def test_yolo_written_for_whole_image_box(tmp_path: Path) -> None:
    # a box covering all of a 10x20 image is the YOLO line "cls 0.5 0.5 1 1"
    lab = ImageLabels("a", Points([[4.5, 9.5]], [1]), Boxes([[-0.5, -0.5, 9.5, 19.5]], [1]), (10, 20))
    write_annotations([lab], tmp_path / "labels", "yolo", CLASSES)
    assert (tmp_path / "labels" / "a.txt").read_text() == "1 0.5 0.5 1 1\n"


def test_coco_writer_layout(tmp_path: Path) -> None:
    # categories in class order from id 1; size and file name from the images folder; a lone point as keypoint
    _image(tmp_path / "images", "p", 30, 20, ".jpg")
    lab = ImageLabels("p", Points([[10.0, 20.0]], [2]))
    write_annotations([lab], tmp_path / "out.json", "coco", CLASSES, images_dir=tmp_path / "images")
    doc = json.loads((tmp_path / "out.json").read_text())
    assert [(c["id"], c["name"]) for c in doc["categories"]] == [
        (1, "adult_males"),
        (2, "juveniles"),
        (3, "pups"),
    ]
    assert doc["images"] == [{"id": 1, "file_name": "p.jpg", "width": 30, "height": 20}]
    (ann,) = doc["annotations"]
    assert ann["category_id"] == 3 and ann["keypoints"] == [10.5, 20.5, 2] and ann["bbox"] == [10.5, 20.5, 0, 0]


def test_image_size_follows_exif_rotation(tmp_path: Path) -> None:
    # a JPEG stored 30x10 with EXIF orientation 6 is 10 wide and 30 high once rotated, as OpenCV reads it
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.zeros((10, 30, 3), np.uint8)).save(tmp_path / "r.jpg", exif=exif)
    lab = ImageLabels("r", Points([[1.0, 1.0]], [0]))
    write_annotations([lab], tmp_path / "out.json", "coco", CLASSES, images_dir=tmp_path)
    image = json.loads((tmp_path / "out.json").read_text())["images"][0]
    height, width = cv2.imread(str(tmp_path / "r.jpg")).shape[:2]
    assert (image["width"], image["height"]) == (width, height) == (10, 30)


# --- readers on hand-written files ----------------------------------------------------------------


def test_coco_keypoints_boxes_and_categories(tmp_path: Path) -> None:
    anns = [
        # two visible keypoints and an invisible one (v = 0) between them
        {"keypoints": [10.5, 20.5, 2, 0, 0, 0, 30.5, 40.5, 1], "num_keypoints": 2},
        # all keypoints invisible: nothing, even with a zero bbox at the origin
        {"keypoints": [0, 0, 0], "bbox": [0, 0, 0, 0]},
        # a keypoint with a real bbox: the keypoint is the point, the bbox is kept as a box
        {"keypoints": [5.5, 5.5, 2], "bbox": [1, 1, 10, 10], "category_id": 9},
        # a plain bbox: a box and its centre
        {"bbox": [100, 200, 20, 10], "category_id": 9},
    ]
    (lab,) = read_annotations(_coco(tmp_path, anns), "coco", CLASSES)
    np.testing.assert_allclose(lab.points.xy, [[10, 20], [30, 40], [5, 5], [109.5, 204.5]])
    assert lab.points.cls.tolist() == [2, 2, 0, 0]
    assert lab.boxes is not None
    np.testing.assert_allclose(lab.boxes.xyxy, [[0.5, 0.5, 10.5, 10.5], [99.5, 199.5, 119.5, 209.5]])
    assert lab.boxes.cls.tolist() == [0, 0]


def test_coco_image_without_annotations_is_kept(tmp_path: Path) -> None:
    # an image listed without annotations is an image with no objects (a negative example)
    (lab,) = read_annotations(_coco(tmp_path, []), "coco", CLASSES)
    assert lab.image == "DSC_1" and len(lab.points) == 0 and lab.boxes is None


CVAT = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta><task><name>survey</name></task></meta>
  <image id="0" name="flight/DSC_7.jpg" width="640" height="480">
    <points label="pups" source="manual" occluded="0" points="10.5,20.5;30.5,40.5;0.5,0.5" z_order="0"/>
    <box label="adult_males" source="manual" occluded="0" xtl="100" ytl="200" xbr="120" ybr="210" z_order="0">
      <attribute name="note">big</attribute>
    </box>
    <polygon label="pups" source="manual" occluded="0" points="1,1;5,1;5,5" z_order="0"/>
  </image>
  <image id="1" name="DSC_8.jpg" width="320" height="240"/>
</annotations>
"""


def test_cvat_points_and_boxes(tmp_path: Path) -> None:
    (tmp_path / "ann.xml").write_text(CVAT)
    labs = _by_name(read_annotations(tmp_path / "ann.xml", "cvat", CLASSES))
    assert set(labs) == {"DSC_7", "DSC_8"}
    lab = labs["DSC_7"]
    assert lab.size == (640, 480)
    # the three points of one element, then the box's centre; the polygon is ignored
    np.testing.assert_allclose(lab.points.xy, [[10, 20], [30, 40], [0, 0], [109.5, 204.5]])
    assert lab.points.cls.tolist() == [2, 2, 2, 0]
    assert lab.boxes is not None
    np.testing.assert_allclose(lab.boxes.xyxy, [[99.5, 199.5, 119.5, 209.5]])
    assert len(labs["DSC_8"].points) == 0 and labs["DSC_8"].size == (320, 240)


def _ls_task(task_id: int, image: str, results: list[dict], **annotation: object) -> dict:
    return {
        "id": task_id,
        "data": {"image": image},
        "annotations": [{"id": 1, "result": results, **annotation}],
    }


def _kp(x: float, y: float, label: str = "pups", width: int = 200, height: int = 100) -> dict:
    return {
        "type": "keypointlabels",
        "original_width": width,
        "original_height": height,
        "value": {"x": x, "y": y, "width": 0.5, "keypointlabels": [label]},
    }


def _rect(x: float, y: float, w: float, h: float, label: str = "adult_males", **value: object) -> dict:
    return {
        "type": "rectanglelabels",
        "original_width": 200,
        "original_height": 100,
        "value": {"x": x, "y": y, "width": w, "height": h, "rectanglelabels": [label], **value},
    }


def test_labelstudio_percentages(tmp_path: Path) -> None:
    tasks = [
        # an uploaded file: the 8-hex-digit prefix goes
        _ls_task(1, "/data/upload/3/8f3a2b1c-DSC_0042.JPG", [_kp(50, 25), _rect(10, 20, 5, 50)]),
        # local storage: the path is in ?d=
        _ls_task(2, "/data/local-files/?d=survey/day%201/DSC_0043.JPG", [_kp(0.25, 0.5, "juveniles")]),
        # a choice result is not an object and is ignored
        _ls_task(3, "s3://bucket/DSC_0044.jpg", [{"type": "choices", "value": {"choices": ["ok"]}}]),
    ]
    (tmp_path / "ls.json").write_text(json.dumps(tasks))
    labs = _by_name(read_annotations(tmp_path / "ls.json", "labelstudio", CLASSES))
    assert set(labs) == {"DSC_0042", "DSC_0043", "DSC_0044"}
    first = labs["DSC_0042"]
    assert first.size == (200, 100)
    # 50 % of 200 = 100 and 25 % of 100 = 25 continuous -> (99.5, 24.5); the box spans x 20..30, y 20..70
    np.testing.assert_allclose(first.points.xy, [[99.5, 24.5], [24.5, 44.5]])
    assert first.points.cls.tolist() == [2, 0]
    assert first.boxes is not None
    np.testing.assert_allclose(first.boxes.xyxy, [[19.5, 19.5, 29.5, 69.5]])
    np.testing.assert_allclose(labs["DSC_0043"].points.xy, [[0.0, 0.0]])
    assert len(labs["DSC_0044"].points) == 0


def test_labelstudio_which_annotation(tmp_path: Path) -> None:
    tasks = [
        # two annotators: the ground truth wins over the later one
        {
            "id": 1,
            "data": {"image": "a.jpg"},
            "annotations": [
                {"result": [_kp(10, 10)], "ground_truth": True},
                {"result": [_kp(20, 20), _kp(30, 30)]},
            ],
        },
        # no ground truth: the last one not cancelled
        {
            "id": 2,
            "data": {"image": "b.jpg"},
            "annotations": [
                {"result": [_kp(10, 10)]},
                {"result": [_kp(20, 20)]},
                {"result": [], "was_cancelled": True},
            ],
        },
        # not labelled yet: left out rather than read as "no animals"
        {"id": 3, "data": {"image": "c.jpg"}, "annotations": []},
    ]
    (tmp_path / "ls.json").write_text(json.dumps(tasks))
    labs = _by_name(read_annotations(tmp_path / "ls.json", "labelstudio", CLASSES))
    assert set(labs) == {"a", "b"}
    np.testing.assert_allclose(labs["a"].points.xy, [[19.5, 9.5]])
    np.testing.assert_allclose(labs["b"].points.xy, [[39.5, 19.5]])


def test_yolo_reader(tmp_path: Path) -> None:
    _image(tmp_path / "images", "a", 100, 50, ".jpg")
    _image(tmp_path / "images", "b", 10, 10)
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "a.txt").write_text("0 0.5 0.5 0.2 0.4\n\n2 0.1 0.2 0.1 0.1\n")
    (labels / "b.txt").write_text("")  # a background image
    (labels / "classes.txt").write_text("adult_males\njuveniles\npups\n")  # LabelImg's class list, not labels
    labs = _by_name(read_annotations(labels, "yolo", CLASSES, images_dir=tmp_path / "images"))
    assert set(labs) == {"a", "b"}
    a = labs["a"]
    assert a.size == (100, 50) and a.boxes is not None
    np.testing.assert_allclose(a.boxes.xyxy, [[39.5, 14.5, 59.5, 34.5], [4.5, 7.0, 14.5, 12.0]])
    np.testing.assert_allclose(a.points.xy, [[49.5, 24.5], [9.5, 9.5]])
    assert a.boxes.cls.tolist() == [0, 2]
    assert labs["b"].boxes is not None and len(labs["b"].boxes) == 0


def test_csv_reader(tmp_path: Path) -> None:
    (tmp_path / "points.csv").write_text("image,x,y,class\n1,10,20,pups\n1,3.5,4,juveniles\n2,0,0,adult_males\n")
    labs = _by_name(read_annotations(tmp_path / "points.csv", "csv", CLASSES))
    np.testing.assert_allclose(labs["1"].points.xy, [[10, 20], [3.5, 4]])
    assert labs["1"].points.cls.tolist() == [2, 1] and labs["2"].points.cls.tolist() == [0]


def test_real_sample_through_coco_and_yolo(tmp_path: Path, sealions: Path) -> None:
    # real points.csv -> COCO (sizes from the photos) -> YOLO (squares per class) -> the same points again
    classes = SEALION_CLASSES.with_boxes([48, 40, 36, 28, 16])
    points = read_annotations(sealions / "points.csv", "csv", classes)
    write_annotations(points, tmp_path / "ann.json", "coco", classes, images_dir=sealions / "train")
    coco = read_annotations(tmp_path / "ann.json", "coco", classes)
    write_annotations(coco, tmp_path / "labels", "yolo", classes)
    yolo = _by_name(read_annotations(tmp_path / "labels", "yolo", classes, images_dir=sealions / "train"))
    for lab in points:
        height, width = cv2.imread(str(sealions / "train" / f"{lab.image}.jpg")).shape[:2]
        assert yolo[lab.image].size == (width, height)
        _same(lab.points.xy, lab.points.cls, yolo[lab.image].points.xy, yolo[lab.image].points.cls)


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["coco", "labelstudio"])
def test_bad_json_names_file_and_line(tmp_path: Path, fmt: str) -> None:
    # broken JSON on line 2
    (tmp_path / "ann.json").write_text('{"images": [\n  {"id": 1,, }]}')
    with pytest.raises(InputError, match=r"ann\.json is not valid JSON \(line 2"):
        read_annotations(tmp_path / "ann.json", fmt, CLASSES)


def test_bad_xml_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "ann.xml").write_text("<annotations>\n  <image name='a.jpg'>\n</annotations>")
    with pytest.raises(InputError, match=r"ann\.xml is not valid XML \(line 3"):
        read_annotations(tmp_path / "ann.xml", "cvat", CLASSES)


@pytest.mark.parametrize(
    ("fmt", "text", "message"),
    [
        # COCO without its image list
        ("coco", '{"annotations": []}', r"ann is not a COCO file: it needs an 'images' list"),
        # a COCO image without a file name
        ("coco", '{"images": [{"id": 1}]}', r"ann images\[0\] needs an 'id' and a 'file_name'"),
        # a CVAT video export
        ("cvat", "<annotations><track id='0'/></annotations>", r"CVAT for video"),
        # another XML document
        ("cvat", "<svg/>", r"root element is <svg>"),
        # Label Studio: not a list of tasks
        ("labelstudio", '"hello"', r"expected a list of tasks"),
    ],
)
def test_missing_keys(tmp_path: Path, fmt: str, text: str, message: str) -> None:
    (tmp_path / "ann").write_text(text)
    with pytest.raises(InputError, match=message):
        read_annotations(tmp_path / "ann", fmt, CLASSES)


def test_coco_bad_number_skips_only_its_image(tmp_path: Path) -> None:
    doc = {
        "images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
        "annotations": [
            {"id": 7, "image_id": 1, "category_id": 1, "bbox": ["left", 1, 2, 3]},
            {"id": 8, "image_id": 2, "category_id": 1, "bbox": [1, 1, 2, 3]},
        ],
        "categories": [{"id": 1, "name": "pups"}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    with pytest.raises(
        InputError, match=r"ann\.json annotation 7 \(image 'a'\): each bbox value must be a number, got 'l"
    ):
        read_annotations(tmp_path / "ann.json", "coco", CLASSES)
    labels, skipped = read_annotations_report(tmp_path / "ann.json", "coco", CLASSES)
    assert [lab.image for lab in labels] == ["b"]
    assert [s.item for s in skipped] == ["a"] and "annotation 7" in skipped[0].reason


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        # a COCO category
        (
            "coco",
            json.dumps(
                {
                    "images": [{"id": 1, "file_name": "a.jpg"}],
                    "categories": [{"id": 1, "name": "walrus"}],
                    "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 0, 0]}],
                }
            ),
        ),
        # a CVAT label
        (
            "cvat",
            "<annotations><image name='a.jpg'><points label='walrus' points='1,1'/></image></annotations>",
        ),
        # a Label Studio label
        ("labelstudio", json.dumps([_ls_task(1, "a.jpg", [_kp(1, 1, "walrus")])])),
        # a CSV class
        ("csv", "image,x,y,class\na,1,1,walrus\n"),
    ],
)
def test_unknown_label(tmp_path: Path, fmt: str, text: str) -> None:
    (tmp_path / "ann").write_text(text)
    with pytest.raises(InputError, match=r"'walrus' is not in classes\.yaml.*adult_males, juveniles, pups"):
        read_annotations_report(tmp_path / "ann", fmt, CLASSES)


@pytest.mark.parametrize(
    ("call", "verb"),
    [
        (lambda p: read_annotations(p, "pascal_voc", CLASSES), "read are csv, coco, yolo, cvat, labelstudio"),
        (lambda p: write_annotations([], p, "cvat", CLASSES), "written are csv, coco, yolo"),
    ],
)
def test_unknown_format(tmp_path: Path, call, verb: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=rf"^unknown annotation format '\w+'; the formats that can be {verb}$"):
        call(tmp_path / "x")


def test_yolo_needs_images(tmp_path: Path) -> None:
    (tmp_path / "labels").mkdir()
    with pytest.raises(InputError, match="needs the images folder"):
        read_annotations(tmp_path / "labels", "yolo", CLASSES)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0 0.5 0.5 0.1\n", r"line 1: expected 'class cx cy w h'"),  # a missing field
        (
            "0 0.5 0.5 0.1 0.1\n1 a 0.5 0.1 0.1\n",
            r"line 2: expected an integer class and four numbers",
        ),  # a word
        (
            "7 0.5 0.5 0.1 0.1\n",
            r"line 1: class 7 is out of range; classes.yaml has 3 classes",
        ),  # a bad class
        ("0 320 240 20 20\n", r"line 1: coordinates must be fractions"),  # pixels, not fractions
        ("0 0.5 0.5 0.1 0.1\n0 nan 0.5 0.1 0.1\n", r"line 2: coordinates must be fractions"),  # not a number
        (b"\xff\xfe\x00", r"could not be read as text"),  # not text
    ],
)
def test_yolo_broken_file_skips_its_image(tmp_path: Path, text: str | bytes, reason: str) -> None:
    for name in ("good", "bad"):
        _image(tmp_path / "images", name, 64, 48)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "good.txt").write_text("1 0.5 0.5 0.25 0.25\n")
    bad = tmp_path / "labels" / "bad.txt"
    bad.write_bytes(text) if isinstance(text, bytes) else bad.write_text(text)
    with pytest.raises(InputError, match=rf"^bad\.txt: {reason}"):
        read_annotations(tmp_path / "labels", "yolo", CLASSES, images_dir=tmp_path / "images")
    labels, skipped = read_annotations_report(tmp_path / "labels", "yolo", CLASSES, images_dir=tmp_path / "images")
    assert [lab.image for lab in labels] == ["good"]
    assert [s.item for s in skipped] == ["bad"]


def test_yolo_missing_image_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "lost.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    labels, skipped = read_annotations_report(tmp_path / "labels", "yolo", CLASSES, images_dir=tmp_path / "images")
    assert labels == [] and skipped[0].item == "lost" and "no image named lost.*" in skipped[0].reason


@pytest.mark.parametrize(
    ("fmt", "text", "item", "reason"),
    [
        # a second COCO image with the same name
        (
            "coco",
            json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "x/a.png"}]}),
            "a",
            "a second image named 'a'",
        ),
        # a CVAT point that is not a number
        (
            "cvat",
            "<annotations><image name='a.jpg'><points label='pups' points='1,one'/></image></annotations>",
            "a",
            "a point's y must be a number, got 'one'",
        ),
        # a rotated CVAT box
        (
            "cvat",
            "<annotations><image name='a.jpg'><box label='pups' xtl='1' ytl='1' xbr='2' ybr='2' "
            "rotation='30'/></image></annotations>",
            "a",
            "rotated by 30 degrees",
        ),
        # a Label Studio rectangle with swapped corners (negative width)
        ("labelstudio", json.dumps([_ls_task(1, "a.jpg", [_rect(10, 10, -5, 5)])]), "a", "negative size"),
        # a Label Studio result without the image size that its percentages need
        (
            "labelstudio",
            json.dumps([_ls_task(1, "a.jpg", [{**_kp(1, 1), "original_width": None, "original_height": None}])]),
            "a",
            "original_width",
        ),
        # a Label Studio task without data.image
        (
            "labelstudio",
            json.dumps([{"id": 4, "data": {"text": "hi"}, "annotations": []}]),
            "task 4",
            "data.image",
        ),
        # a COCO annotation pointing to no image
        (
            "coco",
            json.dumps({"images": [], "annotations": [{"id": 5, "image_id": 9, "bbox": [1, 1, 1, 1]}]}),
            "annotation 5",
            "image_id 9",
        ),
    ],
)
def test_per_image_problems(tmp_path: Path, fmt: str, text: str, item: str, reason: str) -> None:
    (tmp_path / "ann").write_text(text)
    with pytest.raises(InputError, match=f"^ann .*{reason}"):
        read_annotations(tmp_path / "ann", fmt, CLASSES)
    _, skipped = read_annotations_report(tmp_path / "ann", fmt, CLASSES)
    assert [s.item for s in skipped] == [item] and reason in skipped[0].reason


def test_write_needs_sizes(tmp_path: Path) -> None:
    lab = ImageLabels("a", Points([[1.0, 1.0]], [0]))
    with pytest.raises(InputError, match="'a' has no known size and COCO needs width and height"):
        write_annotations([lab], tmp_path / "out.json", "coco", CLASSES)
    assert not (tmp_path / "out.json").exists()
    # with an images folder, an image that is not there is skipped and the others written
    _image(tmp_path / "images", "b", 8, 8)
    skipped = write_annotations_report(
        [lab, ImageLabels("b", Points([[2.0, 2.0]], [1]))],
        tmp_path / "out.json",
        "coco",
        CLASSES,
        tmp_path / "images",
    )
    assert [s.item for s in skipped] == ["a"]
    assert [i["file_name"] for i in json.loads((tmp_path / "out.json").read_text())["images"]] == ["b.png"]


def test_yolo_points_need_box_sizes(tmp_path: Path) -> None:
    # pups has no box side in classes.yaml, so a lone pup point cannot become a YOLO box
    lab = ImageLabels("a", Points([[1.0, 1.0], [5.0, 5.0]], [2, 1]), None, (10, 10))
    with pytest.raises(ConfigError, match=r"'a' has 1 point\(s\) of pups without a box .* give pups a box side"):
        write_annotations([lab], tmp_path / "labels", "yolo", CLASSES)
    assert not (tmp_path / "labels").exists()


def test_write_refuses_duplicates_and_bad_classes(tmp_path: Path) -> None:
    lab = ImageLabels("a", Points([[1.0, 1.0]], [0]), None, (10, 10))
    with pytest.raises(InputError, match="'a' appears twice"):
        write_annotations([lab, lab], tmp_path / "out.json", "coco", CLASSES)
    with pytest.raises(InputError, match=r"class index outside 0\.\.2"):
        write_annotations([ImageLabels("b", Points([[1.0, 1.0]], [3]))], tmp_path / "p.csv", "csv", CLASSES)


def test_formats_lists() -> None:
    assert FORMATS_IN == ("csv", "coco", "yolo", "cvat", "labelstudio")
    assert FORMATS_OUT == ("csv", "coco", "yolo")


def test_yolo_refuses_objects_outside_the_image(tmp_path: Path) -> None:
    # a box centred outside a 10x10 image cannot be a YOLO line; that image is skipped, the other written
    outside = ImageLabels("out", Points([[15.0, 5.0]], [0]), Boxes([[13.0, 3.0, 17.0, 7.0]], [0]), (10, 10))
    inside = ImageLabels("in", Points([[5.0, 5.0]], [0]), Boxes([[3.0, 3.0, 7.0, 7.0]], [0]), (10, 10))
    with pytest.raises(InputError, match=r"'out': the box \[13.0, 3.0, 17.0, 7.0\] has its centre outside the 10x10"):
        write_annotations([outside, inside], tmp_path / "labels", "yolo", CLASSES)
    skipped = write_annotations_report([outside, inside], tmp_path / "labels", "yolo", CLASSES)
    assert [s.item for s in skipped] == ["out"]
    assert sorted(p.name for p in (tmp_path / "labels").iterdir()) == ["in.txt"]


def test_uncovered_points_matches_all_pairs() -> None:
    # the sorted matcher finds exactly the points that sit (within 1e-6) on a box centre of their class
    from rookery.data.formats._common import uncovered_points

    rng = np.random.default_rng(3)
    for _ in range(200):
        m, n = rng.integers(1, 30, 2)
        centres = rng.integers(0, 4, (m, 2)).astype(float)  # many shared x values and duplicates
        boxes = Boxes(np.hstack([centres - 1, centres + 1]), rng.integers(0, 2, m))
        nudge = rng.choice([0.0, 5e-7, 1e-3], (n, 2))  # on the centre, within tolerance, off it
        points = Points(centres[rng.integers(0, m, n)] + nudge, rng.integers(0, 2, n))
        got = uncovered_points(ImageLabels("x", points, boxes))
        close = np.abs(points.xy[:, None] - boxes.centers()[None]).max(axis=2) <= 1e-6
        want = points.select(~(close & (points.cls[:, None] == boxes.cls[None])).any(axis=1))
        np.testing.assert_array_equal(got.xy, want.xy)
        np.testing.assert_array_equal(got.cls, want.cls)
