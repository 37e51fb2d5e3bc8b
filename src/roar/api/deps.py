"""Dependencies shared by the routes, as Annotated aliases.

Each is ``async def`` although none awaits: FastAPI runs a plain ``def`` dependency in a worker
thread, a hand-off that cost more than the request's own work (bench/compare.py --profile)."""

from __future__ import annotations

import hmac
from typing import Annotated

import orjson
from fastapi import Depends, Request

from roar.api.problems import ApiError
from roar.cache import AgentsCache
from roar.config import Settings
from roar.db.async_core import AsyncEngine
from roar.db.engine import Database

__all__ = ["CacheDep", "DatabaseDep", "EngineDep", "SettingsDep", "WriteAccess", "read_json_body"]


async def _engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


async def _database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def _cache(request: Request) -> AgentsCache:
    cache: AgentsCache = request.app.state.cache
    return cache


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def require_token(request: Request) -> None:
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


#: The raw engine: for the probes and chaos, which bound their own waits.
EngineDep = Annotated[AsyncEngine, Depends(_engine)]
#: The engine's connections within ROAR_DB_QUERY_TIMEOUT: for the routes' database work.
DatabaseDep = Annotated[Database, Depends(_database)]
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
