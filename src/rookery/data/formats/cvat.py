"""CVAT for images 1.1 XML: `<points>` (one or several points per element) and `<box>` shapes.

Other shapes (polygon, polyline, ellipse, mask, tag) are not objects rookery can count from and are
ignored. Rotated boxes are refused for their image, since rookery's boxes are axis-aligned.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from rookery.data.classes import Classes
from rookery.data.formats._common import Bad, Collector, LabelMap, Problems, number, size_of, stem_of
from rookery.errors import InputError
from rookery.types import ImageLabels


def read_cvat(path: Path, classes: Classes, problems: Problems) -> list[ImageLabels]:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        line, column = e.position
        raise InputError(f"{path.name} is not valid XML (line {line}, column {column}: {_reason(e)})") from e
    except OSError as e:
        raise InputError(f"{path} could not be read: {e.strerror or e}") from e
    if root.tag != "annotations":
        raise InputError(f"{path.name} is not a CVAT export: its root element is <{root.tag}>, not <annotations>")
    if root.find("track") is not None:
        raise InputError(
            f"{path.name} holds <track> elements (CVAT for video); export the task as 'CVAT for images 1.1' instead"
        )
    label = LabelMap(classes, path)
    found: dict[str, Collector] = {}
    bad: set[str] = set()
    for i, element in enumerate(root.findall("image")):
        where = f"<image id={element.get('id', f'#{i}')!r}>"
        file_name = element.get("name")
        if not file_name:
            raise InputError(f"{path.name} {where} has no 'name' attribute")
        name = stem_of(file_name)
        if name in found:
            problems.add(
                name,
                f"{path.name} {where} is a second image named {name!r} (rookery keys images "
                "by file name without extension), so it is skipped",
            )
            continue
        image = found[name] = Collector()
        try:
            image.size = size_of(element.get("width"), element.get("height"), where)
            for shape in element:
                _add_shape(image, shape, label, where)
        except Bad as e:
            bad.add(name)
            problems.add(name, f"{path.name} {where}: {e}", e)
    return [c.build(name) for name, c in found.items() if name not in bad]


def _add_shape(image: Collector, shape: ET.Element, label: LabelMap, where: str) -> None:
    if shape.tag not in ("points", "box"):
        return
    cls = label(shape.get("label"), f"{where} <{shape.tag}>")
    if shape.tag == "points":
        text = shape.get("points")
        if not text:
            raise Bad("a <points> element has no 'points' attribute")
        for pair in text.split(";"):
            xy = pair.split(",")
            if len(xy) != 2:
                raise Bad(f"<points> must be 'x1,y1;x2,y2;...', got {text!r}")
            image.point(number(xy[0], "a point's x"), number(xy[1], "a point's y"), cls)
    else:
        if number(shape.get("rotation", 0), "box rotation") % 360 != 0:
            raise Bad(f"a <box> is rotated by {shape.get('rotation')} degrees; rookery boxes are axis-aligned")
        x1, y1, x2, y2 = (number(shape.get(k), f"box {k}") for k in ("xtl", "ytl", "xbr", "ybr"))
        image.box(x1, y1, x2, y2, cls)


def _reason(e: ET.ParseError) -> str:
    """expat's message without the 'line X, column Y' it repeats."""
    return str(e).split(":")[0]
