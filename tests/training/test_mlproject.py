"""`mlflow run . -e train` reproduces a training through the MLproject entry point, in the project's run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_mlproject_declares_the_entry_points():
    project = yaml.safe_load((REPO / "MLproject").read_text())
    assert set(project["entry_points"]) == {"prepare", "train", "evaluate", "register"}
    assert (REPO / project["python_env"]).is_file()
    for entry in project["entry_points"].values():
        assert entry["command"].startswith("rookery ")
        assert all("type" in p for p in entry.get("parameters", {}).values())  # typed parameters


def test_mlflow_run_train_entry_point(tiny_dataset: Path, tmp_path: Path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",  # --env-manager local runs `rookery` from here
        "MLFLOW_TRACKING_URI": uri,
        "ROOKERY_HOME": str(tmp_path / "home"),
    }
    cmd = [
        str(Path(bin_dir) / "mlflow"), "run", str(REPO), "-e", "train", "--env-manager", "local",
        "--experiment-name", "mlproject",
        "-P", f"data={tiny_dataset}", "-P", "epochs=1", "-P", "imgsz=64", "-P", "batch=8", "-P", "plot_flag=--no-plots",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("mlproject").experiment_id])
    # one run: the project's run is the training's run
    assert run.info.status == "FINISHED"
    assert run.data.params["epochs"] == "1"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "metrics/mAP50")] == [1]
    assert run.data.tags["mlflow.project.entryPoint"] == "train"
