"""Count calibration: per-class thresholds and intervals fitted on held-out photos (rookery.inference.calibration)."""

from __future__ import annotations

import numpy as np
import pytest

from rookery.inference.calibration import CountCalibration, HeldOut, coverage, fit_calibration


def _photo(true: list[int], scores: dict[int, list[float]]) -> HeldOut:
    cls = np.concatenate([np.full(len(v), c) for c, v in scores.items()]).astype(np.int64)
    score = np.concatenate([np.asarray(v, float) for v in scores.values()])
    return HeldOut(np.asarray(true), cls, score)


def test_thresholds_are_chosen_per_class_on_held_out_counts():
    # class 0: 3 true animals scored 0.9, plus 2 false ones at 0.3 -> its threshold goes above 0.3;
    # class 1: 4 true animals scored 0.2 -> its threshold goes down to 0.2 or below
    photos = [_photo([3, 4], {0: [0.9, 0.9, 0.9, 0.3, 0.3], 1: [0.2, 0.2, 0.2, 0.2]}) for _ in range(4)]
    cal = fit_calibration(photos, default_conf=0.5)
    assert cal.thresholds is not None
    assert 0.3 < cal.thresholds[0] <= 0.9 and cal.thresholds[1] <= 0.2
    assert all(p.counts(np.asarray(cal.thresholds)).tolist() == [3, 4] for p in photos)


@pytest.mark.parametrize(
    "counts",
    [
        [0, 0],  # nothing found: the interval still allows a few animals
        [5, 50],  # the interval grows with the count
        [900, 3],  # a dense colony
    ],
)
def test_intervals_hold_the_count_and_widen_with_it(counts):
    cal = CountCalibration.default(2)
    iv = cal.intervals(counts)
    assert np.all(iv[:, 0] <= counts) and np.all(np.asarray(counts) <= iv[:, 1])
    assert np.all(iv[:, 0] >= 0) and iv[0, 1] >= 1
    width = iv[:, 1] - iv[:, 0]
    assert width[np.argmax(counts)] >= width[np.argmin(counts)]


def test_a_biased_model_gets_an_interval_around_the_truth_not_its_count():
    # the model finds half of the animals on every held-out photo, whatever the threshold
    rng = np.random.default_rng(0)
    photos = []
    for n in (20, 40, 80, 160, 30, 60):
        found = n // 2 + int(rng.integers(-2, 3))
        photos.append(_photo([n], {0: [0.95] * found}))
    cal = fit_calibration(photos, level=0.9)
    assert cal.bias[0] > 0.5  # log((n + 1) / (n / 2 + 1)) ~ log 2
    assert coverage(photos, cal) >= 0.8
    lo, hi = cal.intervals([50])[0]
    assert lo <= 100 <= hi  # ~100 animals when 50 are found


def test_round_trip_and_malformed_calibration_falls_back_to_the_default():
    cal = fit_calibration([_photo([2, 1], {0: [0.8, 0.7], 1: [0.6]})])
    assert CountCalibration.from_dict(cal.to_dict(), 2) == cal
    assert CountCalibration.from_dict({"bias": [0.0]}, 2) == CountCalibration.default(2)
    assert CountCalibration.from_dict(cal.to_dict(), 3) == CountCalibration.default(3)  # another class list
