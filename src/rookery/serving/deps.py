"""Typed dependencies of the routes: what the app holds (settings, store, model, metrics) and the API key check.

Everything lives on `app.state`, set by create_app and its lifespan, so several apps can live in one process
(tests) without sharing anything.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from rookery.config import Settings
from rookery.serving.metrics import Metrics
from rookery.serving.model_holder import LoadedModel, ModelHolder
from rookery.serving.redact import redact
from rookery.serving.service import Limits
from rookery.serving.store import PredictionStore

STARTUP_WAIT_S = 60.0  # longest wait of a request for its worker's first model load


class ModelNotReady(HTTPException):
    def __init__(self, detail: str) -> None:
        super().__init__(status_code=503, detail=detail, headers={"Retry-After": "5"})


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


def get_limits(request: Request) -> Limits:
    limits: Limits = request.app.state.limits
    return limits


def get_store(request: Request) -> PredictionStore:
    store: PredictionStore | None = getattr(request.app.state, "store", None)
    if store is None:
        raise HTTPException(503, "the history store is not open yet; try again in a few seconds")
    return store


def get_holder(request: Request) -> ModelHolder:
    holder: ModelHolder | None = getattr(request.app.state, "holder", None)
    if holder is None:
        raise ModelNotReady("the server is still starting; try again in a few seconds")
    return holder


def get_model(holder: Annotated[ModelHolder, Depends(get_holder)]) -> LoadedModel:
    """The model that answers this request: read once, so a swap during the request cannot mix two versions.

    Swaps never make a request wait (the old model answers until the new one is warm). Only a request that
    reaches a process whose first load is still under way waits for it, briefly, instead of failing: with
    several workers, /ready may have been answered by another one.
    """
    model = holder.wait_first_load(STARTUP_WAIT_S)
    if model is None:
        reason = f" (last attempt: {redact(holder.last_error)})" if holder.last_error else ""
        raise ModelNotReady(f"the model {holder.uri} is still loading; try again in a few seconds{reason}")
    return model


SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
LimitsDep = Annotated[Limits, Depends(get_limits)]
StoreDep = Annotated[PredictionStore, Depends(get_store)]
HolderDep = Annotated[ModelHolder, Depends(get_holder)]
ModelDep = Annotated[LoadedModel, Depends(get_model)]

# Both ways of sending the key appear in the OpenAPI schema, so /docs has an "Authorize" button for them.
_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="The server's key (ROOKERY_API_KEY), when it has one."
)
_bearer = HTTPBearer(auto_error=False, description="The same key as a bearer token.")


def require_api_key(
    request: Request,
    api_key: Annotated[str | None, Security(_api_key_header)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> None:
    """401 unless the request carries the key, when the server has one (ROOKERY_API_KEY)."""
    expected = request.app.state.settings.api_key
    if expected is None:
        return
    wanted = expected.get_secret_value().encode()
    for given in (api_key, bearer.credentials if bearer is not None else None):
        if given is not None and secrets.compare_digest(given.encode(), wanted):
            return
    request.app.state.metrics.error("unauthorized")
    raise HTTPException(
        401,
        "this API needs a key: send it as the X-API-Key header or as 'Authorization: Bearer <key>'",
        headers={"WWW-Authenticate": "Bearer"},
    )
