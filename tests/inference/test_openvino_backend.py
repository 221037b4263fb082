"""OpenVINO on the real tiny model: the same raw output and detections as ONNX Runtime, one compiled shape,
auto selection on the CPU, and an int8 model from NNCF that loads and counts."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from inference_fakes import squares_on_grey

from rookery.data.tiling import tile_grid
from rookery.errors import ConfigError
from rookery.inference import OnnxBackend, Predictor
from rookery.inference.backends import cuda_available
from rookery.inference.decode import stack_tiles
from rookery.inference.openvino_backend import OpenVinoBackend, openvino_available

pytestmark = pytest.mark.skipif(
    not openvino_available(), reason="openvino is not installed (pip install 'rookery[openvino]')"
)


def _sorted(boxes):
    order = np.lexsort((boxes.xyxy[:, 1], boxes.xyxy[:, 0], boxes.cls))
    return boxes.xyxy[order], boxes.cls[order], boxes.score[order]


@pytest.mark.parametrize("streams", [1, 2])  # one request on every core; the batch split over two requests
def test_raw_output_matches_onnx_runtime_anchor_by_anchor(tiny_model, streams: int) -> None:
    photo = squares_on_grey(200, 150)
    tiles = tile_grid(200, 150, 64, 16)
    batch = stack_tiles([t.crop(photo) for t in tiles], (64, 64))  # 12 tiles: 6 per stream
    ov = OpenVinoBackend(tiny_model.onnx, streams=streams)
    ort = OnnxBackend(tiny_model.onnx)
    a = ov.run(ov.prepare(batch))
    b = ort.run(ort.prepare(batch))
    assert a.shape == b.shape == (len(tiles), 4 + len(tiny_model.names), 84)
    np.testing.assert_allclose(a[:, :4], b[:, :4], atol=1e-2)
    np.testing.assert_allclose(a[:, 4:], b[:, 4:], atol=1e-4)


def test_a_short_batch_gets_its_own_shape_and_short_tiles_are_letterboxed(tiny_model) -> None:
    ov = OpenVinoBackend(tiny_model.onnx, streams=2)
    ort = OnnxBackend(tiny_model.onnx)
    photo = squares_on_grey(200, 150, seed=2)
    full = stack_tiles([t.crop(photo) for t in tile_grid(200, 150, 64, 16)[:8]], (64, 64))
    ov.run(ov.prepare(full))
    assert sorted(ov._compiled) == [8] and ov._size == (64, 64)
    # 3 tiles of 32x64 (a short edge row): a batch of 4 (two per stream), padded to 64x64 with grey
    short = stack_tiles([photo[:32, i * 64 : (i + 1) * 64] for i in range(3)], (32, 64))
    prepared = ov.prepare(short)
    assert prepared[0].shape == (4, 64, 64, 3)
    a = ov.run(prepared)
    assert sorted(ov._compiled) == [4, 8] and ov._size == (64, 64)  # no blank rows beyond the streams' rounding
    b = ort.run(ort.prepare(stack_tiles(list(short), (64, 64))))  # ONNX Runtime on the same padded tiles
    assert a.shape == b.shape == (3, 4 + len(tiny_model.names), 84)
    np.testing.assert_allclose(a[:, 4:], b[:, 4:], atol=1e-4)
    ov.run(ov.prepare(full[:7]))  # 7 rows round up to the 8 already compiled
    assert sorted(ov._compiled) == [4, 8]


@pytest.mark.parametrize("merge", ["nms", "greedy"])
def test_openvino_and_onnx_runtime_give_the_same_detections(tiny_model, merge: str) -> None:
    # conf 0.001: after one epoch the scores sit near the head's prior (see conftest.py)
    options = {"tile": 64, "overlap": 16, "conf": 0.001, "batch": 8, "merge": merge}
    photos = [squares_on_grey(300, 200), squares_on_grey(130, 70, seed=4)]  # 28 tiles, then 6: a last batch of 2 rows
    ov = Predictor.from_path(tiny_model.onnx, backend="openvino", **options)
    ort = Predictor.from_path(tiny_model.onnx, backend="onnx", **options)
    assert ov.backend_name == "openvino" and ov.class_names == tiny_model.names
    for a, b in zip(ov.predict_many(photos), ort.predict_many(photos), strict=True):
        assert len(a) == len(b) > 0  # type: ignore[arg-type]
        for x, y in zip(_sorted(a), _sorted(b), strict=True):
            np.testing.assert_allclose(x, y, atol=1e-2)


def test_auto_picks_openvino_on_the_cpu(tiny_model, tmp_path: Path) -> None:
    if cuda_available():
        pytest.skip("with a CUDA GPU, auto picks PyTorch on it")
    assert Predictor.from_path(tiny_model.pt).backend_name == "openvino"  # the export beside the .pt
    assert Predictor.from_path(tiny_model.onnx).backend_name == "openvino"
    alone = tmp_path / "alone.pt"
    shutil.copyfile(tiny_model.pt, alone)
    with pytest.raises(ConfigError, match=r"no ONNX model next to alone\.pt"):
        Predictor.from_path(alone, backend="openvino")


def test_int8_model_from_nncf_loads_and_counts(tiny_model, tmp_path: Path) -> None:
    pytest.importorskip("nncf", reason="nncf is not installed (pip install nncf)")
    from rookery.inference.quantize import quantize_openvino

    photos = [squares_on_grey(300, 200, seed=s) for s in range(3)]
    xml = quantize_openvino(tiny_model.onnx, photos, tmp_path / "tiny.int8.xml", tile=64, overlap=16, tiles=24)
    assert xml.is_file() and xml.with_suffix(".bin").is_file()
    int8 = Predictor.from_path(xml, tile=64, overlap=16, conf=0.001)
    assert int8.backend_name == "openvino" and int8.backend.quantized
    assert int8.class_names == tiny_model.names  # the export's metadata travels into the IR
    ref = Predictor.from_path(tiny_model.onnx, backend="onnx", tile=64, overlap=16, conf=0.001)
    photo = squares_on_grey(300, 200, seed=9)
    raw_ref = ref.backend.run(ref.backend.prepare(stack_tiles([photo[:64, :64]], (64, 64))))
    raw_int8 = int8.backend.run(int8.backend.prepare(stack_tiles([photo[:64, :64]], (64, 64))))
    # int8 moves values, not the meaning: scores stay within a few hundredths of the float model's
    assert np.abs(raw_int8[:, 4:] - raw_ref[:, 4:]).max() < 0.05
    with pytest.raises(ConfigError, match="OpenVINO model"):
        Predictor.from_path(xml, backend="onnx")
