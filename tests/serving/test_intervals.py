"""Count intervals in the service (Predictor.intervals): from the session's real Predictor, with and without a
count calibration, and as stored in the history."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from rookery.inference.calibration import CountCalibration
from rookery.inference.predictor import Predictor
from rookery.packaging.models import load_predictor
from rookery.types import CountIntervals

COUNTS = [3, 40]


def count_intervals(predictor: Predictor, counts: list[int], overrides: dict) -> CountIntervals:
    """What the service computes for a request with these options."""
    return predictor.intervals(np.asarray(counts), conf_overridden="conf" in overrides)


@pytest.fixture
def predictor(trained_model) -> Predictor:
    predictor, _ = load_predictor("models:/rookery@champion")
    assert predictor.calibration is None  # the session's model: no calibration, the default interval
    return predictor


def calibrated(predictor: Predictor, **fields) -> Predictor:
    calibration = replace(CountCalibration(0.8, (0.3, 0.4), (0.1, -0.05), (0.2, 0.3), photos=6), **fields)
    return Predictor(predictor.backend, predictor.options, calibration=calibration)


def test_an_uncalibrated_model_gets_the_default_90_percent_interval(predictor: Predictor) -> None:
    got = count_intervals(predictor, COUNTS, {})
    expected = CountCalibration.default(2).intervals(np.array(COUNTS))
    assert got.level == 0.9 and got.calibrated is False
    assert list(got.classes) == list(predictor.class_names)
    assert list(got.classes.values()) == [tuple(b) for b in expected.tolist()]
    assert all(lo <= n <= hi for n, (lo, hi) in zip(COUNTS, got.classes.values(), strict=True))
    assert got.total == (int(expected[:, 0].sum()), int(expected[:, 1].sum()))


@pytest.mark.parametrize(
    ("fields", "overrides", "is_calibrated"),
    [
        ({}, {}, True),  # fitted on held-out photos, used with its own thresholds
        ({}, {"conf": 0.1}, False),  # the request set one threshold for all classes: not what was calibrated
        ({"thresholds": None}, {}, False),  # thresholds dropped (a server started with --conf)
        ({"photos": 0}, {}, False),  # a calibration fitted on no photo is the default
        ({}, {"tile": 96}, True),  # other options do not touch the thresholds
    ],
)
def test_a_calibrated_model_says_when_its_calibration_is_in_force(
    predictor: Predictor, fields: dict, overrides: dict, is_calibrated: bool
) -> None:
    model = calibrated(predictor, **fields)
    got = count_intervals(model, COUNTS, overrides)
    assert got.calibrated is is_calibrated and got.level == 0.8
    assert list(got.classes.values()) == [tuple(b) for b in model.count_intervals(np.array(COUNTS)).tolist()]


def test_stored_form_round_trips_and_a_missing_one_is_none() -> None:
    iv = CountIntervals(0.9, True, {"pups": (10, 31), "adult_males": (0, 2)})
    stored = iv.to_json()
    assert stored == {
        "level": 0.9,
        "calibrated": True,
        "classes": {"pups": [10, 31], "adult_males": [0, 2]},
        "total": [10, 33],
    }
    assert CountIntervals.from_json(stored) == iv
    assert CountIntervals.from_json(None) is None  # a row made before intervals existed
