"""Synthetic aerial surveys: textured ground, colonies of animals, painted twins with exact dots.

The embedded data set of the demo, the tests and the benchmarks; it has the layout of the real
Steller sea lion sample (../shared/data/sealions), so every tool runs on both.
"""

from rookery.data.synthetic.profiles import CLASS_ORDER, dot_radius, survey_classes
from rookery.data.synthetic.scene import Scene, make_scene
from rookery.data.synthetic.survey import SurveySummary, generate_survey

__all__ = [
    "CLASS_ORDER",
    "Scene",
    "SurveySummary",
    "dot_radius",
    "generate_survey",
    "make_scene",
    "survey_classes",
]
