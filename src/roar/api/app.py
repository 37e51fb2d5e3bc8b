"""The ASGI application: routers, error handlers, middleware and lifecycle in one place."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI

from roar import __version__, metrics
from roar.api.middleware import RequestMiddleware
from roar.api.problems import install_handlers
from roar.api.routes import agents, legacy, ops
from roar.cache import AgentsCache
from roar.chaos import Chaos, install_slow_queries
from roar.config import Settings
from roar.db import agents as crud
from roar.db.engine import create_engine

__all__ = ["create_app"]

log = logging.getLogger("roar")


def create_app(settings: Settings) -> FastAPI:
    """A ROAR application for ``settings``; the database is opened by its lifespan."""
    # Test-only fault injection (roar.chaos): without ROAR_CHAOS nothing of it is mounted.
    chaos = Chaos.from_settings(settings) if settings.chaos else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = settings.resolved_database_url
        engine = create_engine(url, pool_size=settings.db_pool_size, timeout=settings.db_timeout)

        async def load() -> Sequence[dict[str, Any]]:
            try:
                async with engine.connect() as conn:
                    rows = [dict(row._mapping) for row in await crud.all_agents(conn)]
            except Exception:
                metrics.DB_UP.set(0)
                raise
            metrics.DB_UP.set(1)
            return rows

        if chaos is not None:
            install_slow_queries(engine, chaos)
        app.state.engine = engine
        app.state.cache = AgentsCache(load, settings.cache_ttl)
        metrics.DB_POOL_SIZE.set(settings.db_pool_size)
        metrics.SNAPSHOT_TTL.set(settings.cache_ttl)
        metrics.set_build_info(
            version=__version__,
            status_version=settings.status_version,
            flavor=settings.flavor.value,
            commit=settings.build_commit or "unknown",
        )
        refresher = asyncio.create_task(app.state.cache.refresh_forever())
        try:
            yield
        finally:
            refresher.cancel()
            if chaos is not None:
                await chaos.release()
            await engine.dispose()

    app = FastAPI(
        title="ROAR: Registry of Animal Responders",
        version=__version__,
        description=(
            "The modern agents API under /api/v1, the original workshop API under /roar/api "
            "(kept byte-for-byte), and operations endpoints."
        ),
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.draining = False
    app.state.database_name = settings.database_name
    app.state.chaos = chaos
    install_handlers(app)
    app.add_middleware(
        RequestMiddleware,
        max_body_bytes=settings.max_body_bytes,
        version=settings.status_version,
    )
    faults: list[Any] = []
    app.include_router(ops.router)
    if chaos is not None:
        from roar.api.routes import chaos as chaos_routes

        log.warning(
            "chaos is ON (ROAR_CHAOS=true): /chaos can inject faults; faults now %s; "
            "for tests only, never in production",
            chaos.faults,
        )
        app.include_router(chaos_routes.router)
        faults = [Depends(chaos_routes.inject_faults)]
    for router in (legacy.router, agents.router):
        app.include_router(router, dependencies=faults)
    _include_web(app, faults)
    return app


def _include_web(app: FastAPI, dependencies: list[Any]) -> None:
    """The web page's routes (roar.web), when the page is part of this build."""
    try:
        from roar.web.routes import router as web_router
    except ImportError:
        log.debug("roar.web.routes not present; serving the APIs only")
        return
    app.include_router(web_router, dependencies=dependencies)
