"""The interactive API documentation at /docs, served from the installed package, never from a CDN.

FastAPI's default /docs page loads Swagger UI from a public CDN: a browser next to an offline server (a survey
vessel, a field station, this project's CI) gets an empty page, and a page that runs scripts from a third party
is one more thing a strict deployment must trust. The `swagger-ui-bundle` wheel (Apache-2.0) ships the same
files; they are mounted under /docs/static.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = "/docs/static"

router = APIRouter(tags=["docs"])


@router.get("/docs", include_in_schema=False)
async def docs() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="rookery API",
        swagger_js_url=f"{STATIC}/swagger-ui-bundle.js",
        swagger_css_url=f"{STATIC}/swagger-ui.css",
        swagger_favicon_url=f"{STATIC}/favicon-32x32.png",
    )


def mount_docs(app: FastAPI) -> None:
    """/docs and its assets from the swagger-ui-bundle package (installed with rookery[serve])."""
    from swagger_ui_bundle import swagger_ui_path

    app.mount(STATIC, StaticFiles(directory=str(swagger_ui_path)), name="docs-static")
    app.include_router(router)
