"""classes.yaml: the object classes, their dot colours and (optionally) their box sizes.

Two forms are accepted per entry, in the order that defines the class index:

    adult_males: [243, 8, 5]                     # name -> dot colour (RGB)
    pups: {color: [38, 174, 21], box: 24}        # box: side in pixels at the photo's scale
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from rookery.errors import ConfigError


@dataclass(frozen=True)
class ClassSpec:
    name: str
    color: tuple[int, int, int]  # RGB of the painted dot
    box: float | None = None  # box side in pixels; None = estimate from data


@dataclass(frozen=True)
class Classes:
    """An ordered list of classes; the position is the class index used everywhere inside rookery."""

    specs: tuple[ClassSpec, ...]

    def __post_init__(self) -> None:
        if not self.specs:
            raise ConfigError("no classes are defined; classes.yaml needs at least one 'name: [R, G, B]' entry")
        names = [s.name for s in self.specs]
        if len(set(names)) != len(names):
            raise ConfigError(f"class names must be unique, got {names}")

    def __len__(self) -> int:
        return len(self.specs)

    def __iter__(self) -> Iterator[ClassSpec]:
        return iter(self.specs)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.specs]

    @property
    def colors(self) -> list[tuple[int, int, int]]:
        return [s.color for s in self.specs]

    def index(self, name: str) -> int:
        for i, s in enumerate(self.specs):
            if s.name == name:
                return i
        raise ConfigError(f"class {name!r} is not in classes.yaml (known: {', '.join(self.names)})")

    def with_boxes(self, boxes: Iterable[float | None]) -> Classes:
        return Classes(tuple(ClassSpec(s.name, s.color, b) for s, b in zip(self.specs, boxes, strict=True)))

    def to_yaml_dict(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for s in self.specs:
            color = list(s.color)
            out[s.name] = color if s.box is None else {"color": color, "box": s.box}
        return out

    def save(self, path: Path) -> None:
        path.write_text(yaml.safe_dump(self.to_yaml_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: Path) -> Classes:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"classes file {path} does not exist; write one with 'name: [R, G, B]' per class")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise ConfigError(f"classes file {path} is not valid YAML: {e}") from e
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: object, source: str = "classes") -> Classes:
        if not isinstance(raw, dict) or not raw:
            raise ConfigError(f"{source} must map each class name to an RGB colour, e.g. 'pups: [38, 174, 21]'")
        specs = []
        for name, value in raw.items():
            color, box = (value.get("color"), value.get("box")) if isinstance(value, dict) else (value, None)
            if (
                not isinstance(color, list | tuple)
                or len(color) != 3
                or not all(isinstance(c, int) and 0 <= c <= 255 for c in color)
            ):
                raise ConfigError(f"{source}: class {name!r} needs a colour [R, G, B] of integers 0-255, got {color!r}")
            if box is not None and (not isinstance(box, int | float) or box <= 0):
                raise ConfigError(f"{source}: class {name!r} has box size {box!r}; it must be a positive number")
            specs.append(ClassSpec(str(name), (color[0], color[1], color[2]), None if box is None else float(box)))
        return cls(tuple(specs))


# The Steller sea lion survey palette (../shared/data/sealions/README.md), in the competition's order.
SEALION_CLASSES = Classes(
    (
        ClassSpec("adult_males", (243, 8, 5)),
        ClassSpec("subadult_males", (244, 8, 242)),
        ClassSpec("adult_females", (87, 46, 10)),
        ClassSpec("juveniles", (25, 56, 176)),
        ClassSpec("pups", (38, 174, 21)),
    )
)
