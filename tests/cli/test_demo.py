"""`rookery demo --no-serve`: the whole path for real (survey, dots, tiles, CPU training, MLflow, evaluation,
registry), at toy sizes in `make test`, at the README's default recipe in the slow test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from processes import stop_process, wait_ready
from rookery.cli import app

runner = CliRunner()
# Four 384x288 photos (2/1/1 train/val/test), 128 px tiles, one epoch: the plumbing, not the learning.
TINY = ["demo", "--no-serve", "--images", "4", "--size", "384x288", "--tile", "128", "--epochs", "1"]


def _store():
    from rookery.config import get_settings
    from rookery.packaging.client import client

    settings = get_settings()
    return settings, client(settings.tracking_uri)


def test_demo_trains_evaluates_promotes_reuses_retrains_and_serves(tmp_path: Path, loopback_port: int):
    from rookery.demo import EXPERIMENT, KEY_TAG
    from rookery.packaging import registry

    args = [*TINY, "--out", str(tmp_path / "demo")]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    for heading in ("synthetic survey", "Dots -> points", "data set", "Training", "Evaluation", "champion"):
        assert heading in first.stderr
    # The evaluation table, on stdout: every class with its true and predicted counts, and the metrics.
    for text in ("true", "predicted", "RMSE", "competition metric", "validation mAP50", "test mAP50"):
        assert text in first.stdout
    for name in ("adult_males", "adult_females", "pups"):
        assert name in first.stdout
    assert "mlflow ui --backend-store-uri sqlite:///" in first.stderr

    settings, mlflow = _store()
    (version,) = registry.list_versions(settings.tracking_uri, settings.model_name)
    assert registry.CHAMPION in version.aliases
    run = mlflow.get_run(version.run_id)
    assert run.info.status == "FINISHED"
    assert mlflow.get_experiment(run.info.experiment_id).name == EXPERIMENT
    # Trained, evaluated (the gate's metric) and tagged as the demo's model for this data set and recipe.
    assert {"best/mAP50", "eval/competition_rmse", "eval/mAP50"} <= set(run.data.metrics)
    assert run.data.tags[KEY_TAG] == version.tags[KEY_TAG]
    assert run.data.params["nbs"] == run.data.params["batch"] == "8"

    # Again: nothing is trained, evaluated or promoted twice; the same table comes out.
    again = runner.invoke(app, [*args, "--json"])
    assert again.exit_code == 0, again.output
    result = json.loads(again.stdout)
    assert result["trained"] is False and result["evaluated"] is False and result["champion"] is True
    assert result["version"] == version.version
    assert result["counting"]["classes"].keys() == {"adult_males", "adult_females", "pups"}
    assert "Training" not in again.stderr and "synthetic survey" not in again.stderr
    assert len(registry.list_versions(settings.tracking_uri, settings.model_name)) == 1
    assert len(mlflow.search_runs([run.info.experiment_id])) == 1

    # --retrain: a second version on the same data set, through the promotion gate (champion or challenger).
    retrained = runner.invoke(app, [*args, "--json", "--retrain"])
    assert retrained.exit_code == 0, retrained.output
    assert json.loads(retrained.stdout)["trained"] is True
    versions = registry.list_versions(settings.tracking_uri, settings.model_name)
    assert [v.version for v in versions] == ["1", "2"]
    assert registry.REASON_TAG in versions[1].tags
    assert sum(registry.CHAMPION in v.aliases for v in versions) == 1

    # Without --no-serve, as `make demo`: nothing is trained again, and the page's API counts a test photo.
    photo = Path(result["test_photos"][0])
    counts = _serve_and_count([*args[:1], *args[2:]], photo, loopback_port)
    assert set(counts) == {"adult_males", "adult_females", "pups"}


def _serve_and_count(args: list[str], photo: Path, port: int) -> dict[str, int]:
    """Run `rookery demo ARGS --port PORT` (it serves at the end), wait for /ready, upload `photo`, stop it."""
    import httpx

    log = photo.parent.parent.parent / "serve.log"  # <out>/survey/train/photo -> <out>/serve.log
    proc = subprocess.Popen(
        [sys.executable, "-m", "rookery", *args, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=log.open("w")
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc, log, timeout=180)
        with photo.open("rb") as f:
            answer = httpx.post(f"{base}/api/v1/predict", files={"files": (photo.name, f, "image/jpeg")}, timeout=120)
        assert answer.status_code == 200, answer.text
        return dict(answer.json()["results"][0]["counts"])
    finally:
        stop_process(proc, timeout=30)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_default_demo_learns(tmp_path: Path):
    """The README's `rookery demo --no-serve` in a fresh home and working directory, as a user runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROOKERY_", "MLFLOW_"))}
    env["ROOKERY_HOME"] = str(tmp_path / "home")
    exe = [sys.executable, "-m", "rookery", "demo", "--no-serve"]
    proc = subprocess.run([*exe, "--json"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["trained"] and result["champion"]
    assert result["validation"]["mAP50"] >= 0.5, result
    # Every class is found: a count a person would believe, not zero pups on a beach full of them.
    for name, c in result["counting"]["classes"].items():
        assert c["predicted"] >= 0.5 * c["true"], (name, c)

    from rookery.config import Settings
    from rookery.packaging.client import client

    settings = Settings(home=tmp_path / "home")
    run = client(settings.tracking_uri).get_run(result["run_id"])
    assert run.data.metrics["best/mAP50"] >= 0.5
