"""Label Studio JSON export (a list of tasks): `keypointlabels` points and `rectanglelabels` boxes.

- Coordinates are percentages of `original_width` / `original_height`, corner origin.
- Of a task's annotations, the one marked `ground_truth` is used, else the last one not cancelled
  (several annotators would otherwise count each animal several times). A task with no such
  annotation is not labelled yet and is left out: reading it as "no animals" would be wrong.
- The image name comes from `data.image`, a URL or path (`/data/upload/3/8f3a2b1c-DSC_0042.JPG`,
  `/data/local-files/?d=survey/DSC_0042.JPG`, `s3://bucket/DSC_0042.JPG`): its file name without
  extension. Label Studio prefixes uploaded files with 8 hex digits and a dash; that prefix is
  stripped, so `8f3a2b1c-DSC_0042.JPG` is the image `DSC_0042` (a photo whose own name starts with
  8 hex digits and a dash loses them too).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from rookery.data.classes import Classes
from rookery.data.formats._common import (
    Bad,
    Collector,
    LabelMap,
    Problems,
    load_json,
    number,
    size_of,
    stem_of,
)
from rookery.errors import InputError
from rookery.types import ImageLabels

_UPLOAD_PREFIX = re.compile(r"^[0-9a-fA-F]{8}-")
_KINDS = ("keypointlabels", "rectanglelabels")


def image_name(url: str) -> str:
    """The rookery image name of a task's `data.image`."""
    parsed = urlparse(url)
    local = parse_qs(parsed.query).get("d")  # local-files storage puts the path in ?d=
    path = local[0] if local else unquote(parsed.path)
    return _UPLOAD_PREFIX.sub("", stem_of(path), count=1)


def read_labelstudio(path: Path, classes: Classes, problems: Problems) -> list[ImageLabels]:
    data = load_json(path)
    tasks = [data] if isinstance(data, dict) else data
    if not isinstance(tasks, list):
        raise InputError(f"{path.name} is not a Label Studio export: expected a list of tasks")
    label = LabelMap(classes, path)
    found: dict[str, Collector] = {}
    first: dict[str, str] = {}
    bad: set[str] = set()
    for i, task in enumerate(tasks):
        if not isinstance(task, dict):
            raise InputError(f"{path.name} item {i} is not a Label Studio task but {type(task).__name__}")
        where = f"task {task.get('id', f'#{i}')}"
        data_field = task.get("data")
        url = data_field.get("image") if isinstance(data_field, dict) else None
        name = image_name(url) if isinstance(url, str) else ""
        if not name:
            problems.add(where, f"{path.name} {where} has no usable data.image ({url!r}), so it is skipped")
            continue
        try:
            annotation = _chosen(task.get("annotations"))
        except Bad as e:
            problems.add(name, f"{path.name} {where}: {e}", e)
            continue
        if annotation is None:
            continue
        if name in found:
            problems.add(
                name,
                f"{path.name} {where} is a second task for image {name!r} (the first is "
                f"{first[name]}), so it is skipped",
            )
            continue
        image = found[name] = Collector()
        first[name] = where
        try:
            _add_results(image, annotation.get("result"), label, where)
        except Bad as e:
            bad.add(name)
            problems.add(name, f"{path.name} {where} (image {name!r}): {e}", e)
    return [c.build(name) for name, c in found.items() if name not in bad]


def _chosen(annotations: object) -> dict[str, object] | None:
    if annotations is None:
        return None
    if not isinstance(annotations, list) or not all(isinstance(a, dict) for a in annotations):
        raise Bad(f"'annotations' must be a list of objects, got {annotations!r}")
    done = [a for a in annotations if not a.get("was_cancelled")]
    truth = [a for a in done if a.get("ground_truth")]
    return truth[0] if truth else (done[-1] if done else None)


def _add_results(image: Collector, results: object, label: LabelMap, where: str) -> None:
    if not isinstance(results, list):
        raise Bad(f"an annotation's 'result' must be a list, got {results!r}")
    for k, r in enumerate(results):
        if not isinstance(r, dict) or r.get("type") not in _KINDS:
            continue  # choices, polygons, text...: not countable objects
        kind = r["type"]
        value = r.get("value")
        if not isinstance(value, dict):
            raise Bad(f"result {k} has no 'value' object")
        names = value.get(kind)
        if not isinstance(names, list) or len(names) != 1:
            raise Bad(f"result {k} needs exactly one label in value.{kind}, got {names!r}")
        cls = label(names[0], f"{where} result {k}")
        size = size_of(r.get("original_width"), r.get("original_height"), f"result {k} original")
        if size is None:
            raise Bad(f"result {k} lacks original_width and original_height, needed to turn percentages into pixels")
        image.size = image.size or size
        sx, sy = size[0] / 100, size[1] / 100
        x, y = number(value.get("x"), "value.x") * sx, number(value.get("y"), "value.y") * sy
        if kind == "keypointlabels":
            image.point(x, y, cls)
            continue
        if number(value.get("rotation", 0), "value.rotation") % 360 != 0:
            raise Bad(
                f"result {k} is a rectangle rotated by {value.get('rotation')} degrees; rookery boxes are axis-aligned"
            )
        w, h = (
            number(value.get("width"), "value.width") * sx,
            number(value.get("height"), "value.height") * sy,
        )
        image.box(x, y, x + w, y + h, cls)
