"""MLflow's scoring protocol (`/invocations`) for rookery's server: parse a request the way `mlflow models serve`
does, enforce the pyfunc's signature, and write the answer in MLflow's JSON.

MLflow has no public API that parses a scoring request against a signature; its scoring server's own functions
do it. They are private (`_split_data_and_params`, `_validate_prediction_input`), so they are used here and
nowhere else, and tests/packaging/test_scoring.py calls each of them directly: a release of MLflow that renames
or changes one fails that test by name, not a request in production.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rookery.errors import RookeryError


class ScoringRejected(RookeryError):
    """MLflow refused the request (bad JSON, a frame that does not match the signature, a bad parameter)."""

    kind = "bad_request"

    def __init__(self, message: str, status_code: int = 400, error_code: str = "BAD_REQUEST") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code


@contextmanager
def mlflow_errors() -> Iterator[None]:
    """MLflow's exceptions inside become ScoringRejected, with MLflow's status and error code."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as e:
        raise ScoringRejected(
            _short(e.message),
            e.get_http_status_code(),  # type: ignore[no-untyped-call]  # unannotated in MLflow
            e.error_code,
        ) from e


def parse_request(body: bytes | str, mime: str, tile: int, overlap: int) -> tuple[Any, dict[str, Any] | None]:
    """The request's frame (one row per photo) and params, checked against the model's signature.
    `mime` is application/json (bytes) or text/csv (already decoded text)."""
    from mlflow.pyfunc import _validate_prediction_input
    from mlflow.pyfunc import scoring_server as mlflow_scoring

    from rookery.packaging.pyfunc import signature

    sig = signature(tile, overlap)
    with mlflow_errors():
        if mime == "text/csv":
            text = body if isinstance(body, str) else body.decode("utf-8")
            frame, params = mlflow_scoring.parse_csv_input(io.StringIO(text), sig.inputs), None
        else:
            data, params = mlflow_scoring._split_data_and_params(body)  # type: ignore[no-untyped-call]  # MLflow's
            frame = mlflow_scoring.infer_and_parse_data(data, sig.inputs)
        checked: tuple[Any, dict[str, Any] | None] = _validate_prediction_input(
            frame, params, sig.inputs, sig.params, "mlflow.pyfunc.model"
        )
        return checked


def predictions_json(predictions: Any) -> str:
    """The answer as `mlflow models serve` writes it: {"predictions": [...]}."""
    from mlflow.pyfunc import scoring_server as mlflow_scoring

    out = io.StringIO()
    mlflow_scoring.predictions_to_json(predictions, out)  # type: ignore[no-untyped-call]  # unannotated in MLflow
    return out.getvalue()


def _short(message: str) -> str:
    """MLflow's messages can quote the whole request (megabytes of base64): keep the sentence that matters."""
    text = str(message)
    if "Failed to enforce schema" in text:
        reason = text.rsplit("Error: ", 1)[-1].strip().splitlines()[0] if "Error: " in text else ""
        text = "the input does not match the model's signature (a column 'image' of base64 text, one row per photo)"
        text += f": {reason}" if reason else ""
    text = text.split(" IMPORTANT:", 1)[0].strip().splitlines()[0] if text.strip() else "bad scoring request"
    return text if len(text) <= 300 else text[:299] + "…"
