"""Annotation files in and out: CSV points, COCO, YOLO, CVAT and Label Studio, as rookery's own types.

Every reader returns one `ImageLabels` per image, keyed by the image's file name without extension,
with class indices into `Classes` (file labels are matched by class name; YOLO's by index).

Coordinates. rookery puts the centre of the top-left pixel at (0, 0). COCO, CVAT, Label Studio and
YOLO use continuous coordinates in which the top-left *corner* of the image is (0, 0), so that
pixel's centre is (0.5, 0.5). Every coordinate, point or box corner, is converted by the same shift:

    x_rookery = x_file - 0.5        y_rookery = y_file - 0.5

so a box keeps its area of the image and its width and height: a box covering exactly pixel
columns 0..9 is x 0..10 in COCO and -0.5..9.5 in rookery, and its centre, 4.5, is the object's
rookery point. Writing applies the inverse shift, so write-then-read round-trips to float precision.
(Detectron2 reads COCO *keypoints* as pixel indices; rookery reads all of a COCO file the same way,
so that a point and a zero-size bbox at the same place agree.)

Points and boxes. `points` holds every object (a box's centre stands for it) and `boxes`, when not
None, the objects that have a box. Writers emit each box as a box and each point that is not the
centre of a box of its class as a point (see each module for how its format spells a point).

Problems. A malformed file raises InputError naming the file (and the line, element or annotation).
A label outside classes.yaml raises InputError naming it and the known classes. A problem confined
to one image (a bad number in one annotation, one broken YOLO txt file, a duplicate image name)
raises in `read_annotations` / `write_annotations`, while `read_annotations_report` /
`write_annotations_report` skip that whole image (partial labels would teach a model that the
missing animals are background) and return it as a `Skipped` with its reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rookery.data.classes import Classes
from rookery.data.formats._common import Problems, check_unique
from rookery.errors import InputError
from rookery.types import ImageLabels, Skipped

FORMATS_IN = ("csv", "coco", "yolo", "cvat", "labelstudio")
FORMATS_OUT = ("csv", "coco", "yolo")

# CSV keeps 6 decimals (a millionth of a pixel), where points.csv from the dots finder keeps 2.
_CSV_DECIMALS = 6
# Where a file format is written when `out` is an existing folder.
_DEFAULT_NAMES = {"csv": "points.csv", "coco": "annotations.json"}


def read_annotations(path: Path, fmt: str, classes: Classes, images_dir: Path | None = None) -> list[ImageLabels]:
    """Read an annotation file (a folder for YOLO); any problem raises InputError."""
    return _read(Path(path), fmt, classes, images_dir, Problems(strict=True))


def read_annotations_report(
    path: Path, fmt: str, classes: Classes, images_dir: Path | None = None
) -> tuple[list[ImageLabels], list[Skipped]]:
    """Like read_annotations, but an image with a problem of its own is skipped and reported."""
    problems = Problems(strict=False)
    labels = _read(Path(path), fmt, classes, images_dir, problems)
    return labels, problems.skipped


def write_annotations(
    labels: Sequence[ImageLabels], out: Path, fmt: str, classes: Classes, images_dir: Path | None = None
) -> None:
    """Write labels as `fmt` (a file for csv and coco, a folder of txt files for yolo).

    `images_dir` supplies image sizes (COCO, YOLO) and file names (COCO) when `ImageLabels.size` is
    None. Any problem raises before anything is written.
    """
    _write(labels, Path(out), fmt, classes, images_dir, Problems(strict=True))


def write_annotations_report(
    labels: Sequence[ImageLabels], out: Path, fmt: str, classes: Classes, images_dir: Path | None = None
) -> list[Skipped]:
    """Like write_annotations, but an image whose size cannot be found is skipped and reported.

    When every image is skipped, nothing is written (no empty file that looks like a result).
    """
    problems = Problems(strict=False)
    _write(labels, Path(out), fmt, classes, images_dir, problems)
    return problems.skipped


def output_path(out: Path, fmt: str) -> Path:
    """Where `fmt` lands: an existing folder gets points.csv / annotations.json inside it."""
    out = Path(out)
    name = _DEFAULT_NAMES.get(_check(fmt, FORMATS_OUT, "written"))
    return out / name if name and out.is_dir() else out


def _check(fmt: str, known: tuple[str, ...], verb: str) -> str:
    key = str(fmt).strip().lower()
    if key not in known:
        raise InputError(f"unknown annotation format {fmt!r}; the formats that can be {verb} are {', '.join(known)}")
    return key


def _read(path: Path, fmt: str, classes: Classes, images_dir: Path | None, problems: Problems) -> list[ImageLabels]:
    key = _check(fmt, FORMATS_IN, "read")
    if not path.exists():
        raise InputError(f"annotations {path} do not exist")
    if key != "yolo" and not path.is_file():
        raise InputError(f"{key} annotations are one file, and {path} is not a file")
    images_dir = Path(images_dir) if images_dir is not None else None
    if key == "csv":
        from rookery.data.points_csv import read_points_csv

        return list(read_points_csv(path, classes).values())
    if key == "coco":
        from rookery.data.formats.coco import read_coco

        return read_coco(path, classes, problems)
    if key == "yolo":
        from rookery.data.formats.yolo import read_yolo

        return read_yolo(path, classes, images_dir, problems)
    if key == "cvat":
        from rookery.data.formats.cvat import read_cvat

        return read_cvat(path, classes, problems)
    from rookery.data.formats.labelstudio import read_labelstudio

    return read_labelstudio(path, classes, problems)


def _write(
    labels: Sequence[ImageLabels],
    out: Path,
    fmt: str,
    classes: Classes,
    images_dir: Path | None,
    problems: Problems,
) -> None:
    key = _check(fmt, FORMATS_OUT, "written")
    check_unique(labels)
    for lab in labels:
        for part in (lab.points.cls, lab.boxes.cls if lab.boxes is not None else None):
            if part is not None and len(part) and not (part.min() >= 0 and part.max() < len(classes)):
                raise InputError(f"image {lab.image!r} has a class index outside 0..{len(classes) - 1}")
    out = output_path(out, key)
    images_dir = Path(images_dir) if images_dir is not None else None
    if key == "csv":
        from rookery.data.points_csv import write_points_csv

        write_points_csv(out, labels, classes, decimals=_CSV_DECIMALS)
    elif key == "coco":
        from rookery.data.formats.coco import write_coco

        write_coco(labels, out, classes, images_dir, problems)
    else:
        from rookery.data.formats.yolo import write_yolo

        write_yolo(labels, out, classes, images_dir, problems)
