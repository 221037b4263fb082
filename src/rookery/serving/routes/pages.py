"""The web pages: server-rendered Jinja2 shells that plain JavaScript (static/app.js) fills from the REST API.

Pages are public and the API may be protected by a key (ROOKERY_API_KEY), so a page never embeds history or
model data itself: the browser asks the API for it with the key the user typed, and the pages and the API can
never disagree on what a prediction holds. The server does decide what it can without the key: which page
exists (an unknown prediction id gets a 404 page), the upload limits, and the class colours, which come from
the same table as the annotated images that `rookery predict` draws.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from rookery import __version__
from rookery.config import Settings, get_settings
from rookery.data.classes import SEALION_CLASSES
from rookery.inference.render import PALETTE_RGB

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # rookery/serving, installed or not
TEMPLATES_DIR = PACKAGE_DIR / "templates"
STATIC_DIR = PACKAGE_DIR / "static"

templates = Jinja2Templates(directory=TEMPLATES_DIR)
router = APIRouter(include_in_schema=False, tags=["pages"])


@cache
def _asset_tag() -> str:
    """A short hash of the static files, appended to their URLs so a browser never runs a stale app.js."""
    digest = hashlib.sha256(__version__.encode())
    for path in sorted(STATIC_DIR.rglob("*")):
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


@cache
def _colours_json() -> str:
    """The colour rule of rookery.inference.render.class_colors, as data for app.js (RGB)."""
    return json.dumps(
        {
            "sealions": {s.name: list(s.color) for s in SEALION_CLASSES},
            "palette": [list(c) for c in PALETTE_RGB],
        }
    )


def _settings(request: Request) -> Settings:
    """The app's own settings when create_app was given some (tests), else the process-wide ones."""
    settings = getattr(request.app.state, "settings", None)
    return settings if isinstance(settings, Settings) else get_settings()


def _render(request: Request, template: str, page: str, status_code: int = 200, **extra: Any) -> HTMLResponse:
    settings = _settings(request)
    context = {
        # Behind a proxy that mounts the app under a prefix, every URL the page builds starts with it.
        "base": str(request.scope.get("root_path", "")).rstrip("/"),
        "page": page,
        "version": __version__,
        "asset_tag": _asset_tag(),
        "colours_json": _colours_json(),
        "max_upload_mb": settings.max_upload_mb,
        "key_required": settings.api_key is not None,
        **extra,
    }
    return templates.TemplateResponse(request, template, context, status_code=status_code)


@router.get("/", response_class=HTMLResponse)
def index(request: Request) -> HTMLResponse:
    return _render(request, "index.html", "index")


@router.get("/history", response_class=HTMLResponse)
def history(request: Request) -> HTMLResponse:
    return _render(request, "history.html", "history")


@router.get("/model", response_class=HTMLResponse)
def model(request: Request) -> HTMLResponse:
    return _render(request, "model.html", "model")


@router.get("/predictions/{prediction_id}", response_class=HTMLResponse)
def prediction(request: Request, prediction_id: str) -> HTMLResponse:
    # Sync route: the store call is a short blocking DB query, so FastAPI runs it in its thread pool.
    store = getattr(request.app.state, "store", None)
    if store is not None and store.get(prediction_id) is None:
        return error_page(request, 404, "No prediction has this id; it may have been deleted.")
    return _render(request, "prediction.html", "prediction", prediction_id=prediction_id)


def error_page(request: Request, status_code: int, message: str) -> HTMLResponse:
    """A readable error page (used for unknown predictions; app.py may use it for other page errors)."""
    return _render(request, "error.html", "error", status_code=status_code, status=status_code, message=message)
