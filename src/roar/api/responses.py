"""Responses with exactly the content types the legacy contract documents.

Starlette appends ``; charset=utf-8`` to every ``text/*`` media type; the original answered bare
``text/plain`` and ``text/html``, and workshop scripts compare them, so the header is set as is.
"""

from __future__ import annotations

import orjson
from starlette.responses import Response

__all__ = ["exact", "json"]


def exact(
    body: bytes | str, content_type: str, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(body, status, {**(headers or {}), "content-type": content_type})


def json(data: object, status: int = 200) -> Response:
    return exact(orjson.dumps(data), "application/json", status)
