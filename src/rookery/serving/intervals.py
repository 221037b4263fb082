"""Count intervals in the service: computed with each prediction, stored in the history, answered by the API.

Each class's count comes with the interval of `Predictor.count_intervals` (rookery.inference.calibration;
90 % by default): a model trained with the heatmap recipe carries a calibration fitted on photos it never saw,
any other model gets the uncalibrated default (about +-40 %). The total's interval is the sum of the class lows
and of the class highs: conservative, i.e. at least as wide as a real interval of the total, as the errors of
the classes partly cancel.

`calibrated` says whether the interval's claim holds for this prediction: a fitted calibration, used with its
own per-class score thresholds. A request that sets `conf` replaces those thresholds with one for all classes
(and a server started with `--conf` drops them); its interval is then computed the same way but not calibrated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from rookery.inference.predictor import Predictor

_STORED_LEVEL = 0.9  # the level of a stored row that names none (every row written here names one)


@dataclass(frozen=True)
class CountIntervals:
    """Each class's count interval at `level`: [lo, hi] with lo <= count <= hi."""

    level: float  # 0.9: a 90 % interval
    calibrated: bool  # see the module docstring
    classes: dict[str, tuple[int, int]]  # the prediction's classes, in the order of its counts

    @property
    def total(self) -> tuple[int, int]:
        """The total's interval: the sum of the class lows and of the class highs (conservative, see above)."""
        return sum(lo for lo, _ in self.classes.values()), sum(hi for _, hi in self.classes.values())

    def to_json(self) -> dict[str, Any]:
        """As stored in the history's count_intervals column."""
        return {
            "level": float(self.level),
            "calibrated": bool(self.calibrated),
            "classes": {str(k): [int(lo), int(hi)] for k, (lo, hi) in self.classes.items()},
            "total": list(self.total),  # derived; kept for whoever reads the table directly
        }

    @classmethod
    def from_json(cls, value: Any) -> CountIntervals | None:
        """From the stored column; None for a row without intervals (one made before they existed)."""
        if not isinstance(value, dict) or not isinstance(value.get("classes"), dict):
            return None
        classes = {str(k): (int(lo), int(hi)) for k, (lo, hi) in value["classes"].items()}
        return cls(float(value.get("level", _STORED_LEVEL)), bool(value.get("calibrated", False)), classes)


def count_intervals(predictor: Predictor, counts: Sequence[int], overrides: Mapping[str, Any]) -> CountIntervals:
    """The intervals of one photo's counts (in the order of predictor.class_names); `overrides` are the request's
    options for the Predictor (a `conf` among them means the calibration's thresholds were not used)."""
    calibration = predictor.calibration
    bounds = predictor.count_intervals(np.asarray(counts, dtype=np.int64))
    calibrated = (
        calibration is not None
        and calibration.photos > 0
        and calibration.thresholds is not None
        and "conf" not in overrides
    )
    level = predictor.interval_level
    classes = {name: (int(lo), int(hi)) for name, (lo, hi) in zip(predictor.class_names, bounds.tolist(), strict=True)}
    return CountIntervals(float(level), calibrated, classes)
