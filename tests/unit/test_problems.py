"""Which failures the API reports as "database unavailable" (503), and which as its own bug
(500 with the traceback in the log): the error mapping of roar.api.problems, on the real
middleware and handlers, with routes that fail on purpose."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from roar.api.middleware import RequestMiddleware
from roar.api.problems import install_handlers

FAILURES: dict[str, BaseException] = {
    # Not the database's: e.g. a file, a socket to something else, an asyncio.timeout.
    "file": FileNotFoundError(2, "No such file or directory", "/etc/roar/missing"),
    "socket": ConnectionRefusedError(111, "Connect call failed ('10.0.0.9', 443)"),
    "timeout": TimeoutError(),
    # The database's, as SQLAlchemy raises them (measured against a stopped MariaDB).
    "refused": OperationalError(
        "SELECT 1", {}, ConnectionRefusedError(111, "Can't connect to MySQL server")
    ),
    "pool": PoolTimeout("QueuePool limit of size 5 overflow 0 reached"),
    # A database error that is a bug of ours, not an outage.
    "sql": ProgrammingError("SELEC 1", {}, Exception("You have an error in your SQL syntax")),
}


def _app() -> FastAPI:
    app = FastAPI()
    app.state.database_name = "mysql+aiomysql://admin:***@db:3306/registry"
    install_handlers(app)
    app.add_middleware(RequestMiddleware, max_body_bytes=1024, version="test")

    for name, failure in FAILURES.items():
        app.add_api_route(f"/api/v1/{name}", _raising(failure))
    return app


def _raising(failure: BaseException) -> Callable[[], Awaitable[None]]:
    async def fail() -> None:
        raise failure

    return fail


async def _get(path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://roar") as client:
        return await client.get(path)


@pytest.mark.parametrize("name", ["file", "socket", "timeout", "sql"])
async def test_a_failure_not_of_the_database_is_a_500_with_its_traceback(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    r = await _get(f"/api/v1/{name}")
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/problem+json"
    assert "database" not in r.text and "retry-after" not in r.headers
    assert "database unavailable" not in caplog.text
    logged = [rec for rec in caplog.records if rec.exc_info and rec.levelno >= logging.ERROR]
    assert logged and isinstance(logged[0].exc_info[1], type(FAILURES[name]))  # type: ignore[index]


@pytest.mark.parametrize("name", ["refused", "pool"])
async def test_a_database_outage_is_a_503_naming_the_database(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    r = await _get(f"/api/v1/{name}")
    assert r.status_code == 503 and r.headers["retry-after"]
    assert "database is unavailable" in r.json()["detail"]
    assert "database unavailable: mysql+aiomysql://admin:***@db:3306/registry" in caplog.text
