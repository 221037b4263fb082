"""MLflow runs: training and evaluation record their params, metrics, data sets and artifacts here.

Every call is guarded: a tracking server that is down at start or goes away mid-training never kills the
training. The first failure logs one warning that says what was not recorded; later calls are skipped
(a dead server costs one short timeout, not one per epoch) and `problems` lists what is missing, so the
caller can report the run as incomplete.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from rookery.errors import first_line
from rookery.packaging.client import client, configure_client, experiment_id, is_rejection

log = logging.getLogger(__name__)
T = TypeVar("T")


class RunTracker:
    """One MLflow run, every call guarded. Use as a context manager around the training."""

    def __init__(
        self,
        tracking_uri: str,
        artifact_root: str,
        experiment: str,
        run_name: str | None = None,
        run_id: str | None = None,
        system_metrics: bool = True,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        self.experiment = experiment
        self.run_name = run_name
        self.run_id = run_id
        self.system_metrics = system_metrics
        self.problems: list[str] = []
        self._dead = False

    @property
    def complete(self) -> bool:
        return not self.problems

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickled in another process (Ultralytics' DDP workers): point MLflow there at the same store.
        The calls below name the run, so they need no active run in that process."""
        self.__dict__.update(state)
        configure_client(self.tracking_uri)

    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        if self._dead:
            self.problems.append(what)
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # any failure of the tracking side must leave training alone
            self._dead = not is_rejection(e)
            self.problems.append(what)
            log.warning(
                "MLflow at %s failed while %s (%s): training goes on and its weights are saved locally, "
                "but nothing more is recorded in this run",
                self.tracking_uri,
                what,
                first_line(e),
            )
            return None

    def __enter__(self) -> RunTracker:
        configure_client(self.tracking_uri)
        self._call("starting the run", self._start)
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        import mlflow

        status = "FINISHED" if exc_type is None and self.complete else "FAILED"
        if exc_type is KeyboardInterrupt:
            status = "KILLED"
        self._call("closing the run", mlflow.end_run, status=status)
        if self._dead:  # the fluent API may still hold the run after a failed end_run
            with contextlib.suppress(Exception):  # already reported
                mlflow.end_run()

    def _start(self) -> None:
        import mlflow

        # Inside `mlflow run` the project's run already exists (MLFLOW_RUN_ID): train in that run.
        self.run_id = self.run_id or os.environ.get("MLFLOW_RUN_ID") or None
        exp_id = experiment_id(self.experiment, self.tracking_uri, self.artifact_root)
        run = mlflow.start_run(
            run_id=self.run_id,
            experiment_id=None if self.run_id else exp_id,
            run_name=None if self.run_id else self.run_name,
            log_system_metrics=self.system_metrics,
        )
        self.run_id = run.info.run_id

    def log_params(self, params: Mapping[str, object]) -> None:
        """Log params; a key the run already holds (`mlflow run` logs the project's parameters first) is
        kept, and rookery's value goes under `rookery.<key>` when it differs (MLflow forbids changes)."""
        import mlflow

        def _log() -> None:
            existing = mlflow.get_run(self.run_id).data.params if self.run_id else {}
            clean: dict[str, str] = {}
            for key, value in params.items():
                text = ("" if value is None else str(value))[:6000]
                if key not in existing:
                    clean[key] = text
                elif existing[key] != text:
                    clean[f"rookery.{key}"] = text
            mlflow.log_params(clean)

        self._call("logging parameters", _log)

    def set_tags(self, tags: Mapping[str, object]) -> None:
        import mlflow

        self._call("setting tags", mlflow.set_tags, {k: str(v) for k, v in tags.items()})

    def log_dataset(self, name: str, digest: str, source: Path, context: str = "training") -> None:
        """The data set as an MLflow dataset input: its name, its fingerprint, and its manifest as source."""

        def _log() -> None:
            import mlflow
            from mlflow.data.dataset_source_registry import resolve_dataset_source
            from mlflow.data.meta_dataset import MetaDataset

            ds = MetaDataset(resolve_dataset_source(str(source)), name=name, digest=digest)  # type: ignore[abstract]
            mlflow.log_input(ds, context=context)

        self._call("logging the data set", _log)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        import mlflow

        self._call("logging metrics", mlflow.log_metrics, dict(metrics), step=step, run_id=self.run_id)

    def latest_metrics(self, prefix: str = "") -> dict[str, float]:
        """The run's latest value of each metric whose name starts with `prefix` (empty when unknown)."""
        if self.run_id is None:
            return {}
        run = self._call("reading the run's metrics", lambda: client(self.tracking_uri).get_run(self.run_id))
        return {k: float(v) for k, v in run.data.metrics.items() if k.startswith(prefix)} if run else {}

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        import mlflow

        if path.exists():
            log_fn = mlflow.log_artifacts if path.is_dir() else mlflow.log_artifact
            self._call(f"uploading {path.name}", log_fn, str(path), artifact_path)

    def log_model(self, log_fn: Callable[[], T]) -> T | None:
        """Run a packaging function that logs the model into the active run."""
        return self._call("logging the model", log_fn)


def run_tags(tracking_uri: str, run_id: str) -> dict[str, str]:
    """The tags of a run (raises when the run is not in the store)."""
    return dict(client(tracking_uri).get_run(run_id).data.tags)
