"""Operations endpoints: liveness, readiness, version, metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import text
from starlette.responses import Response

from roar import __version__, metrics
from roar.api.deps import EngineDep, SettingsDep
from roar.api.responses import json
from roar.db.engine import deadline

router = APIRouter(tags=["operations"])


def _unavailable(description: str) -> dict[int | str, dict[str, Any]]:
    """The 503 of a probe, in the OpenAPI document: JSON, as its 200 (not a problem)."""
    return {503: {"description": description, "content": {"application/json": {}}}}


@router.get(
    "/healthz",
    summary="Liveness: the process answers (no database involved)",
    responses=_unavailable("Liveness switched off (chaos, for tests only)"),
)
async def healthz(request: Request) -> Response:
    chaos = request.app.state.chaos
    if chaos is not None and not chaos.healthy:
        return json({"status": "unhealthy", "chaos": "liveness off (PUT /chaos/liveness)"}, 503)
    return json({"status": "ok"})


@router.get(
    "/readyz",
    summary="Readiness: the database answers, the agents are loaded, the server is not stopping",
    responses=_unavailable(
        "Stopping, the database does not answer (named), the agents still loading, or chaos"
    ),
)
async def readyz(request: Request, engine: EngineDep, settings: SettingsDep) -> Response:
    if request.app.state.draining:
        return json({"status": "stopping"}, 503)
    chaos = request.app.state.chaos
    if chaos is not None and not chaos.ready:
        return json({"status": "unready", "chaos": "readiness off (PUT /chaos/readiness)"}, 503)
    try:
        async with deadline(settings.db_timeout), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not ready"; say which dependency and why
        metrics.DB_UP.set(0)
        reason = str(getattr(exc, "orig", None) or exc) or type(exc).__name__
        return json(
            {"status": "unavailable", "database": f"{request.app.state.database_name}: {reason}"},
            503,
        )
    metrics.DB_UP.set(1)
    if not request.app.state.cache.loaded:
        # Until the first full read ends, every read would wait for it: not ready to serve.
        return json({"status": "starting", "database": "ok", "snapshot": "loading"}, 503)
    return json({"status": "ready", "database": "ok"})


@router.get("/version", summary="Build version, flavor and commit")
async def version(settings: SettingsDep) -> Response:
    return json(
        {
            "version": __version__,
            "status_version": settings.status_version,
            "flavor": settings.flavor.value,
            "commit": settings.build_commit,
        }
    )


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def prometheus() -> Response:
    return Response(metrics.render(), media_type=metrics.CONTENT_TYPE_LATEST)
