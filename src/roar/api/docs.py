"""The API docs page (``/api/docs``): Swagger UI served by ROAR itself.

FastAPI's default page loads Swagger UI from a public CDN, so it is blank on an air-gapped
cluster. Here the script and stylesheet come from the ``fastapi-offline`` package (which ships
Swagger UI's dist files) and the page carries the registry page's Content-Security-Policy; the
one inline script (Swagger UI's start-up call) is allowed by its hash, nothing else inline is.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse
from starlette.types import Receive, Scope, Send

# The page's headers, so both pages are held to one policy.
from roar.web.routes import SECURITY_HEADERS as PAGE_HEADERS

__all__ = ["ASSETS_PATH", "DOCS_PATH", "install_docs"]

DOCS_PATH = "/api/docs"
ASSETS_PATH = "/api/docs/assets"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def install_docs(app: FastAPI) -> None:
    """Serve Swagger UI's files under ASSETS_PATH and the docs page at DOCS_PATH."""
    assets = Path(str(resources.files("fastapi_offline") / "static"))
    app.mount(ASSETS_PATH, _Assets(directory=assets), name="docs-assets")
    body = bytes(
        get_swagger_ui_html(
            openapi_url=app.openapi_url or "/api/openapi.json",
            title=f"{app.title}: API docs",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url="/roar/static/favicon.svg",
        ).body
    )
    headers = {
        **PAGE_HEADERS,
        "Content-Security-Policy": allow_inline_scripts(
            PAGE_HEADERS["Content-Security-Policy"], body.decode()
        ),
        "Cache-Control": "no-cache",
    }

    @app.api_route(DOCS_PATH, methods=["GET", "HEAD"], include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(body, headers=headers)


class _Assets(StaticFiles):
    """Swagger UI's files (with ETags and 304s), counted in the metrics under ASSETS_PATH: the
    request middleware labels a request by ``scope["route"].path``, which a mount leaves unset."""

    path = ASSETS_PATH

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self
        await super().__call__(scope, receive, send)


def allow_inline_scripts(policy: str, html: str) -> str:
    """``policy`` whose script-src also allows each inline ``<script>`` of ``html``, by hash."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(html)
    ]
    directives = [
        " ".join([d, *hashes]) if d.startswith("script-src ") else d for d in policy.split("; ")
    ]
    return "; ".join(directives)
