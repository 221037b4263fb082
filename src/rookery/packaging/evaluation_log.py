"""Record an evaluation in the MLflow run that trained the model, so the promotion gate can read it.

MlflowClient calls on an existing run (it is not restarted, its status and end time stay as they are).
Every step is guarded: a store that is down or refuses a value costs a warning, never the evaluation,
whose files are already written locally.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from rookery.errors import first_line

log = logging.getLogger(__name__)

ARTIFACT_DIR = "evaluation"


def log_evaluation(
    tracking_uri: str,
    run_id: str,
    metrics: Mapping[str, float],
    tags: Mapping[str, object],
    files: Sequence[Path],
) -> list[str]:
    """Log metrics (step 0), tags and files (under `evaluation/`) into run `run_id`.

    Returns what could not be recorded (empty: everything was); each failure was logged as a warning.
    """
    problems: list[str] = []

    def guarded(what: str, fn: Callable[[], Any]) -> bool:
        try:
            fn()
            return True
        except Exception as e:  # a tracking failure must leave the evaluation's results alone
            problems.append(what)
            log.warning("MLflow at %s failed while %s for run %s (%s)", tracking_uri, what, run_id, first_line(e))
            return False

    from mlflow.entities import Metric, RunTag

    from rookery.packaging.client import client as client_for

    client = client_for(tracking_uri)
    # One cheap call first: when the store is down or the run is gone, say so once and stop.
    if not guarded("reaching the run", lambda: client.get_run(run_id)):
        return problems
    now = int(time.time() * 1000)
    batch_metrics = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
    batch_tags = [RunTag(k, str(v)[:5000]) for k, v in tags.items()]

    def log_batch() -> None:
        client.log_batch(run_id, metrics=batch_metrics, tags=batch_tags)

    guarded("logging the evaluation metrics", log_batch)
    for path in files:
        if Path(path).is_file():
            guarded(f"uploading {Path(path).name}", partial(client.log_artifact, run_id, str(path), ARTIFACT_DIR))
    return problems
