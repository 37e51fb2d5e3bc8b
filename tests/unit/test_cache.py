"""The agents snapshot (roar.cache) on a real, migrated SQLite database: consistent across
workers that share a write counter, current within the poll for SQL writes, and kept current
by reading only the changed rows."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import multiprocessing
import random
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from roar import cache as cache_module
from roar.cache import AgentsCache, legacy_json
from roar.counter import BOARD_ENTRIES, LocalWriteCounter, SharedWriteCounter, shared_slots
from roar.db import agents as crud
from roar.db import changes, migrate
from roar.db.engine import DatabaseTimeout, create_engine
from roar.db.schema import agents


@pytest.fixture()
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'roar.db'}")
    await migrate.upgrade(engine)
    await migrate.seed(engine)
    yield engine
    await engine.dispose()


def _db_path(engine: AsyncEngine) -> str:
    return str(engine.url.database)


def _agent(name: str, **extra: Any) -> dict[str, Any]:
    return {"NAME": name, "SPECIES": "test", "SRVSTART": dt.date(2000, 1, 1), **extra}


async def _truth(engine: AsyncEngine) -> bytes:
    """The legacy list rendered straight from the table."""
    async with engine.connect() as conn:
        rows = (await conn.execute(select(agents).order_by(agents.c.id))).mappings().all()
    return legacy_json(rows)


async def _versions(engine: AsyncEngine) -> list[tuple[int, int]]:
    """Each agent's id and row version (the modern API's ETag), straight from the table."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(agents.c.id, agents.c.row_version).order_by(agents.c.id))
        return [(r[0], r[1]) for r in rows]


async def _create(engine: AsyncEngine, name: str) -> int:
    async with engine.begin() as conn:
        return int((await crud.create_agent(conn, values=_agent(name))).id)


async def test_a_write_through_one_worker_shows_in_every_worker_at_once(
    engine: AsyncEngine,
) -> None:
    counter = LocalWriteCounter()  # what the shared memory is to worker processes
    a, b = (AgentsCache(engine, ttl=60, counter=counter) for _ in range(2))
    await a.get(), await b.get()
    await _create(engine, "Fresh")
    a.invalidate()  # worker a answered the write
    assert b'"NAME":"Fresh"' in (await b.get()).legacy_list
    assert (await b.get()).count == 6


async def test_nothing_changed_means_no_query(engine: AsyncEngine) -> None:
    cache = AgentsCache(engine, ttl=60)
    await cache.get()
    statements: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    for _ in range(200):
        await cache.get()
    assert statements == []


async def test_concurrent_reads_share_one_load(engine: AsyncEngine) -> None:
    cache = AgentsCache(engine, ttl=60)
    snapshots = await asyncio.gather(*(cache.get() for _ in range(50)))
    assert cache.stats.full_loads == 1
    assert {s.legacy_list for s in snapshots} == {await _truth(engine)}


async def test_one_change_reads_one_row(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(agents.insert(), [_agent(f"A{i}") for i in range(3000)])
    cache = AgentsCache(engine, ttl=60)
    await cache.get()
    read = cache.stats.rows_read
    async with engine.begin() as conn:
        await crud.set_last_service_by_name(conn, name="A1500", service_last=dt.date(2001, 1, 1))
    cache.invalidate()
    snapshot = await cache.get()
    assert (cache.stats.rows_read - read, cache.stats.full_loads) == (1, 1)
    assert snapshot.legacy_list == await _truth(engine)


@pytest.mark.parametrize("batch", [1, 7, 300])  # one by one, and rebuilt in one pass
async def test_changes_of_every_kind_leave_the_list_as_the_table(
    engine: AsyncEngine, batch: int
) -> None:
    async with engine.begin() as conn:
        await conn.execute(agents.insert(), [_agent(f"A{i}") for i in range(500)])
    cache = AgentsCache(engine, ttl=60)
    await cache.get()
    rnd = random.Random(batch)
    db = sqlite3.connect(_db_path(engine), isolation_level=None)
    try:
        for _ in range(3):
            db.execute("BEGIN")
            for _ in range(batch):
                ids = [r[0] for r in db.execute("SELECT id FROM agents")]
                kind = rnd.choice(["insert", "update", "null", "delete", "move"])
                victim = rnd.choice(ids)
                if kind == "insert":
                    db.execute(
                        "INSERT INTO agents (NAME, SPECIES, SRVSTART) VALUES (?, 'x', ?)",
                        (f"N{rnd.random()}", "2001-01-01"),
                    )
                elif kind == "update":
                    db.execute(
                        "UPDATE agents SET NAME = ?, row_version = row_version + 1 WHERE id = ?",
                        ("Renamed", victim),
                    )
                elif kind == "null":
                    db.execute("UPDATE agents SET ADVNAME = NULL WHERE id = ?", (victim,))
                elif kind == "delete":
                    db.execute("DELETE FROM agents WHERE id = ?", (victim,))
                else:  # the id itself changes: both ids are logged
                    db.execute("UPDATE agents SET id = ? WHERE id = ?", (max(ids) + 10, victim))
            db.execute("COMMIT")
            cache.invalidate()
            snapshot = await cache.get()
            assert snapshot.legacy_list == await _truth(engine)
            versions = await _versions(engine)
            assert [(i, v) for i, _, v in snapshot.first(snapshot.count)] == versions
            assert [snapshot.find(i) for i, _ in versions] == [
                (f, v) for _, f, v in snapshot.first(snapshot.count)
            ]
            assert snapshot.find(max(i for i, _ in versions) + 1) is None
    finally:
        db.close()
    assert cache.stats.full_loads == 1


async def test_sql_writes_show_within_the_bound(engine: AsyncEngine) -> None:
    cache = AgentsCache(engine, ttl=60, poll_interval=0.1)
    watcher = asyncio.create_task(cache.watch_forever())
    try:
        await cache.get()
        db = sqlite3.connect(_db_path(engine))
        with db:  # lab 6: seven values by position, not through ROAR (and no counter bump)
            db.execute(
                "INSERT INTO agents VALUES "
                "(NULL, 'Woody', 'bird', '1959-05-22', '1979-04-15', 'Buzz', 'stare', 1)"
            )
            db.execute("DELETE FROM agents WHERE id = 1")
        db.close()
        await asyncio.sleep(0.25)
        snapshot = await cache.get()
        assert b'"NAME":"Woody"' in snapshot.legacy_list
        assert b"Road Runner" not in snapshot.legacy_list
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher  # it closes its connection


async def test_a_recreated_database_is_read_again(engine: AsyncEngine) -> None:
    await _create(engine, "Old")  # log entry 6
    cache = AgentsCache(engine, ttl=60)
    assert b'"NAME":"Old"' in (await cache.get()).legacy_list
    # `roar db reset`, then a different agent: the new log has an entry 6 too.
    await migrate.downgrade_to_base(engine)
    await migrate.upgrade(engine)
    await migrate.seed(engine)
    await _create(engine, "New")
    cache.invalidate()
    assert (await cache.get()).legacy_list == await _truth(engine)
    assert cache.stats.full_loads == 2


async def test_a_reader_behind_the_pruned_log_reads_everything(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_module, "_KEEP", 10)
    monkeypatch.setattr(cache_module, "_PRUNE_BATCH", 1000)
    behind = AgentsCache(engine, ttl=60, prune=False)
    pruner = AgentsCache(engine, ttl=60)
    await behind.get()
    for i in range(30):
        await _create(engine, f"P{i}")
    await pruner._prune_log()
    db = sqlite3.connect(_db_path(engine))
    kept = db.execute("SELECT COUNT(*), MIN(seq) FROM agent_changes").fetchone()
    db.close()
    assert kept == (10, 26)  # 5 seed entries + 30, the newest 10 kept
    behind.invalidate()
    assert (await behind.get()).legacy_list == await _truth(engine)
    assert behind.stats.full_loads == 2


def test_shared_counter_moves_for_every_worker() -> None:
    slots = shared_slots(multiprocessing.get_context("spawn"), 3)
    workers = [SharedWriteCounter(slots, i) for i in range(3)]
    seen = workers[0].value()
    workers[2].bump()
    assert workers[0].value() != seen
    assert workers[0].value() == workers[1].value() == workers[2].value()


def _note_in_worker(slots: Any, agent_id: int, version: int) -> None:
    SharedWriteCounter(slots, 1).board.note(agent_id, version)


def test_the_version_board_is_shared_by_forked_workers() -> None:
    """What one worker process's write stored is the other's guess; agents that share an entry
    take it over from each other, and none is mistaken for another."""
    ctx = multiprocessing.get_context("fork")
    slots = shared_slots(ctx, 2)
    here = SharedWriteCounter(slots, 0)
    seen = here.value()
    for agent_id, version in ((42, 7), (43, 2), (42 + BOARD_ENTRIES, 3)):
        worker = ctx.Process(target=_note_in_worker, args=(slots, agent_id, version))
        worker.start()
        worker.join(10)
        assert worker.exitcode == 0
    assert here.board.version(43) == 2
    assert here.board.version(42 + BOARD_ENTRIES) == 3
    assert here.board.version(42) is None  # its entry went to the later agent
    assert here.value() == seen  # notes are not writes to sync for: the bump is


def test_legacy_json_orders_keys_and_drops_nulls() -> None:
    row = {
        "ADVTECH": None,
        "NAME": "A",
        "id": 7,
        "SPECIES": "b",
        "SRVSTART": "2000-01-01",
        "SRVLAST": None,
        "ADVNAME": "C",
        "row_version": 3,
    }
    assert legacy_json([row]) == (
        b'[{"id":7,"NAME":"A","SPECIES":"b","SRVSTART":"2000-01-01","ADVNAME":"C"}]'
    )
    assert legacy_json([row], with_id=False).startswith(b'[{"NAME":"A"')


def _rows_arriving(monkeypatch: pytest.MonkeyPatch, delays: list[float]) -> None:
    """The table's rows come two at a time, each batch after its delay: how a large table's
    first read looks (1M agents take about 12 s on MariaDB), without loading a million rows.
    The rows are the database's own; only their arrival is slowed."""
    real = changes.stream_agents
    monkeypatch.setattr(cache_module, "_LOAD_BATCH", 2)

    async def slowly(conn: Any, *, batch: int) -> AsyncIterator[Any]:
        pace = iter(delays)
        async for rows in real(conn, batch=batch):
            await asyncio.sleep(next(pace, 0))
            yield rows

    monkeypatch.setattr(changes, "stream_agents", slowly)


async def test_a_first_read_longer_than_the_timeout_is_waited_for_while_rows_arrive(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(7):
        await _create(engine, f"Row {i}")
    _rows_arriving(monkeypatch, [0.2] * 6)  # 6 batches of 2: 1.2 s in all, 0.2 s apart
    cache = AgentsCache(engine, ttl=60, read_timeout=0.5)
    # One read loads; the other waits for it: both get the whole table.
    first, second = await asyncio.wait_for(asyncio.gather(cache.get(), cache.get()), 10)
    assert first.count == second.count == 12
    assert first.legacy_list == await _truth(engine)


async def test_a_read_whose_rows_stop_coming_is_a_timeout(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _rows_arriving(monkeypatch, [0.1, 1.5])  # the second batch later than the timeout
    cache = AgentsCache(engine, ttl=60, read_timeout=0.5)
    with pytest.raises(DatabaseTimeout, match=r"no answer within 0\.5 s"):
        await asyncio.wait_for(cache.get(), 10)
