"""Multi-GPU (DDP) training: Ultralytics 8.4 pickles the trainer's callbacks with cloudpickle into each worker
process (ultralytics/utils/dist.py). rookery's epoch logger must survive that trip, log from rank 0 into the
same MLflow run (no active run, no tracking URI in that process), and stay quiet on the other ranks.
Real MLflow store (SQLite), real worker processes; the trainer they call back is a stand-in (no GPUs here)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

cloudpickle = pytest.importorskip("cloudpickle")  # Ultralytics' own dependency for DDP

WORKER = textwrap.dedent(
    """
    import sys, types
    import cloudpickle

    callbacks = cloudpickle.loads(open(sys.argv[1], "rb").read())
    trainer = types.SimpleNamespace(
        metrics={"metrics/mAP50(B)": 0.5, "val/box_loss": 1.5}, lr={"lr/pg0": 0.01}, tloss=None, epoch=0,
        label_loss_items=lambda loss, prefix: {f"{prefix}/box_loss": 2.0},
        train_loader=types.SimpleNamespace(dataset=list(range(64))),
    )
    for event in ("on_train_epoch_start", "on_fit_epoch_end"):
        for fn in callbacks[event]:
            fn(trainer)
    """
)


def test_rank_0_of_a_ddp_worker_logs_into_the_main_process_run(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from rookery.packaging.runs import RunTracker
    from rookery.training.trainer import _EpochLogger

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = RunTracker(uri, str(tmp_path / "artifacts"), "ddp", run_name="ddp", system_metrics=False)
    with tracker:
        logger = _EpochLogger(tracker)
        blob = tmp_path / "callbacks.pkl"
        blob.write_bytes(cloudpickle.dumps({
            "on_train_epoch_start": [logger.on_train_epoch_start], "on_fit_epoch_end": [logger.on_fit_epoch_end],
        }))  # fmt: skip
        script = tmp_path / "worker.py"
        script.write_text(WORKER)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}  # nothing inherited
        for rank in ("1", "0"):
            subprocess.run([sys.executable, str(script), str(blob)], env={**env, "RANK": rank}, cwd=tmp_path,
                           check=True, timeout=120)  # fmt: skip
        assert tracker.latest_metrics("metrics/") == {"metrics/mAP50": 0.5}
    client = MlflowClient(uri)
    (history,) = [client.get_metric_history(tracker.run_id, "metrics/mAP50")]
    assert [(m.step, m.value) for m in history] == [(1, 0.5)]  # rank 0 only, at epoch 1
    images = client.get_metric_history(tracker.run_id, "train/images_per_second")
    assert len(images) == 1 and images[0].value > 0
    assert client.get_run(tracker.run_id).info.status == "FINISHED"
    assert not (tmp_path / "mlruns").exists()  # the worker did not fall back to a local ./mlruns store
