"""Test-only fault injection ("chaos"): the state behind the /chaos routes and the random faults.

Off unless ``ROAR_CHAOS=true``, and refused with ``ROAR_PRODUCTION=true`` (roar.config). What it
can do, as podinfo's fault switches and ``--unready`` do and a little beyond (docs/chaos.md):

- random faults: a share of the API and page requests is delayed, a share answered with an error
  status (from ``ROAR_CHAOS_*`` at start, changed at run time by ``PUT /chaos/faults``);
- readiness and liveness switches: ``/readyz`` or ``/healthz`` answer 503;
- database faults: every query first waits (a slow database), or pool connections are checked
  out and held (pool exhaustion: later requests wait for the pool timeout, then answer 503).

The state is per process. With ``ROAR_WORKERS`` > 1 the ``ROAR_CHAOS_*`` settings apply to every
worker (each reads them at start), while a run-time switch reaches only the worker that answered
the ``PUT``: every answer of /chaos names its ``pid`` so a caller can tell.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from roar.config import Settings

if TYPE_CHECKING:
    from roar.db.async_core import AsyncConnection, AsyncEngine

__all__ = ["Chaos", "Faults", "install_slow_queries", "pool_capacity"]

log = logging.getLogger("roar.chaos")

#: The longest a run-time connection hold may last, in seconds (long enough for an alert's
#: ``for: 5m`` to fire, short enough that a forgotten hold ends by itself).
HOLD_MAX_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class Faults:
    """The random faults: each request is delayed with probability ``delay_rate``, then
    answered with ``error_status`` with probability ``error_rate`` (independent draws)."""

    error_rate: float = 0.0
    error_status: int = 500
    delay_rate: float = 0.0
    delay_seconds: float = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Faults:
        return cls(
            error_rate=settings.chaos_error_rate,
            error_status=settings.chaos_error_status,
            delay_rate=settings.chaos_delay_rate,
            delay_seconds=settings.chaos_delay_seconds,
        )


class Chaos:
    """One process's fault switches. Everything starts as the settings say; ``reset()`` goes
    back there."""

    def __init__(self, faults: Faults | None = None, *, rng: random.Random | None = None) -> None:
        self.initial = faults or Faults()
        self.faults = self.initial
        self.ready = True
        self.healthy = True
        self.slow_query_seconds = 0.0
        self._rng = rng or random.Random()
        self._held: list[AsyncConnection] = []
        self._held_until: float | None = None
        self._release_task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Chaos:
        return cls(Faults.from_settings(settings))

    # Random faults ---------------------------------------------------------------------------

    def draw(self) -> tuple[float, int | None]:
        """This request's fault: seconds to wait first (0 for none), then the status to answer
        with instead of serving it (None to serve it)."""
        f = self.faults
        delay = 0.0
        if f.delay_rate > 0 and f.delay_seconds > 0 and self._rng.random() < f.delay_rate:
            delay = f.delay_seconds
        error = None
        if f.error_rate > 0 and self._rng.random() < f.error_rate:
            error = f.error_status
        return delay, error

    # Database: holding pool connections -----------------------------------------------------

    @property
    def held_connections(self) -> int:
        return len(self._held)

    async def hold(self, engine: AsyncEngine, count: int, seconds: float) -> None:
        """Check ``count`` connections out of ``engine``'s pool and keep them for ``seconds``
        (replacing any earlier hold). If the pool cannot give them all within its timeout, none
        are kept and the pool's error is raised (the API answers it with 503)."""
        await self.release()
        held: list[AsyncConnection] = []
        try:
            for _ in range(count):
                conn = engine.connect()
                await conn.start()
                held.append(conn)
        except BaseException:
            await _close_all(held)
            raise
        self._held = held
        self._held_until = time.monotonic() + seconds
        self._release_task = asyncio.create_task(self._release_after(seconds))
        log.warning("chaos: holding %d database connections for %.1fs", count, seconds)

    async def _release_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await self._close_held()

    async def _close_held(self) -> None:
        held, self._held, self._held_until = self._held, [], None
        if held:
            await _close_all(held)
            log.warning("chaos: released %d held database connections", len(held))

    async def release(self) -> None:
        """Give held connections back to the pool now."""
        task, self._release_task = self._release_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._close_held()

    # All of it ------------------------------------------------------------------------------

    async def reset(self) -> None:
        """Back to the state the process started in (the ``ROAR_CHAOS_*`` settings)."""
        await self.release()
        self.faults = self.initial
        self.ready = True
        self.healthy = True
        self.slow_query_seconds = 0.0

    def snapshot(self) -> dict[str, Any]:
        left = 0.0
        if self._held_until is not None:
            left = max(0.0, round(self._held_until - time.monotonic(), 3))
        return {
            "pid": os.getpid(),
            "faults": dataclasses.asdict(self.faults),
            "readiness": {"ready": self.ready},
            "liveness": {"healthy": self.healthy},
            "database": {
                "slow_query_seconds": self.slow_query_seconds,
                "held_connections": self.held_connections,
                "hold_seconds_left": left,
            },
        }


async def _close_all(connections: list[AsyncConnection]) -> None:
    for conn in connections:
        try:
            await conn.close()
        except Exception as exc:  # a broken connection is dropped by the pool anyway
            log.debug("chaos: closing a held connection failed: %s", exc)


def pool_capacity(engine: AsyncEngine) -> int:
    """How many connections ``engine``'s pool can hand out at once."""
    pool: Any = engine.pool
    size = pool.size() if callable(getattr(pool, "size", None)) else 1
    overflow = getattr(pool, "_max_overflow", 0)
    return int(size) + max(int(overflow), 0)


def install_slow_queries(engine: AsyncEngine, chaos: Chaos) -> None:
    """Make each statement on ``engine`` first wait ``chaos.slow_query_seconds``.

    On MySQL/MariaDB the wait is ``SELECT SLEEP(s)`` on the same connection, so it is the
    database that is slow: the connection and a server thread stay busy (``SHOW PROCESSLIST``
    shows it) and the client waits on the network, as with a real slow query. SQLite has no
    server and no SLEEP, so the statement waits with ``asyncio.sleep`` inside the connection's
    greenlet: the connection stays checked out, the event loop keeps serving other requests.
    Either way ``roar_db_query_duration_seconds`` sees the wait (this listener runs after the
    timing one) and a readiness check slower than ``ROAR_DB_TIMEOUT`` turns the replica unready.
    """
    from sqlalchemy import event, util

    await_ = getattr(util, "await_", None) or util.await_only
    sleeps_on_server = engine.dialect.name in ("mysql", "mariadb")

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _slow(conn: Any, *_: Any) -> None:
        seconds = chaos.slow_query_seconds
        if seconds <= 0:
            return
        if sleeps_on_server:
            cursor = conn.connection.cursor()
            try:
                cursor.execute("SELECT SLEEP(%s)", (seconds,))
                cursor.fetchall()
            finally:
                cursor.close()
        else:
            await_(asyncio.sleep(seconds))
