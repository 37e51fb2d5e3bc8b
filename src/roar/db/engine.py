"""The async engine: one pool per worker process, tuned per backend."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, InvalidatePoolError
from sqlalchemy.util import await_only

from roar import metrics
from roar.db.async_core import AsyncConnection, AsyncEngine, create_async_engine

__all__ = ["Database", "DatabaseTimeout", "create_engine", "deadline"]


class DatabaseTimeout(Exception):
    """The database did not answer within the deadline: a server that accepts connections but
    never replies (frozen, overloaded, a lock held) is as unavailable as one that refuses them."""


@asynccontextmanager
async def deadline(seconds: float) -> AsyncIterator[asyncio.Timeout]:
    """Bound the database work inside to ``seconds`` (the deadline yielded can be moved on).
    The drivers' own timeouts cover only the connect: without this, a request to a server
    that stopped answering waits forever."""
    try:
        async with asyncio.timeout(seconds) as limit:
            yield limit
    except TimeoutError:
        raise DatabaseTimeout(f"no answer within {seconds:g} s") from None


@dataclass(frozen=True)
class Database:
    """What the routes use: the engine's connections, each bounded by ``timeout`` seconds
    (``ROAR_DB_QUERY_TIMEOUT``) from checkout to release.

    The engine is in autocommit (``create_engine(autocommit=True)``): each statement commits as
    it runs, so a write costs one round trip, not two or three (BEGIN is implicit, then COMMIT,
    and the SELECT an UPDATE needs for its answer; docs/benchmarks.md). No route needs more:
    each write is one statement, and a read-modify-write (PATCH) is guarded by the row version.
    """

    engine: AsyncEngine
    timeout: float

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        async with deadline(self.timeout), self.engine.connect() as conn:
            yield conn


def create_engine(
    url: str,
    *,
    pool_size: int = 5,
    timeout: float = 2.0,
    instrument: bool = True,
    autocommit: bool = False,
) -> AsyncEngine:
    """An engine for ``url`` whose connects fail within ``timeout`` seconds; ``instrument``:
    whether its pool and statements count in the metrics (not for a side connection);
    ``autocommit``: each statement commits as it runs (see ``Database``)."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {}
    if autocommit:
        # Set once per connection, when it opens. skip_autocommit_rollback: the ROLLBACK that
        # SQLAlchemy sends when a connection closes has nothing to undo here (a round trip).
        kwargs.update(isolation_level="AUTOCOMMIT", skip_autocommit_rollback=True)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": timeout}
    else:
        kwargs.update(
            pool_size=pool_size,
            # No overflow: connections opened and closed per burst cost more than waiting
            # for a pooled one (measured with bench/load.py).
            max_overflow=0,
            # Waiting for a pooled connection under load is not an outage: queue for longer
            # than a connect may take.
            pool_timeout=max(10 * timeout, 10),
            pool_recycle=1800,
            # Two round trips per request saved (counted with MariaDB's status counters): no
            # ROLLBACK when a connection returns (SQLAlchemy's Connection already ends any
            # transaction it began: it rolls back on close, or the caller committed), and no
            # ping on every checkout (_ping_when_idle instead of pool_pre_ping).
            pool_reset_on_return=None,
            connect_args={"connect_timeout": max(1, round(timeout))},
        )
    engine = create_async_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        event.listen(engine.sync_engine, "connect", _give_up_on_silent_peers)
        _ping_when_idle(engine)
    if instrument:
        _instrument_pool(engine)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers run beside a writer; busy_timeout queues concurrent writers
    # (several workers share one file) instead of failing them with "database is locked".
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
    # SQLite's NOCASE and lower() fold ASCII letters only; searches for other letters compare
    # with Python's case folding through this function (roar.db.agents.find_by_species).
    dbapi_conn.create_function("roar_casefold", 1, _casefold, deterministic=True)


def _casefold(text: str | None) -> str | None:
    return text.casefold() if text is not None else None


#: Seconds a pooled connection may sit unused before its next checkout pings the server first.
IDLE_BEFORE_PING = 1.0
#: Seconds that ping may take (a healthy server answers in well under a millisecond).
PING_TIMEOUT = 1.0


def _ping_when_idle(engine: AsyncEngine) -> None:
    """A connection the server dropped (restart, failover, wait_timeout) is replaced, not
    handed to a request: checked when it has been idle, or when the driver closed it (a
    deadline cancelled its query). A connection in steady use needs no ping: a failure on it
    invalidates the whole pool (SQLAlchemy), so the rest are replaced all the same."""
    sync = engine.sync_engine

    @event.listens_for(sync, "checkin")
    def _checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["roar_idle_since"] = time.monotonic()

    @event.listens_for(sync, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        if getattr(dbapi_conn.driver_connection, "closed", False):
            # This one only: the pool opens a new connection in its place.
            raise DisconnectionError("pooled connection closed by the driver")
        idle_since = record.info.get("roar_idle_since")
        if idle_since is None or time.monotonic() - idle_since < IDLE_BEFORE_PING:
            return
        try:
            # Bounded, and shorter than a readiness check: a connection to an address that is
            # gone (a restarted pod's) neither answers nor fails; it would hang the probe.
            await_only(asyncio.wait_for(dbapi_conn.driver_connection.ping(False), PING_TIMEOUT))
        except Exception as exc:
            # The server went away: the pool's other connections are as dead as this one. Replace
            # them all now, as pool_pre_ping does, rather than fail a readiness probe per
            # connection (each waiting for its own timeout, where the old address is gone).
            raise InvalidatePoolError(f"pooled connection unusable: {exc}") from exc


#: Milliseconds sent data may stay unacknowledged before the kernel fails the connection.
TCP_USER_TIMEOUT_MS = 10_000


def _give_up_on_silent_peers(dbapi_conn: Any, _record: Any) -> None:
    """A server whose address vanished (a deleted pod) sends no FIN and no RST: without this, a
    query on a connection to it waits for TCP's retransmissions, a quarter of an hour. With
    TCP_USER_TIMEOUT the kernel fails it within seconds, and the pool replaces it (a frozen
    server still acknowledges, so ``deadline`` covers that case). aiomysql keeps its transport
    private; without one (a socket path, a future aiomysql) nothing is set."""
    writer = getattr(dbapi_conn.driver_connection, "_writer", None)
    sock = writer.transport.get_extra_info("socket") if writer is not None else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, TCP_USER_TIMEOUT_MS)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)


def _instrument_pool(engine: AsyncEngine) -> None:
    sync = engine.sync_engine

    @event.listens_for(sync, "checkout")
    def _checkout(*_: Any) -> None:
        metrics.DB_POOL_IN_USE.inc()

    @event.listens_for(sync, "checkin")
    def _checkin(*_: Any) -> None:
        metrics.DB_POOL_IN_USE.dec()

    @event.listens_for(sync, "before_cursor_execute")
    def _before(conn: Any, *_: Any) -> None:
        conn.info.setdefault("roar_query_start", []).append(time.perf_counter())

    @event.listens_for(sync, "after_cursor_execute")
    def _after(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        started = conn.info["roar_query_start"].pop()
        operation = statement.lstrip().split(None, 1)[0].upper() if statement else "OTHER"
        metrics.DB_QUERY_SECONDS.labels(operation).observe(time.perf_counter() - started)
