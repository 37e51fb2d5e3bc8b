"""The ASGI application: routers, error handlers, middleware and lifecycle in one place."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI

from roar import __version__, metrics
from roar.api.docs import install_docs
from roar.api.middleware import RequestMiddleware
from roar.api.problems import install_handlers
from roar.api.record import Recorder
from roar.api.routes import agents, legacy, ops
from roar.cache import AgentsCache
from roar.chaos import Chaos, install_slow_queries
from roar.config import Settings
from roar.counter import WriteCounter
from roar.db.engine import Database, create_engine
from roar.web import routes as web_routes

__all__ = ["create_app"]

log = logging.getLogger("roar")


def create_app(
    settings: Settings, *, counter: WriteCounter | None = None, prune_log: bool = True
) -> FastAPI:
    """A ROAR application for ``settings``; the database is opened by its lifespan.

    ``counter`` is the server's write counter that all its workers share (roar.counter; a
    worker of its own by default); ``prune_log``: whether this worker prunes the change log."""
    # Test-only fault injection (roar.chaos): without ROAR_CHAOS nothing of it is mounted.
    chaos = Chaos.from_settings(settings) if settings.chaos else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = settings.resolved_database_url
        engine = create_engine(
            url, pool_size=settings.db_pool_size, timeout=settings.db_timeout, autocommit=True
        )
        if chaos is not None:
            install_slow_queries(engine, chaos)
        app.state.engine = engine
        app.state.database = Database(engine, settings.db_query_timeout)
        # The snapshot's poll keeps one connection open: its own, not one of the pool's.
        probe_engine = create_engine(
            url, pool_size=1, timeout=settings.db_timeout, instrument=False
        )
        app.state.cache = AgentsCache(
            engine,
            ttl=settings.cache_ttl,
            poll_interval=settings.cache_poll_interval,
            counter=counter,
            prune=prune_log,
            probe_engine=probe_engine,
            read_timeout=settings.db_query_timeout,
        )
        metrics.DB_POOL_SIZE.set(settings.db_pool_size)
        metrics.SNAPSHOT_TTL.set(settings.cache_ttl)
        metrics.set_build_info(
            version=__version__,
            status_version=settings.status_version,
            flavor=settings.flavor.value,
            commit=settings.build_commit or "unknown",
        )
        # Reads the table at once (requests wait for that read), then follows the change log.
        refresher = asyncio.create_task(app.state.cache.watch_forever())
        try:
            yield
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher  # it must not take a connection from the pool being closed
            if chaos is not None:
                await chaos.release()
            await engine.dispose()
            await probe_engine.dispose()

    app = FastAPI(
        title="ROAR: Registry of Animal Responders",
        version=__version__,
        description=(
            "The modern agents API under /api/v1, the original workshop API under /roar/api "
            "(kept byte-for-byte), and operations endpoints."
        ),
        openapi_url="/api/openapi.json",
        docs_url=None,  # roar.api.docs serves it, without a CDN
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.draining = False
    app.state.database_name = settings.database_name
    app.state.chaos = chaos
    install_handlers(app)
    # One recorder counts and logs every answer, the FastAPI app's and the fast path's
    # (roar.api.fastpath, which roar.server puts in front of this app).
    app.state.recorder = Recorder(
        access_log=settings.access_log,
        sample=settings.access_log_sample,
        probes=settings.access_log_probes,
    )
    app.add_middleware(
        RequestMiddleware,
        max_body_bytes=settings.max_body_bytes,
        version=settings.status_version,
        recorder=app.state.recorder,
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
    for router in (legacy.router, agents.router, web_routes.router):
        app.include_router(router, dependencies=faults)
    install_docs(app)
    return app
