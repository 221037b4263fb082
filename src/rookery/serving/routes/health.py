"""Liveness, readiness and Prometheus metrics: public, for load balancers, orchestrators and scrapers.

All three are `async` and touch nothing that blocks: they run on the event loop, never in the thread pool that
requests counting photos fill, so they answer at once under any load (an orchestrator that saw a slow /health
would restart a healthy, busy server).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from rookery.serving.metrics import Metrics
from rookery.serving.redact import redact
from rookery.serving.schemas import Health, Ready

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, summary="The process is alive")
async def health() -> Any:
    return {"status": "ok"}


@router.get(
    "/ready",
    response_model=Ready,
    summary="The model is loaded and warmed",
    responses={503: {"model": Ready, "description": "Still loading (or the last load failed: see detail)."}},
)
async def ready(request: Request) -> Any:
    holder = getattr(request.app.state, "holder", None)
    model = holder.current if holder is not None else None
    if model is None:
        last_error = holder.last_error if holder is not None else None
        detail = redact(last_error) if last_error else None  # no file paths or passwords to the world
        return JSONResponse({"status": "loading", "model": None, "detail": detail}, status_code=503)
    return {"status": "ready", "model": model.label}


@router.get(
    "/metrics",
    summary="Prometheus metrics of this process",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics(request: Request) -> Response:
    registry: Metrics = request.app.state.metrics  # not a Depends(): a sync dependency would take a pool thread
    return Response(registry.render(), media_type=registry.content_type)
