"""Turning failures into one line a person can act on (for the CLI)."""

from __future__ import annotations

import httpx
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

__all__ = ["describe_failure"]


def describe_failure(exc: BaseException) -> str:
    if isinstance(exc, DBAPIError):
        return f"database unavailable: {exc.orig}"
    if isinstance(exc, PoolTimeout):
        return "database unavailable: no connection within the timeout"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot reach ROAR at {exc.request.url}: {exc}"
    if isinstance(exc, httpx.HTTPError):
        return f"HTTP request failed: {exc}"
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    return f"{type(exc).__name__}: {exc}"
