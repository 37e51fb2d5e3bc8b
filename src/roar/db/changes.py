"""Queries on the change log (``agent_changes``, filled by triggers) that keep the agents snapshot
current at the cost of the changes: a constant-cost look at the newest entry, the entries after
a point, the changed agents by id, and pruning. Keyword-only, bound parameters only."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Date, Row, String, delete, func, or_, select, type_coerce

from roar.db.async_core import AsyncConnection, AsyncEngine
from roar.db.schema import AGENT_COLUMNS, agent_changes, agents

__all__ = [
    "Entry",
    "NewestProbe",
    "agents_by_id",
    "entries_from",
    "newest",
    "prune",
    "seqs_between",
    "stream_agents",
]

#: Ids per ``IN (...)`` list: well under every backend's limit on bound parameters.
_IDS_PER_QUERY = 500


@dataclass(frozen=True, slots=True)
class Entry:
    """One change: ``agent_id`` was inserted, updated or deleted; ``changed_at`` tells this
    database's entry ``seq`` apart from another database's (a recreated one) with the same seq."""

    seq: int
    agent_id: int
    changed_at: Any


_ENTRY = (agent_changes.c.seq, agent_changes.c.agent_id, agent_changes.c.changed_at)
#: The columns the legacy list shows, in its order. Dates as the database gives them: SQLite
#: stores ISO text (read as is, parsing a million dates cost seconds), MariaDB's driver gives
#: date objects; either is written the same way into JSON.
_LEGACY = [
    type_coerce(agents.c[name], String).label(name) if isinstance(agents.c[name].type, Date)
    else agents.c[name]
    for name in AGENT_COLUMNS
]  # fmt: skip
#: What the snapshot keeps of an agent: the legacy columns, then the row version (the ETag).
_SNAPSHOT = [*_LEGACY, agents.c.row_version]


async def newest(conn: AsyncConnection) -> Entry | None:
    """The newest entry (one primary-key lookup, whatever the sizes), None if the log is empty."""
    stmt = select(*_ENTRY).order_by(agent_changes.c.seq.desc()).limit(1)
    row = (await conn.execute(stmt)).first()
    return Entry(*row) if row else None


async def entries_from(
    conn: AsyncConnection, *, seq: int, also: Collection[int] = (), limit: int
) -> list[Entry]:
    """Entry ``seq`` and those after it, plus those of ``also`` (seqs not committed when last
    asked), in seq order; at most ``limit``. A range seek on the primary key: when nothing
    changed it reads one row, whatever the sizes."""
    start = agent_changes.c.seq >= seq
    where = or_(start, agent_changes.c.seq.in_(sorted(also))) if also else start
    stmt = select(*_ENTRY).where(where).order_by(agent_changes.c.seq).limit(limit)
    return [Entry(*row) for row in await conn.execute(stmt)]


async def seqs_between(conn: AsyncConnection, *, low: int, high: int) -> list[int]:
    """The seqs present in ``(low, high]``: a reader starting at ``high`` learns which lower
    ones are not committed yet."""
    column = agent_changes.c.seq
    stmt = select(column).where(column > low, column <= high).order_by(column)
    return list((await conn.scalars(stmt)).all())


async def agents_by_id(conn: AsyncConnection, ids: Collection[int]) -> list[Row[Any]]:
    """The legacy columns and row version of the agents with these ids that exist (a missing id
    was deleted)."""
    wanted = sorted(ids)
    found: list[Row[Any]] = []
    for start in range(0, len(wanted), _IDS_PER_QUERY):
        chunk = wanted[start : start + _IDS_PER_QUERY]
        found.extend(await conn.execute(select(*_SNAPSHOT).where(agents.c.id.in_(chunk))))
    return found


async def stream_agents(conn: AsyncConnection, *, batch: int) -> AsyncIterator[Sequence[Row[Any]]]:
    """The legacy columns and row version of every agent in id order, ``batch`` rows at a time,
    without holding them all (a server-side cursor on MariaDB)."""
    stmt = select(*_SNAPSHOT).order_by(agents.c.id).execution_options(yield_per=batch)
    result = await conn.stream(stmt)
    async for rows in result.partitions(batch):
        yield rows


async def prune(conn: AsyncConnection, *, keep: int, batch: int) -> bool:
    """Delete up to ``batch`` of the oldest entries, keeping the newest ``keep``. Returns whether
    more are left to delete. The caller commits."""
    low, high = (
        await conn.execute(select(func.min(agent_changes.c.seq), func.max(agent_changes.c.seq)))
    ).one()
    if low is None:
        return False
    first_kept = int(high) - keep + 1
    horizon = min(first_kept, int(low) + batch)
    if horizon <= int(low):
        return False
    await conn.execute(delete(agent_changes).where(agent_changes.c.seq < horizon))
    return horizon < first_kept


class NewestProbe:
    """The poll's look at the log, as cheap as it gets: on one connection held in autocommit
    (each look sees the newest commits), straight through the driver, without SQLAlchemy's
    per-statement machinery (a tenth of the CPU; the poll runs ten times a second per worker).
    Reopens its connection after a failure."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None
        self._driver: Any = None
        self._sqlite = engine.dialect.name == "sqlite"
        mark = "?" if self._sqlite else "%s"
        self._sql = f"SELECT seq FROM agent_changes WHERE seq >= {mark} ORDER BY seq LIMIT 2"

    async def moved_from(self, seq: int | None) -> bool:
        """Whether the log no longer ends at entry ``seq`` (None: empty): a newer entry, or that
        one gone (pruned, or the database recreated)."""
        try:
            if self._driver is None:
                await self._open()
            found = [row[0] for row in await self._fetch(seq or 0)]
        except Exception:
            await self.close()
            raise
        return found != ([seq] if seq else [])

    async def _open(self) -> None:
        conn = await self._engine.connect()
        try:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            self._driver = (await conn.get_raw_connection()).driver_connection
        except BaseException:
            await conn.close()
            raise
        self._conn = conn

    async def _fetch(self, seq: int) -> list[tuple[Any, ...]]:
        if self._sqlite:
            cursor = await self._driver.execute(self._sql, (seq,))
            try:
                return list(await cursor.fetchall())
            finally:
                await cursor.close()
        async with self._driver.cursor() as cursor:
            await cursor.execute(self._sql, (seq,))
            return list(await cursor.fetchall())

    async def close(self) -> None:
        conn, self._conn, self._driver = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):  # a broken connection is discarded all the same
                await conn.close()
