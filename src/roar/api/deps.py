"""Dependencies shared by the routes, as Annotated aliases."""

from __future__ import annotations

import hmac
from typing import Annotated

import orjson
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from roar.api.problems import ApiError
from roar.cache import AgentsCache
from roar.config import Settings

__all__ = ["CacheDep", "EngineDep", "SettingsDep", "WriteAccess", "read_json_body"]


def _engine(request: Request) -> AsyncEngine:
    return request.app.state.engine


def _cache(request: Request) -> AgentsCache:
    return request.app.state.cache


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def require_token(request: Request) -> None:
    """Writes need ``Authorization: Bearer <token>`` when a token is configured."""
    token = request.app.state.settings.token
    if token is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), token):
        raise ApiError(
            401,
            "This write needs the API token: send Authorization: Bearer <token>",
            headers={"WWW-Authenticate": 'Bearer realm="roar"'},
        )


EngineDep = Annotated[AsyncEngine, Depends(_engine)]
CacheDep = Annotated[AgentsCache, Depends(_cache)]
SettingsDep = Annotated[Settings, Depends(_settings)]
WriteAccess = Depends(require_token)


async def read_json_body(request: Request) -> object:
    """The request body parsed as JSON, or a 400 naming the problem."""
    raw = await request.body()
    if not raw.strip():
        raise ApiError(
            400, "The request body is empty; send a JSON object", errors=[("body", "is required")]
        )
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(
            400,
            f"The request body is not valid JSON ({exc})",
            errors=[("body", "is not valid JSON")],
        ) from None
