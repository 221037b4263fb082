"""PyTorch and ONNX Runtime on a real (tiny) Ultralytics model, parity with Ultralytics, loading errors."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from inference_fakes import squares_on_grey

from rookery.data.tiling import tile_grid
from rookery.errors import ConfigError, InputError
from rookery.inference import OnnxBackend, Predictor, TorchBackend
from rookery.inference.backends import cuda_available
from rookery.inference.decode import decode, stack_tiles
from rookery.types import Boxes


def _assert_same(a: Boxes, b: Boxes, box_tol: float = 1e-2, score_tol: float = 1e-3) -> None:
    assert len(a) == len(b)
    oa = np.lexsort((a.xyxy[:, 1], a.xyxy[:, 0], a.cls))
    ob = np.lexsort((b.xyxy[:, 1], b.xyxy[:, 0], b.cls))
    assert a.cls[oa].tolist() == b.cls[ob].tolist()
    np.testing.assert_allclose(a.xyxy[oa], b.xyxy[ob], atol=box_tol)
    np.testing.assert_allclose(a.score[oa], b.score[ob], atol=score_tol)  # type: ignore[index]


def test_onnx_class_names_come_from_ultralytics_metadata(tiny_model) -> None:
    predictor = Predictor.from_path(tiny_model.onnx, backend="onnx")
    assert (predictor.backend_name, predictor.device) == ("onnx", "cpu")
    assert predictor.class_names == tiny_model.names
    assert Predictor.from_path(tiny_model.pt, backend="torch").class_names == tiny_model.names


def test_raw_outputs_of_torch_and_onnx_agree_anchor_by_anchor(tiny_model) -> None:
    photo = squares_on_grey(200, 150)
    tiles = tile_grid(200, 150, 64, 16)
    batch = stack_tiles([t.crop(photo) for t in tiles], (64, 64))
    torch_backend = TorchBackend.from_checkpoint(tiny_model.pt)
    onnx_backend = OnnxBackend(tiny_model.onnx)
    a = torch_backend.run(torch_backend.prepare(batch))
    b = onnx_backend.run(onnx_backend.prepare(batch))
    assert a.shape == b.shape == (len(tiles), 4 + len(tiny_model.names), 84)  # 8x8 + 4x4 + 2x2 anchors
    np.testing.assert_allclose(a[:, :4], b[:, :4], atol=1e-2)
    np.testing.assert_allclose(a[:, 4:], b[:, 4:], atol=1e-4)


@pytest.mark.parametrize("merge", ["nms", "greedy"])
def test_torch_and_onnx_give_the_same_detections(tiny_model, merge: str) -> None:
    # After one epoch the head is still close to its initialisation: its boxes are wider than a 64 px tile
    # and clipped to it, and scores sit near its prior (~0.006). A low conf keeps them.
    options = {"tile": 64, "overlap": 16, "conf": 0.001, "batch": 8, "merge": merge}
    photo = squares_on_grey(300, 200)
    on_torch = Predictor.from_path(tiny_model.pt, backend="torch", **options).predict(photo)
    on_onnx = Predictor.from_path(tiny_model.onnx, backend="onnx", **options).predict(photo)
    assert len(on_torch) > 0
    _assert_same(on_torch, on_onnx)


def test_decode_matches_ultralytics_nms_on_raw_output() -> None:
    # Random raw output with distinct scores and clustered boxes, through Ultralytics' own NMS and ours.
    import torch
    from ultralytics.utils.nms import non_max_suppression

    rng = np.random.default_rng(0)
    n, nc, anchors = 2, 3, 3000
    raw = np.zeros((n, 4 + nc, anchors), np.float32)
    centres = rng.uniform(40, 600, size=(40, 2))
    raw[:, :2] = np.moveaxis(centres[rng.integers(0, 40, (n, anchors))] + rng.normal(0, 6, (n, anchors, 2)), 2, 1)
    raw[:, 2:4] = rng.uniform(20, 40, (n, 2, anchors))
    raw[:, 4:] = rng.uniform(0, 1, (n, nc, anchors)) ** 4
    ours = decode(raw, np.array([[640, 640]] * n), nc, conf=0.25, iou=0.5)
    theirs = non_max_suppression(torch.from_numpy(raw), 0.25, 0.5, max_det=100_000, max_time_img=60.0)
    for t in range(n):
        ref = theirs[t].numpy().astype(np.float64)
        got = ours.tile == t
        assert got.sum() == len(ref) > 40
        order = np.argsort(-ours.score[got])
        np.testing.assert_allclose(ours.xyxy[got][order], ref[:, :4], atol=1e-3)
        np.testing.assert_allclose(ours.score[got][order], ref[:, 4], atol=1e-6)
        assert ours.cls[got][order].tolist() == ref[:, 5].astype(int).tolist()


def test_a_small_photo_matches_ultralytics_predict(tiny_model) -> None:
    from ultralytics import YOLO

    photo = squares_on_grey(64, 64, seed=3)
    ours = Predictor.from_path(tiny_model.pt, backend="torch", conf=0.001).predict(photo)
    result = YOLO(str(tiny_model.pt)).predict(photo, imgsz=64, conf=0.001, iou=0.5, max_det=10_000, verbose=False)
    ref = result[0].boxes
    theirs = Boxes(ref.xyxy.numpy() - 0.5, ref.cls.numpy(), ref.conf.numpy())  # pixel edges -> centres
    assert len(theirs) > 0
    _assert_same(ours, theirs, box_tol=1e-2, score_tol=1e-5)


def test_auto_backend_prefers_the_export_on_cpu_and_falls_back_to_torch(tiny_model, tmp_path: Path) -> None:
    from rookery.inference.openvino_backend import openvino_available

    if cuda_available():
        pytest.skip("with a CUDA GPU, auto picks PyTorch on it")
    # the export beside the .pt, on OpenVINO when it is installed (test_openvino_backend.py), else ONNX Runtime
    expected = "openvino" if openvino_available() else "onnx"
    assert Predictor.from_path(tiny_model.pt).backend_name == expected
    assert Predictor.from_path(tiny_model.onnx, backend="torch").backend_name == "torch"  # the .pt beside it
    alone = tmp_path / "alone.pt"
    shutil.copyfile(tiny_model.pt, alone)
    predictor = Predictor.from_path(alone)
    assert (predictor.backend_name, predictor.device) == ("torch", "cpu")
    with pytest.raises(ConfigError, match=r"no ONNX model next to alone\.pt"):
        Predictor.from_path(alone, backend="onnx")


def test_an_onnx_model_of_fixed_size_runs_tile_by_tile(tiny_model, tmp_path: Path) -> None:
    import onnx

    model = onnx.load(str(tiny_model.onnx))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8  # rookery's raw-tile input
    for dim, value in zip(model.graph.input[0].type.tensor_type.shape.dim, (1, 64, 64, 3), strict=True):
        dim.dim_value = value  # as exported with dynamic=False: batch 1, 64x64 (NHWC)
    fixed = tmp_path / "fixed.onnx"
    onnx.save(model, str(fixed))
    options = {"tile": 64, "overlap": 16, "conf": 0.001}
    predictor = Predictor.from_path(fixed, **options)
    assert (predictor.backend.max_batch, predictor.backend.input_size) == (1, (64, 64))
    photo = squares_on_grey(150, 100)
    _assert_same(predictor.predict(photo), Predictor.from_path(tiny_model.onnx, **options).predict(photo))
    with pytest.raises(ConfigError, match="takes only 64x64 inputs"):
        predictor.predict(photo, tile=128)


def _without_names(tiny_model, path: Path) -> None:
    import onnx

    model = onnx.load(str(tiny_model.onnx))
    kept = [(p.key, p.value) for p in model.metadata_props if p.key != "names"]
    del model.metadata_props[:]
    for key, value in kept:
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def _plain_dict_checkpoint(tiny_model, path: Path) -> None:
    import torch

    torch.save({"weights": [1, 2, 3]}, str(path))


def _write(data: bytes) -> Callable[[object, Path], int]:
    return lambda tiny_model, path: path.write_bytes(data)


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("missing.pt", None, "do not exist"),  # no such file
        ("model.txt", _write(b"hi"), "neither a PyTorch checkpoint"),  # the wrong kind of file
        ("broken.pt", _write(b"\x00garbage" * 100), "not a readable PyTorch checkpoint"),  # corrupt
        ("broken.onnx", _write(b"\x00garbage" * 100), "not a readable ONNX model"),  # corrupt
        ("nameless.onnx", _without_names, "has no class names in its metadata"),  # exported by something else
        ("dict.pt", _plain_dict_checkpoint, "not an Ultralytics checkpoint"),  # a torch file, not a model
    ],
)
def test_bad_weights_give_one_clear_error(tiny_model, tmp_path: Path, name: str, make, message: str) -> None:
    path = tmp_path / name
    if make is not None:
        make(tiny_model, path)
    with pytest.raises(InputError, match=message) as info:
        Predictor.from_path(path)
    assert "\n" not in str(info.value)
    if name.startswith("broken"):
        assert info.value.__cause__ is not None  # the library's own error is kept as the cause


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend": "tensorrt"}, "backend must be"),  # not a backend rookery has
        ({"device": "tpu"}, "device must be"),  # not a device
        ({"overlap": 700}, "overlap must be"),  # options are checked too
    ],
)
def test_bad_backend_options_are_config_errors(tiny_model, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Predictor.from_path(tiny_model.onnx, **kwargs)


def test_asking_for_cuda_without_a_gpu_is_a_config_error(tiny_model) -> None:
    if cuda_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        Predictor.from_path(tiny_model.pt, backend="torch", device="cuda:0")


@pytest.mark.gpu
def test_torch_on_cuda_matches_the_cpu(tiny_model) -> None:
    if not cuda_available():
        pytest.skip("needs a CUDA GPU")
    options = {"tile": 64, "overlap": 16, "conf": 0.001}
    photo = squares_on_grey(300, 200)
    on_gpu = Predictor.from_path(tiny_model.pt, device="auto", **options)
    on_gpu.gpu_engine = False  # the plain torch backend on CUDA; the GPU engine has its own tests (test_gpu.py)
    assert (on_gpu.backend_name, on_gpu.device) == ("torch", "cuda:0")
    on_cpu = Predictor.from_path(tiny_model.pt, backend="torch", device="cpu", **options)
    _assert_same(on_gpu.predict(photo), on_cpu.predict(photo))


def test_a_plain_ultralytics_export_with_float_input_gives_the_same_detections(tiny_model, tmp_path: Path) -> None:
    # rookery's export takes uint8 NHWC BGR tiles; Ultralytics' own takes float NCHW RGB: both must work
    import shutil

    from rookery.inference import export_onnx

    plain_pt = tmp_path / "plain.pt"
    shutil.copyfile(tiny_model.pt, plain_pt)
    plain = export_onnx(plain_pt, imgsz=tiny_model.imgsz, raw_input=False)
    options = {"tile": 64, "overlap": 16, "conf": 0.001}
    float_input = Predictor.from_path(plain, backend="onnx", **options)
    raw_input = Predictor.from_path(tiny_model.onnx, backend="onnx", **options)
    assert (float_input.backend.raw_input, raw_input.backend.raw_input) == (False, True)
    photo = squares_on_grey(150, 100)
    _assert_same(float_input.predict(photo), raw_input.predict(photo))
