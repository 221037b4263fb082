"""The FastAPI application: `create_app()` builds one; `rookery serve` runs it under uvicorn.

    app = create_app(settings)          # or create_app() (settings from ROOKERY_* variables): uvicorn's factory

The lifespan opens the history store and starts the ModelHolder, which loads the model in the background, so
/health answers at once and /ready turns 200 when the model is loaded and warmed. Errors are JSON
{"detail": "one sentence"}: bad input is a 4xx (a RookeryError carries its status), an unexpected failure a 500
with a generic sentence (the traceback goes to the log, never to the client). Debug mode is never on.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from rookery import __version__
from rookery.config import Settings, get_settings
from rookery.errors import ConfigError, RookeryError
from rookery.serving.guards import ApiKeyGate, HostCheck, SameOrigin, SecurityHeaders
from rookery.serving.metrics import Metrics
from rookery.serving.model_holder import ModelHolder
from rookery.serving.retention import retention_loop
from rookery.serving.service import Limits
from rookery.serving.store import PredictionStore
from rookery.serving.throttle import Throttle
from rookery.serving.uploads import BodySizeLimit, max_upload_bytes

log = logging.getLogger("rookery.serving")
access_log = logging.getLogger("rookery.access")

SERVING_DIR = Path(__file__).resolve().parent
STATIC_DIR = SERVING_DIR / "static"
_PAGES_MODULE = "rookery.serving.routes.pages"

DESCRIPTION = """Count many small objects (sea lions) on large photos with a model from the MLflow registry.

* `POST /api/v1/predict`: upload photos, get counts per class, boxes and an annotated image; kept in the history.
* `GET /api/v1/predictions` (paginated), `/api/v1/predictions/{id}`, `/api/v1/predictions.csv`: the history.
* `GET /api/v1/model`, `POST /api/v1/model/reload`: the model that answers (it follows its registry alias).
* `POST /invocations`: MLflow's scoring protocol, the same input and output as the registered pyfunc model.

When the server has an API key (`ROOKERY_API_KEY`), send it as `X-API-Key` or `Authorization: Bearer <key>`.
"""


def open_store(settings: Settings) -> PredictionStore:
    return PredictionStore(settings.history_url, settings.home / "history")


def create_app(
    settings: Settings | None = None,
    *,
    holder: ModelHolder | None = None,
    store: PredictionStore | None = None,
) -> FastAPI:
    """A new app. A `holder` or `store` passed in is used (and started) but left open at shutdown: its owner
    closes it; those the app makes itself are closed with it."""
    settings = settings or get_settings()
    from rookery.offline import ensure_offline

    ensure_offline(settings)
    # A server's log is no terminal: MLflow's download progress bars would fill it with carriage returns.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    _limit_pil_pixels(settings.max_pixels)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        the_store = store if store is not None else await run_in_threadpool(open_store, settings)
        the_holder = holder if holder is not None else ModelHolder(settings.model_uri, settings)
        if the_holder.metrics is None:
            the_holder.metrics = metrics
        if the_holder.current is not None:
            info = the_holder.current.info
            metrics.set_model(info.name, info.version, info.alias, info.uri)
        app.state.store = the_store
        app.state.holder = the_holder
        the_holder.start()
        pruning = None
        if settings.retention_days > 0 or settings.retention_gb > 0:
            pruning = asyncio.create_task(
                retention_loop(
                    the_store, settings.retention_days, settings.retention_gb, settings.retention_check_seconds
                )
            )
        try:
            yield
        finally:
            if pruning is not None:
                pruning.cancel()
            if holder is None:
                await run_in_threadpool(the_holder.stop)
            if store is None:
                the_store.close()

    app = FastAPI(
        title="rookery",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        debug=False,
        docs_url=None,  # routes/docs.py serves /docs from the installed package (no CDN)
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    if settings.api_key is None:
        _openapi_without_security(app)
    app.state.metrics = metrics
    app.state.limits = Limits.from_settings(settings)
    _add_error_handlers(app, metrics)

    from rookery.serving.routes import api, health, mlflow_compat
    from rookery.serving.routes.docs import mount_docs

    mount_docs(app)
    app.include_router(health.router)
    app.include_router(api.router)
    app.include_router(mlflow_compat.router)
    if importlib.util.find_spec(_PAGES_MODULE) is not None:
        pages = importlib.import_module(_PAGES_MODULE)
        app.include_router(pages.router)
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # Outermost last: the access log and the request metrics see every answer, the guards' and the body limit's
    # included; the guards answer before any body is read (guards.py).
    app.add_middleware(BodySizeLimit, max_bytes=max_upload_bytes(settings.max_upload_mb))
    key = settings.api_key.get_secret_value() if settings.api_key is not None else None
    app.add_middleware(
        Throttle,
        per_minute=settings.rate_limit_per_minute,
        max_in_flight=settings.max_counting_requests,
        metrics=metrics,
    )
    app.add_middleware(ApiKeyGate, key=key)
    app.add_middleware(SameOrigin)
    app.add_middleware(HostCheck, hosts=settings.hosts())
    app.add_middleware(SecurityHeaders)
    app.add_middleware(AccessLog, metrics=metrics)
    return app


def _openapi_without_security(app: FastAPI) -> None:
    """Without an API key the server requires none: the OpenAPI document must not declare one (the routes keep
    their key dependency, which lets every request through then)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    if isinstance(operation, dict):
                        operation.pop("security", None)
                        operation.get("responses", {}).pop("401", None)
            schema.get("components", {}).pop("securitySchemes", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _limit_pil_pixels(max_pixels: int) -> None:
    """PIL refuses images past twice MAX_IMAGE_PIXELS on its own; keep that guard above rookery's per-app limit
    (checked exactly in uploads.header_size), so it never refuses what the settings allow."""
    from PIL import Image

    current = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels if current is None else max(int(current), max_pixels)


# --- errors -------------------------------------------------------------------------------------------------------


def _status_of(error: RookeryError) -> int:
    status = getattr(error, "status_code", None)
    if isinstance(status, int):
        return status
    return 422 if isinstance(error, ConfigError) else 400


def _add_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    async def rookery_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RookeryError)
        if not getattr(exc, "counted", False):
            metrics.error(getattr(exc, "kind", "config" if isinstance(exc, ConfigError) else "bad_input"))
        return JSONResponse({"detail": str(exc)}, status_code=_status_of(exc))

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        metrics.error("validation")
        return JSONResponse({"detail": readable_validation(exc)}, status_code=422)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 413:
            metrics.error("too_large")
        elif exc.status_code == 503:
            metrics.error("not_ready")
        elif exc.status_code == 404 and _wants_html(request):
            page = _error_page(request, 404, "There is no page at this address.")
            if page is not None:
                return page
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        headers = exc.headers
        if exc.status_code == 405:  # Starlette names the methods of the first route matching the path only
            headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=headers)

    async def unexpected_error(request: Request, exc: Exception) -> Response:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        metrics.error("internal")
        return JSONResponse({"detail": "internal server error; the details are in the server's log"}, status_code=500)

    app.add_exception_handler(RookeryError, rookery_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route answers on the request's path (GET and DELETE of /predictions/{id} alike), asked
    of the router itself, so nested routers count."""
    from starlette.routing import Match

    allowed = []
    for method in sorted(_METHODS - {"OPTIONS"}):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


def readable_validation(exc: RequestValidationError) -> str:
    """FastAPI's list of validation errors as one sentence: `tile: Input should be less than or equal to 4096`."""
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path", "header"))
        message = str(error.get("msg", "invalid value"))
        parts.append(f"{where}: {message}" if where else message)
    more = len(exc.errors()) - len(parts)
    text = "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
    return text or "the request is not valid"


def _wants_html(request: Request) -> bool:
    path = request.url.path
    api = path.startswith(("/api/", "/invocations", "/metrics", "/health", "/ready", "/static/"))
    return not api and "text/html" in request.headers.get("accept", "")


def _error_page(request: Request, status: int, message: str) -> Response | None:
    if importlib.util.find_spec(_PAGES_MODULE) is None:
        return None
    pages = importlib.import_module(_PAGES_MODULE)
    error_page = getattr(pages, "error_page", None)
    return error_page(request, status, message) if error_page is not None else None


# --- access log and request metrics (pure ASGI: no buffering of bodies) -----------------------------------------


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class AccessLog:
    """One line per request (`method=GET path=/api/v1/model status=200 ms=3.1 client=127.0.0.1`) and the request
    counter and latency histogram, labelled by route template (never by raw path: ids would explode the labels)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # when the app fails before answering, the server answers 500

        async def send_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            seconds = time.perf_counter() - started
            method = scope["method"] if scope["method"] in _METHODS else "other"  # a client picks it: bound the labels
            self.metrics.observe_request(method, route_label(scope), status, seconds)
            client = scope.get("client")
            access_log.info(
                "method=%s path=%s status=%d ms=%.1f client=%s",
                scope["method"],
                _quoted(scope.get("path", "")),
                status,
                seconds * 1000.0,
                client[0] if client else "-",
            )


def route_label(scope: dict[str, Any]) -> str:
    """The matched route's template with its router's prefix (`/api/v1/predictions/{prediction_id}`).

    FastAPI puts the route as declared in its router into the scope (`/predictions/{prediction_id}`), without the
    prefix it was included under; the prefix is the part of the path before where the route's pattern matches.
    """
    route = scope.get("route")
    template: str | None = getattr(route, "path", None)
    pattern = getattr(route, "path_regex", None)
    if not template or pattern is None:
        return "unmatched"
    path: str = scope.get("path", "")
    for i, char in enumerate(path):
        if char == "/" and pattern.match(path[i:]):
            return path[:i] + template
    return template


def _quoted(text: str) -> str:
    """A path as one key=value token (spaces or quotes in it are escaped)."""
    text = text[:300]
    return text if text and all(c.isprintable() and c not in ' "' for c in text) else repr(text)
