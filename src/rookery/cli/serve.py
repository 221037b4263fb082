"""`rookery serve`: the REST API and the web page under uvicorn (never a development server, never reload)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

APP_FACTORY = "rookery.serving.app:create_app"


def serve(
    model: Annotated[
        str | None,
        typer.Option(
            help="models:/NAME@ALIAS (followed: a moved alias is swapped in without downtime), models:/NAME/VERSION, "
            "runs:/RUN_ID/model or a .pt/.onnx file (default: ROOKERY_MODEL_URI, i.e. models:/rookery@champion)."
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 for every interface.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Server processes; each loads the model once and runs one inference.")
    ] = 1,
) -> None:
    """Serve the REST API (/api/v1, /invocations, OpenAPI docs at /docs) and the web page.

    The model loads in the background: /health answers at once, /ready once the model is loaded and warmed.
    Limits and the API key come from ROOKERY_MAX_UPLOAD_MB, ROOKERY_MAX_PIXELS and ROOKERY_API_KEY.
    """
    import uvicorn

    from rookery.config import get_settings
    from rookery.logs import console
    from rookery.serving.redact import redact_url

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no progress bars in a server log
    os.environ["ROOKERY_HOST"] = host  # the workers' default allowed hosts include the bind address
    get_settings.cache_clear()
    if model is not None:
        # The workers build their app from the environment (uvicorn's factory), so the choice travels there.
        os.environ["ROOKERY_MODEL_URI"] = model
        get_settings.cache_clear()
    settings = get_settings()
    _preflight(settings)
    key = "on" if settings.api_key is not None else "off"
    console.print(
        f"rookery serve: {settings.model_uri} on http://{_url_host(host)}:{port} ({workers} worker(s), API key {key}); "
        f"docs at /docs, history in {redact_url(settings.history_url)}, registry {redact_url(settings.tracking_uri)}",
        highlight=False,
    )
    if not settings.allowed_hosts and host in ("0.0.0.0", "::"):
        console.print(
            "rookery serve: answering to localhost only; set ROOKERY_ALLOWED_HOSTS to the names clients use "
            "(e.g. ROOKERY_ALLOWED_HOSTS=counts.example.org,localhost)",
            highlight=False,
        )
    from rookery.serving.metrics import multiprocess_dir

    with multiprocess_dir(workers):  # /metrics then sums every worker (Prometheus multiprocess mode)
        uvicorn.run(
            APP_FACTORY,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            reload=False,
            log_config=log_config(),
            access_log=False,  # rookery's own access log: one key=value line per request (serving.app.AccessLog)
            server_header=False,
            timeout_graceful_shutdown=30,
        )


def _preflight(settings: Any) -> None:
    """Fail in one line, before any worker starts, when the model cannot be found or the history cannot open.

    It also downloads the model into the cache and migrates the history once, so workers do neither at once.
    """
    from rookery.errors import RookeryError
    from rookery.packaging.client import quiet_logs
    from rookery.packaging.models import resolve_model
    from rookery.serving.app import open_store
    from rookery.serving.model_holder import parse_alias

    quiet_logs()
    try:
        info = resolve_model(settings.model_uri, settings.tracking_uri)
    except RookeryError as e:
        hint = ""
        if parse_alias(settings.model_uri) is not None and "alias" in str(e):
            hint = " ('rookery model promote VERSION' gives a trained version the alias; --model picks another model)"
        raise RookeryError(f"cannot serve: {e}{hint}") from e
    _check_torch(info.weights, info.onnx)
    open_store(settings).close()


def _check_torch(weights: Path, onnx: Path | None) -> None:
    """A PyTorch checkpoint with no ONNX export beside it runs on torch only, which the slim `serve` extra leaves out:
    say so in one line before any worker starts, instead of a server that never becomes ready."""
    import importlib.util

    from rookery.errors import RookeryError

    if weights.suffix.lower() == ".pt" and onnx is None and importlib.util.find_spec("torch") is None:
        raise RookeryError(
            f"cannot serve: {weights.name} is a PyTorch checkpoint and torch is not installed; install it with "
            "pip install 'rookery[serve,train]', or serve the model's ONNX export (rookery.inference.export_onnx)"
        )


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def log_config() -> dict[str, Any]:
    """uvicorn's and rookery's logs as plain one-line records on stderr, in every worker process."""
    line = {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s", "datefmt": "%Y-%m-%dT%H:%M:%S%z"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": line},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "rookery": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        },
    }
