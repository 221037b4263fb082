"""Synthetic surveys shared by the data tests: generated once per session.

`synth_survey` is lossless (png) so that dots are exact; `synth_survey_jpg` is the same survey as JPEG,
like the real photos. Both are full-resolution object scale (adult males 60-80 px, dots of radius 4).
"""

from __future__ import annotations

import pytest

from rookery.data.synthetic import SurveySummary, generate_survey


def _survey(tmp_path_factory: pytest.TempPathFactory, image_format: str) -> SurveySummary:
    out = tmp_path_factory.mktemp(f"synth_{image_format}")
    return generate_survey(
        out, images=3, size=(1600, 1200), num_classes=3, seed=0, workers=1, image_format=image_format
    )


@pytest.fixture(scope="session")
def synth_survey(tmp_path_factory: pytest.TempPathFactory) -> SurveySummary:
    """3 photos of 1600x1200, 3 classes, seed 0, png."""
    return _survey(tmp_path_factory, "png")


@pytest.fixture(scope="session")
def synth_survey_jpg(tmp_path_factory: pytest.TempPathFactory) -> SurveySummary:
    """The same survey written as JPEG (quality 95)."""
    return _survey(tmp_path_factory, "jpg")
