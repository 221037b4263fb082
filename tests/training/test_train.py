"""Training tracked in MLflow: a real tiny model, a real tracking store (SQLite file or `mlflow server`)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rookery.config import get_settings

EXPECTED_EPOCH_METRICS = {
    "train/box_loss", "train/cls_loss", "train/dfl_loss", "val/box_loss", "metrics/precision",
    "metrics/recall", "metrics/mAP50", "metrics/mAP50-95", "lr/pg0", "train/images_per_second",
}  # fmt: skip


def _train_and_check(params, tracking_uri: str) -> str:
    """Train, then read everything back through MlflowClient; returns the registered model URI."""
    from mlflow.models import get_model_info
    from mlflow.tracking import MlflowClient

    from rookery.training.trainer import train

    result = train(params)
    assert result.complete, result.problems
    assert result.best.is_file() and result.onnx is not None and result.onnx.is_file()

    client = MlflowClient(tracking_uri)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    # every training argument is a param; versions and the data set fingerprint are tags
    assert run.data.params["epochs"] == str(params.epochs) and run.data.params["imgsz"] == str(params.imgsz)
    assert set(params.model_dump()) <= set(run.data.params)
    for tag in ("rookery.version", "ultralytics.version", "torch.version", "mlflow.version", "rookery.device"):
        assert run.data.tags[tag]
    # per-epoch metrics with step = epoch (1-based), for each epoch
    for name in EXPECTED_EPOCH_METRICS:
        steps = [m.step for m in client.get_metric_history(result.run_id, name)]
        assert steps == list(range(1, params.epochs + 1)), (name, steps)
    assert "best/mAP50-95" in run.data.metrics
    assert any(k.startswith("system/") for k in run.data.metrics), "no system metrics"
    # the data set as a dataset input, digest = its fingerprint
    fingerprint = run.data.tags["rookery.dataset_fingerprint"]
    (ds_input,) = run.inputs.dataset_inputs
    assert ds_input.dataset.digest == fingerprint[:32] and "manifest.json" in ds_input.dataset.source
    # artifacts
    names = {a.path for a in client.list_artifacts(result.run_id)}
    names |= {a.path for a in client.list_artifacts(result.run_id, "weights")}
    assert {"results.csv", "args.yaml", "weights/best.pt", "weights/best.onnx"} <= names
    # the packaged model with a signature, registered as a version
    assert result.model_version is not None
    uri = f"models:/rookery/{result.model_version}"
    info = get_model_info(uri)
    assert [c["name"] for c in info.signature.inputs.to_dict()] == ["image"]
    assert [c["name"] for c in info.signature.outputs.to_dict()][:3] == ["image", "class", "score"]
    assert {p.name for p in info.signature.params.params} == {"conf", "iou", "tile", "overlap"}
    return uri


def _predict_in_fresh_process(uri: str, tracking_uri: str, image: Path) -> str:
    code = textwrap.dedent(f"""
        import base64, mlflow, pandas as pd
        mlflow.set_tracking_uri({tracking_uri!r}); mlflow.set_registry_uri({tracking_uri!r})
        model = mlflow.pyfunc.load_model({uri!r})
        df = pd.DataFrame({{"image": [base64.b64encode(open({str(image)!r}, "rb").read()).decode()]}})
        out = model.predict(df, params={{"conf": 0.001}})
        print("COLUMNS", ",".join(out.columns)); print("ROWS", len(out))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _a_photo(dataset: Path) -> Path:
    return sorted((dataset / "images" / "val").glob("*.jpg"))[0]


def test_train_tracks_to_sqlite_default(tiny_params, tiny_dataset: Path, loopback_port: int):
    settings = get_settings()
    assert settings.tracking_uri.startswith("sqlite:///")
    uri = _train_and_check(tiny_params(name="sqlite"), settings.tracking_uri)
    out = _predict_in_fresh_process(uri, settings.tracking_uri, _a_photo(tiny_dataset))
    assert "COLUMNS image,class,score,x1,y1,x2,y2" in out
    assert int(out.split("ROWS")[1]) > 0  # conf 0.001: an untrained model still proposes boxes
    # nothing leaked into the working directory: artifacts live under the home folder
    assert not Path("mlruns").exists()

    # `mlflow models serve` on the champion answers /invocations, and a bad image is a 4xx
    from rookery.packaging import registry

    registry.promote(settings.tracking_uri, settings.model_name, uri.rsplit("/", 1)[1])
    _serve_and_invoke("models:/rookery@champion", settings.tracking_uri, _a_photo(tiny_dataset), loopback_port)


def _serve_and_invoke(model_uri: str, tracking_uri: str, image: Path, port: int) -> None:
    import base64
    import json
    import time
    import urllib.error
    import urllib.request

    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    cmd = [str(bin_dir / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local",
           "-h", "127.0.0.1", "-p", str(port), "-w", "1"]  # fmt: skip
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert server.poll() is None, server.stdout.read()[-3000:] if server.stdout else ""
            try:
                urllib.request.urlopen(f"{url}/ping", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        body = {
            "dataframe_records": [{"image": base64.b64encode(image.read_bytes()).decode()}],
            "params": {"conf": 0.001},
        }
        req = urllib.request.Request(
            f"{url}/invocations", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            rows = json.loads(r.read())["predictions"]
        assert rows and set(rows[0]) == {"image", "class", "score", "x1", "y1", "x2", "y2"}
        bad = {"dataframe_records": [{"image": "this is not an image"}]}
        req = urllib.request.Request(
            f"{url}/invocations", json.dumps(bad).encode(), {"Content-Type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=60)
        assert 400 <= err.value.code < 500
        assert "not base64" in err.value.read().decode()
    finally:
        server.terminate()
        server.wait(20)


def test_train_tracks_to_mlflow_server_on_postgres(tiny_params, mlflow_server_factory, postgres_db, monkeypatch):
    server = mlflow_server_factory(postgres_db)
    monkeypatch.setenv("ROOKERY_TRACKING_URI", server.url)
    get_settings.cache_clear()
    # with the transpose augmentation on: its callback runs inside a real training and rot90 is logged
    _train_and_check(tiny_params(name="server", epochs=1, rot90=0.5), server.url)


def test_server_killed_mid_training_does_not_kill_training(tiny_dataset, mlflow_server_factory, tmp_path):
    # `rookery train` as a user runs it; the server dies after the first epoch's metrics arrive.
    server = mlflow_server_factory()
    env = {**os.environ, "ROOKERY_TRACKING_URI": server.url, "ROOKERY_HOME": str(tmp_path / "home")}
    cmd = [
        sys.executable, "-m", "rookery", "train", "--recipe", "yolo", "--data", str(tiny_dataset), "--epochs", "6",
        "--imgsz", "64",
        "--batch", "8", "--device", "cpu", "--workers", "0", "--no-plots", "--name", "killed",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(server.url)
    import time

    deadline = time.monotonic() + 240
    killed = False
    while time.monotonic() < deadline and proc.poll() is None:
        experiment = client.get_experiment_by_name("rookery")
        runs = client.search_runs([experiment.experiment_id]) if experiment else []
        if runs and client.get_metric_history(runs[0].info.run_id, "metrics/mAP50"):
            server.stop()
            killed = True
            break
        time.sleep(0.3)
    output, _ = proc.communicate(timeout=300)
    assert killed, output[-3000:]
    assert proc.returncode == 3, output[-3000:]
    assert (tmp_path / "home" / "runs" / "killed" / "weights" / "best.pt").is_file()
    assert "training goes on and its weights are saved locally" in " ".join(output.split())
    assert "incomplete" in output


def test_unknown_weights_are_never_downloaded(tiny_params):
    from rookery.errors import ConfigError
    from rookery.training.trainer import train

    with pytest.raises(ConfigError, match="never downloads weights"):
        train(tiny_params(model="yolov8n.pt"))
