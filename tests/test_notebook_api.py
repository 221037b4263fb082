"""The notebook API (rookery.load -> model.count -> result) on the session's tiny model, and the example notebook
examples/counting.ipynb executed end to end in a real Jupyter kernel (nbclient)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import rookery
from rookery.errors import InputError
from rookery.imaging import list_images, read_image

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "counting.ipynb"
LOW = {"conf": 0.001}  # the tiny model scores low


@pytest.fixture
def photo(trained_model) -> Path:
    return list_images(trained_model.photos)[0]


def test_a_path_an_rgb_array_and_a_pil_image_count_the_same(trained_model, photo: Path):
    from PIL import Image

    model = rookery.load(str(trained_model.onnx), **LOW)
    by_path = model.count(photo)
    rgb = read_image(photo)[..., ::-1]
    by_array = model.count(np.ascontiguousarray(rgb))
    by_pil = model.count(Image.open(photo))
    assert by_path.total > 0
    assert by_path.counts == by_array.counts == by_pil.counts
    np.testing.assert_allclose(by_path.boxes.xyxy, by_array.boxes.xyxy)
    assert list(by_path.counts) == list(model.class_names)
    assert by_path.intervals.level == 0.9 and list(by_path.intervals.classes) == list(model.class_names)
    assert all(lo <= by_path.counts[c] <= hi for c, (lo, hi) in by_path.intervals.classes.items())
    np.testing.assert_allclose(by_path.points.xy, by_path.boxes.centers())
    assert by_path.prediction.width == rgb.shape[1] and by_path.prediction.height == rgb.shape[0]


def test_the_result_converts_to_pandas_supervision_and_a_plot(trained_model, photo: Path):
    import matplotlib

    matplotlib.use("Agg")
    result = rookery.load(str(trained_model.onnx), **LOW).count(photo)
    table = result.to_pandas()
    assert len(table) == result.total and table.groupby("class").size().to_dict() == {
        k: v for k, v in result.counts.items() if v
    }
    np.testing.assert_allclose(table[["x", "y"]].to_numpy(), result.points.xy, atol=0.01)  # boxes rounded to 0.01 px
    detections = pytest.importorskip("supervision").Detections
    sv = result.to_supervision()
    assert isinstance(sv, detections) and len(sv) == result.total
    assert sv.data["class_name"].tolist() == table["class"].tolist()
    ax = result.plot()
    assert ax.images and ax.images[0].get_array().shape[:2] == read_image(photo).shape[:2]


def test_bad_photos_get_one_sentence_errors(trained_model):
    model = rookery.load(str(trained_model.onnx))
    with pytest.raises(InputError, match="RGB"):
        model.count(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(InputError, match="cannot count a dict"):
        model.count({})


@pytest.mark.slow  # a Jupyter kernel and the model loaded in it: ~1-2 min on 2 busy cores; `make test-slow` runs it
def test_the_example_notebook_runs(trained_model, photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("ROOKERY_EXAMPLE_MODEL", str(trained_model.onnx))
    monkeypatch.setenv("ROOKERY_EXAMPLE_PHOTO", str(photo))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend draws the plot as PNG output
    notebook = nbformat.read(EXAMPLE, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute(env=dict(os.environ))
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "\n".join(str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "CountResult(" in text and "Model(" in text
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the plot was drawn
