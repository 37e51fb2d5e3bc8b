"""The page's routes: the registry page, its redirects and its static assets.

The page is one HTML template filled in on the server (flavor and status version, so the version
shown always matches /roar/api/v1/status/version) and one ES module that talks to the modern API.
No inline script or style, so a strict Content-Security-Policy holds.
"""

from __future__ import annotations

import html
import re
from functools import cache
from pathlib import Path
from string import Template

from fastapi import APIRouter, HTTPException, Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse

from roar.config import Settings

__all__ = ["SECURITY_HEADERS", "router"]

_HERE = Path(__file__).resolve().parent
STATIC_DIR = _HERE / "static"
TEMPLATE = _HERE / "templates" / "agents.html"

#: Only files named like this are served: no dots to climb with, no hidden files.
_ASSET_NAME = re.compile(r"[a-z0-9][a-z0-9-]*\.(css|js|svg)")
_MEDIA_TYPES = {"css": "text/css", "js": "text/javascript", "svg": "image/svg+xml"}

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

router = APIRouter(include_in_schema=False, tags=["web"])
_GET = ["GET", "HEAD"]  # HEAD too: link checkers and curl -I


@cache
def _template() -> Template:
    return Template(TEMPLATE.read_text(encoding="utf-8"))


def render_page(settings: Settings) -> str:
    """The page's HTML for ``settings``: flavor and status version filled in, escaped."""
    flavor = settings.flavor.value
    return _template().substitute(
        flavor=html.escape(flavor),
        status_version=html.escape(settings.status_version),
        flavor_mark=' <span class="flavor-mark">v2</span>' if flavor == "v2" else "",
    )


@router.api_route("/", methods=_GET)
async def root() -> RedirectResponse:
    return RedirectResponse("/roar/", status_code=307)


@router.api_route("/roar", methods=_GET)
async def roar_no_slash() -> RedirectResponse:
    # Relative asset and API URLs in the page need the trailing slash.
    return RedirectResponse("/roar/", status_code=307)


@router.api_route("/roar/", methods=_GET)
@router.api_route("/roar/agents.html", methods=_GET)
async def page(request: Request) -> HTMLResponse:
    return HTMLResponse(
        render_page(request.app.state.settings),
        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
    )


@router.api_route("/roar/static/{name}", methods=_GET)
async def asset(name: str) -> FileResponse:
    match = _ASSET_NAME.fullmatch(name)
    path = STATIC_DIR / name
    if not match or not path.is_file():
        raise HTTPException(404)
    return FileResponse(
        path,
        media_type=_MEDIA_TYPES[match.group(1)],
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"},
    )
