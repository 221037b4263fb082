"""The MLflow client: one place that points MLflow at a store and turns its failures into rookery's errors.

HTTP calls fail fast (MLflow would retry a failed call 7 times with exponential backoff, for minutes; training and
a counting server cannot wait that long). Every other module of the wing gets its MlflowClient here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from rookery.errors import RookeryError, first_line

T = TypeVar("T")

# System metrics (CPU, memory, GPU): MLflow waits for 10 samples of 10 s before it logs; rookery logs a
# sample every 5 s. All are MLflow's own variables, so a user (or a test) can set them.
_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "5",
    "MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING": "1",
}
_MISSING_CODES = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")


def configure_client(tracking_uri: str) -> None:
    """Point MLflow at the tracking store; HTTP calls fail fast."""
    for key, value in _DEFAULTS.items():
        os.environ.setdefault(key, value)
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)


def client(tracking_uri: str) -> Any:
    """An MlflowClient on this store (tracking and registry), with the fast-failing HTTP defaults."""
    from mlflow.tracking import MlflowClient

    configure_client(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def experiment_id(name: str, tracking_uri: str, artifact_root: str) -> str:
    """The experiment's id, created on first use. With a local store its artifacts go under artifact_root
    (MLflow would otherwise write ./mlruns in the working directory); a server decides for itself."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    location = None
    if not tracking_uri.startswith(("http://", "https://", "databricks")):
        location = (Path(artifact_root) / name).resolve().as_uri()
    return str(client.create_experiment(name, artifact_location=location))


def is_rejection(e: Exception) -> bool:
    """The store answered and refused this one call (a bad value): the store is alive, go on using it."""
    from mlflow.exceptions import MlflowException

    return isinstance(e, MlflowException) and e.error_code in (
        "INVALID_PARAMETER_VALUE",
        "RESOURCE_ALREADY_EXISTS",
        "BAD_REQUEST",
    )


def call(tracking_uri: str, fn: Callable[[], T], missing: str) -> T:
    """Run one MLflow call: "does not exist" -> a RookeryError saying `missing`; any other failure -> the
    store is unreachable or broken."""
    from mlflow.exceptions import MlflowException

    try:
        return fn()
    except MlflowException as e:
        if e.error_code in _MISSING_CODES:
            raise RookeryError(missing) from e
        raise unreachable(tracking_uri, e) from e
    except Exception as e:  # requests / SQLAlchemy errors: the store did not answer
        raise unreachable(tracking_uri, e) from e


def unreachable(tracking_uri: str, e: Exception) -> RookeryError:
    return RookeryError(f"cannot reach the MLflow tracking store at {tracking_uri} ({first_line(e)})")


def is_not_found(e: Exception) -> bool:
    """MLflow's own "no such resource" (a version, alias or run that does not exist)."""
    from mlflow.exceptions import MlflowException

    return isinstance(e, MlflowException) and e.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")


def quiet_logs() -> None:
    """Import mlflow (it sets its loggers' levels on import) and quiet its store set-up chatter, which would
    bury a one-line error on the console."""
    import mlflow  # noqa: F401

    logging.getLogger("mlflow").setLevel(logging.WARNING)


def mlflow_version() -> str:
    from importlib.metadata import version

    return version("mlflow")
