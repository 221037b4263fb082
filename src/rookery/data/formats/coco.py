"""COCO JSON: `bbox` boxes, `keypoints` points, and points written as zero-size boxes.

Reading, per annotation:
- visible keypoints (v > 0) become one point each; a real bbox beside them is kept as a box;
- otherwise a bbox with w = h = 0 is a point at (x, y), and any other bbox is a box plus its centre
  as the object's point;
- an annotation with keypoints that are all invisible adds nothing.

Writing: every box is a bbox annotation; every point that is not the centre of a box of its class
(an object known only as a point) is a 1-keypoint annotation `keypoints = [x, y, 2]` with a zero-size
`bbox = [x, y, 0, 0]` at the same place, so tools that only read bboxes still see where it is.
Categories are the classes in order with ids from 1, each with the one keypoint "center".
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from rookery.data.classes import Classes
from rookery.data.formats._common import (
    SHIFT,
    Bad,
    Collector,
    LabelMap,
    Problems,
    load_json,
    number,
    numbers,
    size_for_writing,
    size_of,
    stem_of,
    uncovered_points,
)
from rookery.errors import InputError
from rookery.types import ImageLabels


def read_coco(path: Path, classes: Classes, problems: Problems) -> list[ImageLabels]:
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise InputError(f"{path.name} is not a COCO file: it needs an 'images' list")
    anns = data.get("annotations", [])
    cats = data.get("categories", [])
    if not isinstance(anns, list) or not isinstance(cats, list):
        raise InputError(f"{path.name}: 'annotations' and 'categories' must be lists")
    label = LabelMap(classes, path)
    cat_names = _categories(path, cats)

    images: dict[object, str | None] = {}  # COCO image id -> rookery image name (None: a skipped duplicate)
    found: dict[str, Collector] = {}
    bad: set[str] = set()
    for i, entry in enumerate(data["images"]):
        if not isinstance(entry, dict) or not _is_id(entry.get("id")) or not isinstance(entry.get("file_name"), str):
            raise InputError(f"{path.name} images[{i}] needs an 'id' and a 'file_name'")
        name = stem_of(entry["file_name"])
        if name in found:
            images[entry["id"]] = None
            problems.add(
                name,
                f"{path.name} images[{i}] is a second image named {name!r} (rookery keys images "
                "by file name without extension), so it is skipped",
            )
            continue
        images[entry["id"]] = name
        found[name] = Collector()
        try:
            found[name].size = size_of(entry.get("width"), entry.get("height"), f"image {name!r}")
        except Bad as e:
            bad.add(name)
            problems.add(name, f"{path.name} images[{i}]: {e}", e)

    for i, ann in enumerate(anns):
        if not isinstance(ann, dict):
            raise InputError(f"{path.name} annotations[{i}] is not an object but {ann!r}")
        where = f"annotation {ann.get('id', f'#{i}')}"
        image_id = ann.get("image_id")
        if not _is_id(image_id) or image_id not in images:
            problems.add(
                where,
                f"{path.name} {where} refers to no image in 'images' (image_id {image_id!r}), so it is skipped",
            )
            continue
        image_name = images[image_id]
        if image_name is None or image_name in bad:
            continue  # its image is already skipped, with its reason
        name = image_name
        cat = ann.get("category_id")
        if not _is_id(cat) or cat not in cat_names:
            bad.add(name)
            problems.add(name, f"{path.name} {where}: category_id {cat!r} is not in 'categories'")
            continue
        cls = label(cat_names[cat], where)
        try:
            _add_annotation(found[name], ann, cls)
        except Bad as e:
            bad.add(name)
            problems.add(name, f"{path.name} {where} (image {name!r}): {e}", e)
    return [c.build(name) for name, c in found.items() if name not in bad]


def _is_id(value: object) -> bool:
    return isinstance(value, int | str) and not isinstance(value, bool)


def _categories(path: Path, cats: list[object]) -> dict[object, str]:
    out: dict[object, str] = {}
    for i, cat in enumerate(cats):
        if not isinstance(cat, dict) or not _is_id(cat.get("id")) or not isinstance(cat.get("name"), str):
            raise InputError(f"{path.name} categories[{i}] needs an 'id' and a 'name'")
        out[cat["id"]] = cat["name"]
    return out


def _add_annotation(image: Collector, ann: dict[str, object], cls: int) -> None:
    bbox = numbers(ann["bbox"], 4, "bbox") if ann.get("bbox") is not None else None
    if bbox is not None and (bbox[2] < 0 or bbox[3] < 0):
        raise Bad(f"bbox width and height must not be negative, got {bbox}")
    keypoints = ann.get("keypoints")
    if keypoints:
        if not isinstance(keypoints, list) or len(keypoints) % 3:
            raise Bad(f"keypoints must be a list of x, y, v triples, got {keypoints!r}")
        for k in range(0, len(keypoints), 3):
            x, y, v = (number(value, "keypoint") for value in keypoints[k : k + 3])
            if v > 0:
                image.point(x, y, cls)
        if bbox is not None and (bbox[2] > 0 or bbox[3] > 0):
            image.box(bbox[0], bbox[1], bbox[0] + bbox[2], bbox[1] + bbox[3], cls, centre=False)
    elif bbox is None:
        raise Bad("it has neither 'bbox' nor 'keypoints'")
    elif bbox[2] == 0 and bbox[3] == 0:
        image.point(bbox[0], bbox[1], cls)
    else:
        image.box(bbox[0], bbox[1], bbox[0] + bbox[2], bbox[1] + bbox[3], cls)


def write_coco(
    labels: Sequence[ImageLabels], out: Path, classes: Classes, images_dir: Path | None, problems: Problems
) -> None:
    images: list[dict[str, object]] = []
    anns: list[dict[str, object]] = []
    for lab in labels:
        size = size_for_writing(lab, images_dir, problems, "COCO needs width and height")
        if size is None:
            continue
        image_id = len(images) + 1
        images.append(
            {
                "id": image_id,
                "file_name": _file_name(lab.image, images_dir),
                "width": int(size[0]),
                "height": int(size[1]),
            }
        )
        if lab.boxes is not None:
            for (x1, y1, x2, y2), c in zip(lab.boxes.xyxy.tolist(), lab.boxes.cls.tolist(), strict=True):
                w, h = x2 - x1, y2 - y1
                anns.append(
                    {
                        "id": len(anns) + 1,
                        "image_id": image_id,
                        "category_id": c + 1,
                        "bbox": [x1 + SHIFT, y1 + SHIFT, w, h],
                        "area": w * h,
                        "iscrowd": 0,
                    }
                )
        points = uncovered_points(lab)
        for (x, y), c in zip(points.xy.tolist(), points.cls.tolist(), strict=True):
            x, y = x + SHIFT, y + SHIFT
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": c + 1,
                    "bbox": [x, y, 0.0, 0.0],
                    "area": 0.0,
                    "iscrowd": 0,
                    "keypoints": [x, y, 2],
                    "num_keypoints": 1,
                }
            )
    if labels and not images:
        return  # every image was skipped (and reported): leave no empty file that looks like a result
    categories = [
        {"id": i + 1, "name": name, "supercategory": "object", "keypoints": ["center"], "skeleton": []}
        for i, name in enumerate(classes.names)
    ]
    doc = {
        "info": {"description": "written by rookery"},
        "licenses": [],
        "images": images,
        "annotations": anns,
        "categories": categories,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc))


def _file_name(image: str, images_dir: Path | None) -> str:
    """The real file name when the image is found, else `<image>.jpg` (survey photos are JPEG)."""
    if images_dir is not None:
        from rookery.imaging import find_image

        found = find_image(images_dir, image)
        if found is not None:
            return found.name
    return f"{image}.jpg"
