"""Detection caps (issue 16): conf=0 with iou=1 cannot make a photo's detections (and NMS) grow without bound; a
cap per tile (before NMS) and per photo, both settings, and the answer says when one was hit."""

from __future__ import annotations

import numpy as np

from rookery.inference.backends import CappedBackend


class _Raw:
    """A backend returning a fixed YOLO head output."""

    name = "fake"
    class_names = ("a", "b")
    stride = 32

    def __init__(self, raw: np.ndarray) -> None:
        self.raw = raw

    def prepare(self, batch: np.ndarray) -> np.ndarray:
        return batch

    def run(self, prepared: np.ndarray) -> np.ndarray:
        return self.raw.copy()


def test_the_per_tile_cap_keeps_the_best_candidates_above_conf():
    rng = np.random.default_rng(0)
    raw = rng.uniform(0, 1, (2, 6, 500)).astype(np.float32)
    raw[1, 4:, :] = 0.0  # the second tile has no candidate at all
    capped = CappedBackend(_Raw(raw), per_tile=10)
    capped.conf = 0.0
    out = capped.run(None)
    best = out[:, 4:, :].max(axis=1)
    assert (best[0] > 0).sum() == 10 and (best[1] > 0).sum() == 0
    np.testing.assert_array_equal(np.sort(best[0])[-10:], np.sort(raw[0, 4:, :].max(axis=0))[-10:])  # the best
    assert capped.hits == 1 and capped.name == "fake" and capped.stride == 32
    capped.hits, capped.conf = 0, 0.999  # few candidates above a high conf: nothing is cut
    np.testing.assert_array_equal(capped.run(None), raw)
    assert capped.hits == 0


def test_conf_zero_and_iou_one_are_capped_and_the_answer_says_so(make_client, photo_bytes: bytes):
    files = [("files", ("a.jpg", photo_bytes, "image/jpeg"))]
    with make_client(max_detections_per_tile=5, max_detections_per_photo=3) as client:
        response = client.post("/api/v1/predict", files=files, data={"conf": "0"})
        assert response.status_code == 200, response.text
        (result,) = response.json()["results"]
        assert result["total"] == len(result["detections"]) <= 3
        assert "ROOKERY_MAX_DETECTIONS_PER_TILE" in result["capped"]
        assert "ROOKERY_MAX_DETECTIONS_PER_PHOTO" in result["capped"]
        # the same caps through /invocations
        import base64

        body = {"inputs": {"image": [base64.b64encode(photo_bytes).decode()]}, "params": {"conf": 0.0}}
        rows = client.post("/invocations", json=body).json()["predictions"]
        assert 0 < len(rows) <= 3
        # a usual confidence hits no cap
        (result,) = client.post("/api/v1/predict", files=files, data={"conf": "0.5"}).json()["results"]
        assert result["capped"] is None
