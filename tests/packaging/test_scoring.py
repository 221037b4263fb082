"""The private MLflow functions the /invocations route relies on (packaging/scoring.py), called directly: a release
of MLflow that renames or changes one fails here, by name, instead of in a user's request."""

from __future__ import annotations

import base64
import json

import pytest

pytest.importorskip("mlflow")

from rookery.packaging.scoring import ScoringRejected, parse_request, predictions_json

_IMAGE = base64.b64encode(b"\xff\xd8\xff not really a jpeg").decode()


def test_mlflow_still_has_the_private_scoring_functions():
    from mlflow.pyfunc import _validate_prediction_input, scoring_server

    for name in ("_split_data_and_params", "infer_and_parse_data", "parse_csv_input", "predictions_to_json"):
        assert callable(getattr(scoring_server, name, None)), f"mlflow.pyfunc.scoring_server.{name} is gone"
    assert callable(_validate_prediction_input)


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": {"columns": ["image"], "data": [[_IMAGE]]}, "params": {"conf": 0.4}},
        {"dataframe_records": [{"image": _IMAGE}], "params": {"conf": 0.4}},
        {"instances": [{"image": _IMAGE}], "params": {"conf": 0.4}},
    ],
)
def test_each_json_form_parses_to_one_row_and_its_params(body):
    frame, params = parse_request(json.dumps(body).encode(), "application/json", tile=640, overlap=64)
    assert list(frame.columns) == ["image"] and frame["image"].tolist() == [_IMAGE]
    assert params is not None and params["conf"] == pytest.approx(0.4)
    assert params["tile"] == 640 and params["overlap"] == 64  # the signature's defaults fill the rest


def test_csv_parses_like_json():
    frame, _ = parse_request(f"image\n{_IMAGE}\n", "text/csv", tile=640, overlap=64)
    assert frame["image"].tolist() == [_IMAGE]


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        json.dumps({"dataframe_split": {"columns": ["image"], "data": [[_IMAGE]]}, "params": {"conf": "x"}}),
    ],
)
def test_a_bad_request_is_rejected_with_mlflows_status_and_a_short_message(body):
    with pytest.raises(ScoringRejected) as caught:
        parse_request(body if isinstance(body, bytes) else body.encode(), "application/json", tile=640, overlap=64)
    assert caught.value.status_code == 400 and caught.value.error_code
    assert len(str(caught.value)) <= 300


def test_predictions_are_written_as_mlflow_serve_writes_them():
    import pandas as pd

    frame = pd.DataFrame({"image": [0], "class": ["pups"], "score": [0.9]})
    assert json.loads(predictions_json(frame)) == {"predictions": [{"image": 0, "class": "pups", "score": 0.9}]}
