"""`rookery train --resume RUN_ID` continues a killed training in the same MLflow run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def test_resume_continues_a_killed_training_in_the_same_run(tiny_dataset: Path, tmp_path: Path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "ROOKERY_TRACKING_URI": uri, "ROOKERY_HOME": str(tmp_path / "home")}
    base = [sys.executable, "-m", "rookery", "train", "--recipe", "yolo"]
    args = ["--data", str(tiny_dataset), "--epochs", "5", "--imgsz", "64", "--batch", "8", "--device", "cpu",
            "--workers", "0", "--no-plots", "--name", "resumable"]  # fmt: skip
    proc = subprocess.Popen([*base, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = MlflowClient(uri)
    run_id = None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        exp = client.get_experiment_by_name("rookery") if Path(tmp_path / "mlflow.db").exists() else None
        runs = client.search_runs([exp.experiment_id]) if exp else []
        if runs and len(client.get_metric_history(runs[0].info.run_id, "metrics/mAP50")) >= 2:
            run_id = runs[0].info.run_id
            proc.kill()  # like a lost machine: no clean shutdown
            break
        time.sleep(0.2)
    proc.wait(60)
    assert run_id is not None, "training ended before it could be interrupted"
    assert client.get_run(run_id).info.status == "RUNNING"  # killed: never closed

    resumed = subprocess.run([*base, "--resume", run_id, *args], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert run_id in resumed.stderr
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    steps = sorted(m.step for m in client.get_metric_history(run_id, "metrics/mAP50"))
    assert set(steps) == {1, 2, 3, 4, 5}
    assert len(client.search_runs([run.info.experiment_id])) == 1  # no second run
