"""POST /invocations: MLflow's scoring protocol, answered like the registered pyfunc model answers.

Clients send plain JSON (no pandas on the client side) in each of the four formats; the answer must be what
`mlflow.pyfunc.load_model(uri).predict(...)` gives for the same photos and params, wrapped as `mlflow models
serve` wraps it: {"predictions": [records]}.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import pytest

CONF = 0.001  # the weak model's proposals: there are rows to compare


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _payloads(images: list[str], params: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    extra = {"params": params} if params is not None else {}
    return {
        "dataframe_split": {"dataframe_split": {"columns": ["image"], "data": [[i] for i in images]}, **extra},
        "dataframe_records": {"dataframe_records": [{"image": i} for i in images], **extra},
        "inputs": {"inputs": {"image": images}, **extra},
        "instances": {"instances": [{"image": i} for i in images], **extra},
    }


def _pyfunc_predictions(uri: str, tracking_uri: str, images: list[str], params: dict[str, Any] | None) -> list[Any]:
    """What MLflow's own pyfunc loader answers, as `mlflow models serve` would serialise it."""
    import mlflow.pyfunc
    import pandas as pd
    from mlflow.utils.proto_json_utils import NumpyEncoder, _get_jsonable_obj

    from rookery.packaging.client import configure_client

    configure_client(tracking_uri)
    saved_path = list(sys.path)  # load_model prepends the model's code folder to sys.path
    try:
        model = mlflow.pyfunc.load_model(uri)
    finally:
        sys.path[:] = saved_path
    out = model.predict(pd.DataFrame({"image": images}), params=params)
    return list(json.loads(json.dumps(_get_jsonable_obj(out, pandas_orient="records"), cls=NumpyEncoder)))


def _assert_same_rows(got: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert set(g) == set(e) == {"image", "class", "score", "x1", "y1", "x2", "y2"}
        assert (g["image"], g["class"]) == (e["image"], e["class"])
        assert [g[k] for k in ("score", "x1", "y1", "x2", "y2")] == pytest.approx(
            [e[k] for k in ("score", "x1", "y1", "x2", "y2")], rel=1e-5, abs=1e-4
        )


@pytest.mark.parametrize("params", [{"conf": CONF}, None], ids=["conf", "defaults"])
def test_all_four_formats_answer_like_the_pyfunc_model(client, photos: list[Path], trained_model, params):
    images = [_b64(p.read_bytes()) for p in photos[:2]]
    expected = _pyfunc_predictions(
        f"models:/rookery/{trained_model.version}", trained_model.tracking_uri, images, params
    )
    if params is not None:
        assert {row["image"] for row in expected} == {0, 1}  # both photos have rows to compare
    for name, payload in _payloads(images, params).items():
        response = client.post("/invocations", json=payload)  # plain JSON: what any HTTP client sends
        assert response.status_code == 200, (name, response.text)
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert list(body) == ["predictions"], name
        _assert_same_rows(body["predictions"], expected)


def test_csv_input_too(client, photo_bytes: bytes):
    response = client.post(
        "/invocations", content=f"image\n{_b64(photo_bytes)}\n", headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    assert isinstance(response.json()["predictions"], list)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "fragment"),
    [
        ({"dataframe_records": [{"image": "not base64!"}]}, "application/json", 400, "row 0"),
        ({"dataframe_records": [{"image": _b64(b"hello, not an image")}]}, "application/json", 415, "row 0"),
        ({"dataframe_records": [{"photo": "x"}]}, "application/json", 400, "image"),  # no 'image' column
        ({"inputs": {"image": ["x"]}, "instances": [{"image": "x"}]}, "application/json", 400, "exactly one"),
        ({"data": [1, 2]}, "application/json", 400, "exactly one"),  # the pre-2.0 protocol
        ({"dataframe_records": [{"image": "x"}], "params": {"conf": "high"}}, "application/json", 400, "conf"),
        (b"{not json", "application/json", 400, "JSON"),
        (b"[1, 2, 3]", "application/json", 400, "list"),
        (b"image\nabc\n", "text/plain", 415, "application/json"),
    ],
)
def test_bad_requests_are_4xx_with_a_short_sentence(
    client, body: Any, content_type: str, status: int, fragment: str
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post("/invocations", content=content, headers={"Content-Type": content_type})
    assert response.status_code == status, response.text
    answer = response.json()
    assert fragment in answer["detail"] and answer["message"] == answer["detail"] and answer["error_code"]
    assert len(answer["detail"]) <= 300 and "\n" not in answer["detail"]
