"""The REST API with the session's real tiny model: every endpoint, the history across a restart, the API key.

The model is weak (one epoch at 64 px), so counts are checked for consistency (counts = detections per class,
total = their sum, the same as `rookery predict` on the same photo), never against a truth.
"""

from __future__ import annotations

import base64
import csv
import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from serving_helpers import prediction_with, settings_for

from rookery.packaging.models import load_predictor

LOW = {"conf": "0.001"}  # keeps the weak model's proposals, so there are boxes to count


def _upload(client, photos: list[tuple[str, bytes]], **form: str):
    files = [("files", (name, data, "application/octet-stream")) for name, data in photos]
    return client.post("/api/v1/predict", files=files, data=form)


def test_health_ready_and_the_model(client, trained_model):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"status": "ready", "model": "rookery v1 (champion)", "detail": None}
    model = client.get("/api/v1/model").json()
    assert model["name"] == "rookery" and model["version"] == trained_model.version and model["alias"] == "champion"
    assert model["uri"] == "models:/rookery@champion" and model["run_id"] == trained_model.run_id
    assert model["label"] == "rookery v1 (champion)" and model["following_alias"] is True
    assert len(model["class_names"]) == 2 and model["tile"] == 128
    assert "best/mAP50-95" in model["metrics"]
    assert model["mlflow_ui_url"] is None  # no ROOKERY_MLFLOW_UI_URL
    card = model["card"]  # written at training into rookery_model.json
    assert "training photos" in card["trained_on"] and "fingerprint" in card["trained_on"]
    assert card["classes"] == model["class_names"] and set(card["training_objects"]) == set(model["class_names"])
    assert card["recipe"] == "yolo" and "best/mAP50-95" in card["validation"]
    assert "photos like the training photos" in card["intended_use"]


def test_a_photo_with_nothing_found_says_what_that_may_mean(client):
    blank = cv2.imencode(".png", np.zeros((200, 300, 3), np.uint8))[1].tobytes()
    (result,) = _upload(client, [("blank.png", blank)], conf="0.99").json()["results"]
    assert result["total"] == 0
    assert result["note"].startswith("Nothing was found.") and "trained on" in result["note"]
    assert "Intended use:" in result["note"]


def test_predict_counts_a_photo_like_the_predictor_and_stores_it(client, photos: list[Path], trained_model):
    data = photos[0].read_bytes()
    response = _upload(client, [("survey/a photo.jpg", data)], **LOW, return_image="true")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["errors"] == []
    (result,) = body["results"]
    assert result["total"] > 0 and result["note"] is None  # only an empty result carries a note
    names = list(result["counts"])
    assert len(names) == 2
    # the same detections as the Predictor on the same photo
    predictor, _ = load_predictor("models:/rookery@champion", conf=0.001)
    boxes = predictor.predict(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
    assert result["total"] == len(boxes) > 0
    assert list(result["counts"].values()) == boxes.counts(2).tolist()
    assert [d["class_id"] for d in result["detections"]] == boxes.cls.tolist()
    # each count with its 90 % interval: the Predictor's (this model has no calibration: the default one)
    bounds = predictor.count_intervals(boxes.counts(2))
    assert result["intervals"] == dict(zip(names, bounds.tolist(), strict=True))
    assert all(lo <= result["counts"][n] <= hi for n, (lo, hi) in result["intervals"].items())
    assert any(lo < hi for lo, hi in result["intervals"].values())  # an interval, not the count twice
    assert result["total_interval"] == [sum(lo for lo, _ in bounds), sum(hi for _, hi in bounds)]
    assert result["total_interval"][0] <= result["total"] <= result["total_interval"][1]
    assert result["interval_level"] == 0.9 and result["interval_calibrated"] is False
    np.testing.assert_allclose(
        [[d["x1"], d["y1"], d["x2"], d["y2"]] for d in result["detections"]], boxes.xyxy, atol=0.01
    )
    assert result["file_name"] == "a photo.jpg" and (result["width"], result["height"]) == (384, 288)
    assert result["model"]["version"] == trained_model.version and result["model"]["run_id"] == trained_model.run_id
    assert set(result["timings_ms"]) >= {"decode", "inference", "total"}
    # the annotated image: a JPEG of the photo's size, also served by URL
    annotated = base64.b64decode(result["annotated_image"])
    assert cv2.imdecode(np.frombuffer(annotated, np.uint8), cv2.IMREAD_COLOR).shape == (288, 384, 3)
    image = client.get(result["image_url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg" and image.content == annotated
    upload = client.get(result["upload_url"])  # the photo as sent, for the page's own drawing of the boxes
    assert upload.status_code == 200 and upload.headers["content-type"] == "image/jpeg" and upload.content == data
    # stored: the record has everything but the inline image
    stored = client.get(f"/api/v1/predictions/{result['id']}").json()
    assert stored["detections"] == result["detections"] and stored["annotated_image"] is None
    assert stored["counts"] == result["counts"] and stored["created_at"] == result["created_at"]
    for key in ("intervals", "total_interval", "interval_level", "interval_calibrated"):
        assert stored[key] == result[key], key
    assert stored["model"] == result["model"]  # the run id too: that version is the one loaded


def test_several_photos_and_options(client, photos: list[Path]):
    uploads = [(p.name, p.read_bytes()) for p in photos[:3]]
    body = _upload(client, uploads, conf="0.001", tile="96", overlap="8").json()
    assert [r["file_name"] for r in body["results"]] == [p.name for p in photos[:3]]
    assert all(r["annotated_image"] is None for r in body["results"])  # not asked for
    for result in body["results"]:
        assert result["total"] == sum(result["counts"].values()) == len(result["detections"])
        assert list(result["intervals"]) == list(result["counts"])
        lows, highs = zip(*result["intervals"].values(), strict=True)
        assert result["total_interval"] == [sum(lows), sum(highs)]
    # a stricter confidence keeps a subset of the boxes (same tiles)
    loose = _upload(client, uploads[:1], conf="0.001").json()["results"][0]
    strict = _upload(client, uploads[:1], conf="0.01").json()["results"][0]
    assert strict["total"] <= loose["total"]


@pytest.mark.parametrize(
    ("form", "fragment"),
    [
        ({"conf": "1.5"}, "conf"),  # out of range
        ({"tile": "8"}, "tile"),  # below the minimum
        ({"tile": "64", "overlap": "64"}, "overlap"),  # overlap must be smaller than the tile
        ({"conf": "abc"}, "conf"),  # not a number
    ],
)
def test_bad_options_are_422_with_a_sentence(client, photo_bytes: bytes, form: dict[str, str], fragment: str):
    response = _upload(client, [("a.jpg", photo_bytes)], **form)
    assert response.status_code == 422
    assert fragment in response.json()["detail"]


def test_no_files_is_422(client):
    response = client.post("/api/v1/predict", data={"conf": "0.5"})
    assert response.status_code == 422 and "files" in response.json()["detail"]


def test_history_pages_newest_first_export_and_delete(client, photos: list[Path]):
    ids = []
    for p in photos[:3]:
        ids.append(_upload(client, [(p.name, p.read_bytes())], **LOW).json()["results"][0]["id"])
    page = client.get("/api/v1/predictions", params={"page": 1, "per_page": 2}).json()
    assert page["total"] == 3 and page["page"] == 1 and page["per_page"] == 2
    assert [i["id"] for i in page["items"]] == ids[::-1][:2]
    assert "detections" not in page["items"][0] and "annotated_image" not in page["items"][0]
    assert page["items"][0]["intervals"] and page["items"][0]["total_interval"]  # the history lists them too
    assert [i["id"] for i in client.get("/api/v1/predictions?page=2&per_page=2").json()["items"]] == [ids[0]]
    assert client.get("/api/v1/predictions?per_page=1000").status_code == 422
    # CSV export: a header with the classes, one row per prediction, counts as in the API
    response = client.get("/api/v1/predictions.csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["id"] for r in rows] == ids[::-1]
    first = client.get(f"/api/v1/predictions/{ids[0]}").json()
    row = next(r for r in rows if r["id"] == ids[0])
    assert {k: int(row[k]) for k in first["counts"]} == first["counts"] and int(row["total"]) == first["total"]
    assert row["model_version"] == "1" and row["file_name"] == photos[0].name
    # the intervals' block after the total, as in `rookery predict`'s counts.csv
    names = list(first["counts"])
    ends = [f"{c}_{end}" for c in (*names, "total") for end in ("lo", "hi")]
    assert response.text.splitlines()[0].split(",") == [
        "id",
        "created_at",
        "file_name",
        "model_version",
        *names,
        "total",
        *ends,
    ]
    assert {c: [int(row[f"{c}_lo"]), int(row[f"{c}_hi"])] for c in names} == first["intervals"]
    assert [int(row["total_lo"]), int(row["total_hi"])] == first["total_interval"]
    # delete: gone from the history, its image too; a second delete is 404
    assert client.delete(f"/api/v1/predictions/{ids[0]}").status_code == 204
    assert client.get(f"/api/v1/predictions/{ids[0]}").status_code == 404
    assert client.get(f"/api/v1/predictions/{ids[0]}/image").status_code == 404
    assert client.delete(f"/api/v1/predictions/{ids[0]}").status_code == 404
    assert client.get("/api/v1/predictions").json()["total"] == 2


def test_a_prediction_stored_without_intervals_has_null_intervals(client, photo_bytes: bytes):
    """A record from before count intervals existed (tests/serving/test_store.py migrates a real one) still loads:
    its interval fields are null in the API and its interval cells empty in the CSV."""
    from rookery.types import ModelRef

    new = _upload(client, [("new.jpg", photo_bytes)], **LOW).json()["results"][0]
    store = client.app.state.store
    old = store.add(
        prediction_with(
            "old.jpg", new["counts"], width=384, height=288, model=ModelRef("models:/rookery/1", "rookery", "1")
        ),
        upload=b"",
    )
    nulls = {"intervals": None, "total_interval": None, "interval_level": None, "interval_calibrated": None}
    got = client.get(f"/api/v1/predictions/{old.id}").json()
    assert {k: got[k] for k in nulls} == nulls and got["counts"] == new["counts"]
    items = client.get("/api/v1/predictions").json()["items"]
    assert [{k: i[k] for k in nulls} == nulls for i in items] == [True, False]  # newest first: the old row
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(client.get("/api/v1/predictions.csv").text))}
    ends = [f"{c}_{end}" for c in (*new["counts"], "total") for end in ("lo", "hi")]
    assert [rows[old.id][k] for k in ends] == [""] * len(ends)
    assert [int(rows[new["id"]][k]) for k in ends] == [
        v for lo_hi in (*new["intervals"].values(), new["total_interval"]) for v in lo_hi
    ]


@pytest.mark.parametrize("bad_id", ["nope", "0" * 32, "../../etc/passwd", "%2e%2e", "x" * 500])
def test_unknown_ids_are_404_json(client, bad_id: str):
    for path in (f"/api/v1/predictions/{bad_id}", f"/api/v1/predictions/{bad_id}/image"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert isinstance(response.json()["detail"], str)


def test_history_survives_a_restart(make_client, photo_bytes: bytes, tmp_path: Path):
    home = tmp_path / "kept-home"
    with make_client(home=home) as first:
        result = _upload(first, [("kept.jpg", photo_bytes)], **LOW).json()["results"][0]
        image = first.get(result["image_url"]).content
    with make_client(home=home) as second:  # a new app (new process state) on the same history URL and folder
        page = second.get("/api/v1/predictions").json()
        assert page["total"] == 1 and page["items"][0]["id"] == result["id"]
        again = second.get(f"/api/v1/predictions/{result['id']}").json()
        assert again["detections"] == result["detections"] and again["file_name"] == "kept.jpg"
        assert second.get(result["image_url"]).content == image


def test_the_api_key_guards_the_api_but_not_health_metrics_docs_or_pages(make_client, photo_bytes: bytes):
    with make_client(api_key="s3cret") as client:
        for method, path in [("get", "/api/v1/model"), ("get", "/api/v1/predictions"), ("post", "/invocations")]:
            response = getattr(client, method)(path)
            assert response.status_code == 401, path
            assert "X-API-Key" in response.json()["detail"]
        assert _upload(client, [("a.jpg", photo_bytes)]).status_code == 401
        assert client.get("/api/v1/model", headers={"X-API-Key": "wrong"}).status_code == 401
        assert client.get("/api/v1/model", headers={"X-API-Key": "s3cret"}).status_code == 200
        assert client.get("/api/v1/model", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.get("/api/v1/model", headers={"Authorization": "Basic s3cret"}).status_code == 401
        for public in ("/health", "/ready", "/metrics", "/docs", "/openapi.json"):
            assert client.get(public).status_code == 200, public
        assert client.get("/", headers={"Accept": "text/html"}).status_code == 200  # the web page: public


def test_reload_without_a_move_changes_nothing(client):
    response = client.post("/api/v1/model/reload")
    assert response.status_code == 200
    assert response.json()["changed"] is False and response.json()["model"]["version"] == "1"


def test_metrics_count_requests_images_objects_and_errors(client, photo_bytes: bytes):
    result = _upload(client, [("a.jpg", photo_bytes)], **LOW).json()["results"][0]
    _upload(client, [("bad.jpg", b"not an image")])
    text = client.get("/metrics").text
    assert 'rookery_http_requests_total{method="POST",route="/api/v1/predict",status="200"} 1.0' in text
    assert 'rookery_http_requests_total{method="POST",route="/api/v1/predict",status="415"} 1.0' in text
    assert 'rookery_http_request_duration_seconds_bucket{le="+Inf",route="/api/v1/predict"} 2.0' in text
    assert "rookery_images_total 1.0" in text
    for name, n in result["counts"].items():
        if n:
            assert f'rookery_objects_total{{class_name="{name}"}} {float(n)}' in text
    assert 'rookery_errors_total{kind="unsupported_type"} 1.0' in text
    assert 'rookery_model_info{alias="champion",name="rookery",uri="models:/rookery@champion",version="1"} 1.0' in text


def test_openapi_documents_every_endpoint(client):
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    expected = {
        "/api/v1/predict": {"post"},
        "/api/v1/predictions": {"get"},
        "/api/v1/predictions/{prediction_id}": {"get", "delete"},
        "/api/v1/predictions/{prediction_id}/image": {"get"},
        "/api/v1/predictions/{prediction_id}/upload": {"get"},
        "/api/v1/predictions.csv": {"get"},
        "/api/v1/model": {"get"},
        "/api/v1/model/reload": {"post"},
        "/invocations": {"post"},
        "/health": {"get"},
        "/ready": {"get"},
        "/metrics": {"get"},
    }
    for path, methods in expected.items():
        assert methods <= set(paths[path]), path
    # the key is declared exactly when the server requires one (the OpenAPI document is true)
    assert "securitySchemes" not in schema["components"]
    assert not any("security" in op for ops in paths.values() for op in ops.values())


def test_openapi_declares_the_key_when_the_server_has_one(tmp_path: Path):
    from fastapi.testclient import TestClient
    from serving_helpers import StubHolder

    from rookery.serving.app import create_app

    app = create_app(settings_for(tmp_path / "home", api_key="k"), holder=StubHolder())  # type: ignore[arg-type]
    with TestClient(app) as client:
        schema = client.get("/openapi.json").json()
    assert "APIKeyHeader" in schema["components"]["securitySchemes"]
    assert schema["paths"]["/api/v1/predict"]["post"]["security"]


def test_unexpected_failures_are_500_with_a_generic_sentence(trained_model, tmp_path: Path):
    from fastapi.testclient import TestClient

    from rookery.serving.app import create_app

    app = create_app(settings_for(tmp_path / "home"))

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
        assert response.status_code == 500
        assert "secret" not in response.text and "log" in response.json()["detail"]


def test_docs_are_served_from_the_package_not_a_cdn(tmp_path: Path, trained_model):
    """/docs works offline: its Swagger UI script and stylesheet come from this server (swagger-ui-bundle)."""
    from fastapi.testclient import TestClient

    from rookery.serving.app import create_app

    with TestClient(create_app(settings_for(tmp_path / "home"))) as client:
        page = client.get("/docs")
        assert page.status_code == 200 and "/docs/static/swagger-ui-bundle.js" in page.text
        assert "cdn" not in page.text.lower() and "https://" not in page.text
        script = client.get("/docs/static/swagger-ui-bundle.js")
        assert script.status_code == 200 and len(script.content) > 100_000
        assert client.get("/docs/static/swagger-ui.css").status_code == 200
