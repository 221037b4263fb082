"""Loading a model from any URI: the registry (alias, version), a run, a local .pt/.onnx, and clear errors.

The model is the session's tiny real YOLO (conftest.py), packaged by rookery's own `log_pyfunc_model` into
a real SQLite tracking store, registered and given the `champion` alias, without training again.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from rookery.config import get_settings
from rookery.errors import RookeryError
from rookery.packaging.models import load_predictor, resolve_model

TILE, OVERLAP = 96, 8


@dataclass(frozen=True)
class Store:
    tracking_uri: str
    db: Path
    run_id: str
    version: str


@pytest.fixture(scope="module")
def _store(tiny_model, tmp_path_factory: pytest.TempPathFactory) -> Store:
    import mlflow

    from rookery.packaging.client import configure_client, experiment_id
    from rookery.packaging.pyfunc import log_pyfunc_model
    from rookery.packaging.registry import promote

    root = tmp_path_factory.mktemp("loading-store")
    db = root / "mlflow.db"
    uri = f"sqlite:///{db}"
    configure_client(uri)
    with mlflow.start_run(experiment_id=experiment_id("loading", uri, str(root / "artifacts"))) as run:
        version = log_pyfunc_model(
            tiny_model.pt, tiny_model.onnx, list(tiny_model.names), TILE, OVERLAP, tiny_model.imgsz, "rookery"
        )
    assert version is not None
    promote(uri, "rookery", version)
    return Store(uri, db, run.info.run_id, version)


@pytest.fixture
def store(_store: Store, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("ROOKERY_TRACKING_URI", _store.tracking_uri)
    get_settings.cache_clear()
    return _store


def test_registry_uris_resolve_to_the_packaged_model(store: Store, tiny_model):
    champion = resolve_model("models:/rookery@champion")
    assert (champion.name, champion.version, champion.alias, champion.run_id) == (
        "rookery", store.version, "champion", store.run_id
    )  # fmt: skip
    assert champion.class_names == tiny_model.names
    assert (champion.tile, champion.overlap, champion.imgsz) == (TILE, OVERLAP, tiny_model.imgsz)
    assert champion.weights.read_bytes() == tiny_model.pt.read_bytes()
    assert champion.onnx is not None and champion.onnx.read_bytes() == tiny_model.onnx.read_bytes()
    assert champion.weights.is_relative_to(get_settings().home / "cache" / "models")

    by_version = resolve_model(f"models:/rookery/{store.version}")
    assert by_version.weights == champion.weights  # one download, keyed by name/version
    assert (by_version.alias, by_version.run_id) == (None, store.run_id)
    assert resolve_model("models:/rookery/latest").version == store.version

    by_run = resolve_model(f"runs:/{store.run_id}/model")
    assert (by_run.name, by_run.run_id, by_run.class_names) == (None, store.run_id, tiny_model.names)


def test_a_cached_version_loads_without_the_store(store: Store):
    first = resolve_model(f"models:/rookery/{store.version}")
    hidden = store.db.with_suffix(".hidden")
    store.db.rename(hidden)  # the store is gone: only the cache can answer
    try:
        again = resolve_model(f"models:/rookery/{store.version}")
    finally:
        hidden.rename(store.db)
    assert again.weights == first.weights and again.run_id == store.run_id


def test_load_predictor_uses_the_package_and_caller_options(store: Store, tiny_model):
    predictor, info = load_predictor("models:/rookery@champion", backend="onnx", device="cpu", conf=0.001)
    assert predictor.backend_name == "onnx" and predictor.class_names == tiny_model.names
    assert (predictor.options.tile, predictor.options.overlap, predictor.options.imgsz) == (TILE, OVERLAP, 64)
    assert predictor.options.conf == 0.001 and info.label == f"rookery v{store.version} (champion)"
    # a larger tile keeps the trained scale (network pixels per photo pixel); None options are ignored
    bigger, _ = load_predictor("models:/rookery@champion", backend="onnx", tile=192, overlap=None)
    assert (bigger.options.tile, bigger.options.overlap, bigger.options.imgsz) == (192, OVERLAP, 128)

    photo = np.random.default_rng(0).integers(0, 255, size=(150, 200, 3), dtype=np.uint8)
    from_file, file_info = load_predictor(
        str(tiny_model.onnx), tile=TILE, overlap=OVERLAP, imgsz=64, conf=0.001, device="cpu"
    )
    assert file_info.class_names == tiny_model.names and file_info.name is None
    a, b = predictor.predict(photo), from_file.predict(photo)
    assert len(a) > 0 and np.array_equal(a.xyxy, b.xyxy) and np.array_equal(a.cls, b.cls)


def test_a_local_file_reads_the_description_beside_it(tmp_path: Path, tiny_model):
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(tiny_model.pt, folder / "best.pt")
    # a bare .pt: the defaults, class names only once loaded
    bare = resolve_model(str(folder / "best.pt"))
    assert (bare.tile, bare.overlap, bare.imgsz, bare.class_names, bare.onnx) == (640, 64, None, (), None)
    meta = {"class_names": list(tiny_model.names), "tile": 128, "overlap": 16, "imgsz": 64}
    (folder / "rookery_model.json").write_text(json.dumps(meta))
    described = resolve_model(str(folder / "best.pt"))
    assert (described.tile, described.overlap, described.imgsz) == (128, 16, 64)
    assert described.class_names == tiny_model.names


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        # an alias nobody set
        ("models:/rookery@nope", "no model 'rookery' with alias 'nope' in the registry at sqlite:"),
        # a model name never registered
        ("models:/other/1", "no model 'other' version 1 in the registry"),
        # a version that does not exist
        ("models:/rookery/99", "no model 'rookery' version 99 in the registry"),
        # a run id that does not exist
        ("runs:/0123456789abcdef/model", "no run '0123456789abcdef' in the tracking store"),
        # a file that is not there
        ("/no/such/best.pt", "model file /no/such/best.pt does not exist"),
        # a file of another kind
        ("rookery_model.json", "is neither a PyTorch checkpoint (.pt) nor an ONNX model (.onnx)"),
        # a URI scheme rookery does not load from
        ("s3://bucket/best.pt", "is not one of models:/NAME@ALIAS"),
    ],
)
def test_bad_uris_give_one_clear_sentence(store: Store, tmp_path: Path, monkeypatch, uri: str, message: str):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rookery_model.json").write_text("{}")
    with pytest.raises(RookeryError) as err:
        resolve_model(uri)
    assert message in str(err.value) and "\n" not in str(err.value)
    if uri.startswith("models:/"):
        assert "train one with 'rookery train' or pass a .pt/.onnx" in str(err.value)


def test_a_model_not_packaged_by_rookery_is_refused(store: Store, tmp_path: Path):
    import mlflow

    from rookery.packaging.client import experiment_id

    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input

    with mlflow.start_run(experiment_id=experiment_id("other", store.tracking_uri, str(tmp_path))):
        info = mlflow.pyfunc.log_model(name="model", python_model=Echo(), registered_model_name="echo")
    with pytest.raises(RookeryError, match="was not packaged by rookery"):
        resolve_model(f"models:/echo/{info.registered_model_version}")


def test_an_unreachable_store_is_named(loopback_port: int):
    # nothing listens on the port: one short try (configure_client), then one sentence naming the store
    url = f"http://127.0.0.1:{loopback_port}"
    with pytest.raises(RookeryError, match=f"cannot reach the MLflow tracking store at {url}"):
        resolve_model("models:/rookery@champion", tracking_uri=url)


def test_weights_changed_after_registration_are_refused(store: Store, tmp_path: Path, monkeypatch):
    """The sha256 of each weights file is a tag of the run and the version (tracking store); a copy whose bytes
    differ — an artifact store or cache written after registration — is refused, also when loaded from the cache."""
    from rookery.packaging.client import client

    tags = client(store.tracking_uri).get_model_version("rookery", store.version).tags
    assert len(tags["rookery.sha256.weights"]) == 64 and len(tags["rookery.sha256.onnx"]) == 64
    monkeypatch.setenv("ROOKERY_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    info = resolve_model(f"models:/rookery/{store.version}")  # downloaded and checked
    info.weights.write_bytes(info.weights.read_bytes() + b"\0")  # tampered with afterwards
    with pytest.raises(RookeryError, match="does not match the sha256 recorded"):
        resolve_model(f"models:/rookery/{store.version}")
