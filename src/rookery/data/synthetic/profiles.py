"""What each synthetic class looks like: body size, colour and how common it is.

Figures are for a full-resolution survey photo (~5000x3300 px, object_scale=1), after the Steller sea
lion surveys: adult males are the largest and darkest, pups small and near-black, females brown.
"""

from __future__ import annotations

from dataclasses import dataclass

from rookery.data.classes import SEALION_CLASSES, Classes, ClassSpec
from rookery.errors import ConfigError

# The order in which `num_classes` takes classes: the most common first, and with 3 one class is small.
CLASS_ORDER = ("adult_females", "pups", "adult_males", "juveniles", "subadult_males")
MAX_CLASSES = len(CLASS_ORDER)


@dataclass(frozen=True)
class Profile:
    length: tuple[float, float]  # body length range in px at object_scale 1
    color: tuple[int, int, int]  # typical body colour, RGB
    weight: float  # relative frequency in a colony


PROFILES: dict[str, Profile] = {
    "adult_males": Profile((60, 80), (128, 98, 78), 0.07),
    "subadult_males": Profile((50, 65), (150, 118, 92), 0.09),
    "adult_females": Profile((40, 55), (204, 164, 122), 0.46),
    "juveniles": Profile((28, 38), (170, 152, 128), 0.13),
    "pups": Profile((14, 22), (52, 46, 44), 0.25),
}

WIDTH_RATIO = (0.40, 0.50)  # body width / length


def dot_radius(object_scale: float) -> int:
    """Radius of the painted dot: 4 px at full resolution, never below 2 px."""
    return max(2, round(4 * object_scale))


def min_separation(object_scale: float) -> float:
    """Closest two animal centres may be, so that two dots never touch."""
    return 2 * dot_radius(object_scale) + 3


def survey_classes(num_classes: int, object_scale: float = 1.0) -> Classes:
    """The first `num_classes` of CLASS_ORDER, listed in the sea lion palette's order (as the real
    data's counts.csv), each with its dot colour and `box` = typical body length at this scale."""
    if not 1 <= num_classes <= MAX_CLASSES:
        raise ConfigError(f"the number of classes must be 1 to {MAX_CLASSES}, got {num_classes}")
    chosen = set(CLASS_ORDER[:num_classes])
    specs = [
        ClassSpec(s.name, s.color, round(sum(PROFILES[s.name].length) / 2 * object_scale, 2))
        for s in SEALION_CLASSES
        if s.name in chosen
    ]
    return Classes(tuple(specs))
