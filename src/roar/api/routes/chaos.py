"""The /chaos routes (test-only fault injection, docs/chaos.md), and the dependency that injects
the random faults into the API and page routes. Present only when ``ROAR_CHAOS`` is true; every
route needs the API token when one is set, exactly as writes do."""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from roar.api.deps import EngineDep, WriteAccess
from roar.api.problems import PROBLEM_JSON, ApiError
from roar.api.responses import json
from roar.chaos import HOLD_MAX_SECONDS, Chaos, Faults, pool_capacity
from roar.config import CHAOS_MAX_SECONDS, known_status

__all__ = ["inject_faults", "router"]


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {}}}


_STATE = "The chaos state of the worker process that answered (`pid`)"
_INVALID = _problem("A field is out of range; the problem's `errors` name it")

router = APIRouter(
    prefix="/chaos",
    tags=["chaos"],
    dependencies=[WriteAccess],
    responses={401: _problem("ROAR_API_TOKEN is set and the request lacks `Bearer <token>`")},
)


def _chaos(request: Request) -> Chaos:
    chaos: Chaos = request.app.state.chaos
    return chaos


def _state(request: Request) -> Response:
    state = _chaos(request).snapshot()
    state["database"]["pool_capacity"] = pool_capacity(request.app.state.engine)
    return json(state)


# Random faults in the API and page routes -------------------------------------------------


async def inject_faults(request: Request) -> None:
    """Delay and/or fail this request as the current faults say (a route dependency of the
    API and page routers when chaos is on; never of /healthz, /readyz, /metrics or /chaos)."""
    chaos = _chaos(request)
    delay, error = chaos.draw()
    if delay:
        await asyncio.sleep(delay)
    if error is not None:
        raise ApiError(
            error,
            f"Injected by ROAR's chaos settings (error_rate {chaos.faults.error_rate:g}, "
            f"status {error}; see GET /chaos), not a real failure",
        )


# Request bodies ---------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FaultsBody(_Body):
    error_rate: float = Field(0.0, ge=0, le=1, description="Share of requests failed (0..1)")
    error_status: int = Field(500, ge=400, le=599, description="Status of a failed request")
    delay_rate: float = Field(0.0, ge=0, le=1, description="Share of requests delayed (0..1)")
    delay_seconds: float = Field(
        0.0, ge=0, le=CHAOS_MAX_SECONDS, description="Delay of a delayed request, in seconds"
    )


class ReadinessBody(_Body):
    ready: bool = Field(description="false: /readyz answers 503")


class LivenessBody(_Body):
    healthy: bool = Field(description="false: /healthz answers 503")


class DatabaseBody(_Body):
    slow_query_seconds: float = Field(
        0.0, ge=0, le=CHAOS_MAX_SECONDS, description="Each query first waits this long"
    )
    hold_connections: int = Field(
        0, ge=0, le=100, description="Pool connections to check out and hold (0: none)"
    )
    hold_seconds: float = Field(0.0, ge=0, le=HOLD_MAX_SECONDS, description="How long to hold them")


# Routes -----------------------------------------------------------------------------------


@router.get("", summary="The current chaos state", responses={200: {"description": _STATE}})
async def show(request: Request) -> Response:
    return _state(request)


@router.delete(
    "",
    summary="Reset every switch to the ROAR_CHAOS_* settings; release held connections",
    responses={200: {"description": _STATE}},
)
async def reset(request: Request) -> Response:
    await _chaos(request).reset()
    return _state(request)


@router.get(
    "/delay/{seconds}",
    summary="Answer after a delay",
    responses={200: {"description": '`{"delayed_seconds": s}`'}, 422: _INVALID},
)
async def delay(
    seconds: Annotated[float, Path(ge=0, le=CHAOS_MAX_SECONDS, description="Seconds to wait")],
) -> Response:
    await asyncio.sleep(seconds)
    return json({"delayed_seconds": seconds})


@router.get(
    "/status/{code}",
    summary="Answer with this status",
    responses={
        200: {"description": '2xx and 3xx: `{"status": code}` (204 and 304: no body)'},
        400: _problem("4xx and 5xx: a problem naming the status, as asked"),
        422: _INVALID,
    },
)
async def status(
    request: Request,
    code: Annotated[int, Path(ge=100, le=599, description="HTTP status to answer with")],
) -> Response:
    if code < 200:
        raise ApiError(
            422,
            f"code {code} is an interim (1xx) status that cannot end a request; use 200-599",
            errors=[("code", "must be 200-599 to be a final answer")],
        )
    if code in (204, 304):
        return Response(status_code=code)
    if code < 400:
        return json({"status": code}, code)
    try:
        title = HTTPStatus(code).phrase
    except ValueError:
        title = f"Status {code}"
    body = {
        "type": "about:blank",
        "title": title,
        "status": code,
        "detail": f"Status {code} as asked by GET /chaos/status/{code}",
        "instance": request.url.path,
    }
    return Response(orjson.dumps(body), code, media_type=PROBLEM_JSON)


@router.put(
    "/faults",
    summary="Set the random faults of the API and page routes",
    responses={200: {"description": _STATE}, 422: _INVALID},
)
async def set_faults(request: Request, body: FaultsBody) -> Response:
    try:
        known_status(body.error_status)
    except ValueError as exc:
        raise ApiError(422, f"error_status {exc}", errors=[("error_status", str(exc))]) from None
    _chaos(request).faults = Faults(**body.model_dump())
    return _state(request)


@router.put(
    "/readiness",
    summary="Make /readyz answer 503 (false) or check the database again (true)",
    responses={200: {"description": _STATE}, 422: _INVALID},
)
async def set_readiness(request: Request, body: ReadinessBody) -> Response:
    _chaos(request).ready = body.ready
    return _state(request)


@router.put(
    "/liveness",
    summary="Make /healthz answer 503 (false: the kubelet restarts the container) or 200",
    responses={200: {"description": _STATE}, 422: _INVALID},
)
async def set_liveness(request: Request, body: LivenessBody) -> Response:
    _chaos(request).healthy = body.healthy
    return _state(request)


@router.put(
    "/database",
    summary="Slow every query down, and/or hold pool connections (pool exhaustion)",
    responses={
        200: {"description": _STATE},
        422: _INVALID,
        503: _problem("The pool could not give the connections to hold within its timeout"),
    },
)
async def set_database(request: Request, engine: EngineDep, body: DatabaseBody) -> Response:
    chaos = _chaos(request)
    if body.hold_connections and not body.hold_seconds:
        raise ApiError(
            422,
            "hold_seconds must be above 0 when hold_connections is set",
            errors=[("hold_seconds", "must be above 0 when hold_connections is set")],
        )
    capacity = pool_capacity(engine)
    if body.hold_connections > capacity:
        raise ApiError(
            422,
            f"hold_connections {body.hold_connections} is above the pool's {capacity}",
            errors=[("hold_connections", f"must be at most the pool's capacity, {capacity}")],
        )
    chaos.slow_query_seconds = body.slow_query_seconds
    if body.hold_connections:
        await chaos.hold(engine, body.hold_connections, body.hold_seconds)
    else:
        await chaos.release()
    return _state(request)
