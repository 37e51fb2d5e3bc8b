"""What a write costs MariaDB, counted by MariaDB itself: the statements a connection sent
(``SHOW SESSION STATUS LIKE 'Questions'``), COMMIT and ROLLBACK included. The requests' engine
is in autocommit (roar.db.engine.Database), so a write is one statement, committed when it
returns, and nothing is sent when its connection goes back to the pool."""

from __future__ import annotations

import asyncio
import datetime as dt
import multiprocessing
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from roar.cache import AgentsCache
from roar.counter import SharedWriteCounter, shared_slots
from roar.db import agents as crud
from roar.db.engine import Database, create_engine
from support.mariadb import MariaDB
from support.roar import RoarServer, migrate
from support.wait import eventually

VALUES = {
    "NAME": "Counted",
    "SPECIES": "roundtrip",
    "SRVSTART": dt.date(2001, 2, 3),
    "SRVLAST": None,
    "ADVNAME": None,
    "ADVTECH": None,
}


@pytest.fixture(scope="module")
def url(mariadb: MariaDB) -> str:
    mariadb.reset_database()
    migrate({"ROAR_DATABASE_URL": mariadb.url})
    return mariadb.url.replace("mysql://", "mysql+aiomysql://")


async def _questions(db: Database) -> int:
    async with db.connect() as conn:
        return int((await conn.exec_driver_sql("SHOW SESSION STATUS LIKE 'Questions'")).one()[1])


def _statements(url: str, write: Callable[[Database], Awaitable[Any]]) -> tuple[int, Any]:
    """How many statements ``write`` sent, from its connection's checkout to its return to the
    pool, and what it returned. One pooled connection, so every step uses the same session."""

    async def run() -> tuple[int, Any]:
        engine = create_engine(url, pool_size=1, autocommit=True)
        db = Database(engine, timeout=5)
        try:
            idle = await _questions(db)
            idle = await _questions(db) - idle  # what one look costs by itself
            before = await _questions(db)
            result = await write(db)
            return await _questions(db) - before - idle, result
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_a_create_is_one_statement_and_committed_when_it_returns(
    url: str, mariadb: MariaDB
) -> None:
    seen_elsewhere: list[tuple] = []

    async def create(db: Database) -> Any:
        async with db.connect() as conn:
            row = await crud.create_agent(conn, values=VALUES)
            # Before this connection is even released: another session already reads it.
            seen_elsewhere.extend(mariadb.query("SELECT NAME FROM agents WHERE id = %s", row.id))
        return row

    sent, row = _statements(url, create)
    assert sent == 1, "INSERT ... RETURNING alone: no BEGIN, COMMIT or ROLLBACK"
    assert seen_elsewhere == [("Counted",)]
    assert (row.NAME, row.row_version) == ("Counted", 1)


def _update(agent_id: int, **versions: int | None) -> Callable[[Database], Awaitable[Any]]:
    async def update(db: Database) -> Any:
        async with db.connect() as conn:
            return dict(
                await crud.update_agent(
                    conn,
                    agent_id=agent_id,
                    values={**VALUES, "ADVTECH": f"v{versions}"},
                    expected_version=versions.get("expected"),
                    version_hint=versions.get("hint"),
                )
            )

    return update


def _stored(mariadb: MariaDB, agent_id: int) -> tuple:
    return mariadb.query("SELECT ADVTECH, row_version FROM agents WHERE id = %s", agent_id)[0]


def test_an_update_with_a_known_version_is_one_statement_and_answers_the_stored_row(
    url: str, mariadb: MariaDB
) -> None:
    mariadb.query("INSERT INTO agents (NAME, SPECIES, SRVSTART) VALUES ('Up', 'x', '2000-01-01')")
    agent_id = int(mariadb.query("SELECT MAX(id) FROM agents")[0][0])
    version = int(_stored(mariadb, agent_id)[1])

    sent, stored = _statements(url, _update(agent_id, hint=version))
    assert sent == 1
    assert (stored["ADVTECH"], stored["row_version"]) == _stored(mariadb, agent_id)
    assert stored["row_version"] == version + 1

    sent, stored = _statements(url, _update(agent_id, expected=version + 1))  # If-Match
    assert sent == 1
    assert (stored["ADVTECH"], stored["row_version"]) == _stored(mariadb, agent_id)


def test_an_update_with_a_stale_hint_still_answers_the_stored_row(
    url: str, mariadb: MariaDB
) -> None:
    mariadb.query("INSERT INTO agents (NAME, SPECIES, SRVSTART) VALUES ('Old', 'x', '2000-01-01')")
    agent_id = int(mariadb.query("SELECT MAX(id) FROM agents")[0][0])
    mariadb.query("UPDATE agents SET row_version = row_version + 5 WHERE id = %s", agent_id)
    stale = int(_stored(mariadb, agent_id)[1]) - 5

    sent, stored = _statements(url, _update(agent_id, hint=stale))
    # The guarded update that found another version, the update, and the read of the row.
    assert sent == 3
    assert (stored["ADVTECH"], stored["row_version"]) == _stored(mariadb, agent_id)
    assert stored["row_version"] == stale + 6

    sent, stored = _statements(url, _update(agent_id))  # nothing known: update, then read
    assert sent == 2
    assert (stored["ADVTECH"], stored["row_version"]) == _stored(mariadb, agent_id)


def test_a_put_guesses_from_a_write_through_another_worker(url: str, mariadb: MariaDB) -> None:
    """Worker b has not synced since worker a's write, so its snapshot holds the version before
    it; the server's version board (roar.counter) holds the one a's write stored, and b's PUT is
    one statement, not three."""
    mariadb.query("INSERT INTO agents (NAME, SPECIES, SRVSTART) VALUES ('Two', 'x', '2000-01-01')")
    agent_id = int(mariadb.query("SELECT MAX(id) FROM agents")[0][0])
    slots = shared_slots(multiprocessing.get_context("fork"), 2)

    async def two_workers() -> tuple[AgentsCache, ...]:
        """Two workers' snapshots, read once; no sync after (their engine is gone)."""
        engine = create_engine(url)
        try:
            workers = tuple(
                AgentsCache(engine, ttl=3600, counter=SharedWriteCounter(slots, i)) for i in (0, 1)
            )
            for worker in workers:
                await worker.get()
            return workers
        finally:
            await engine.dispose()

    a, b = asyncio.run(two_workers())
    version = int(_stored(mariadb, agent_id)[1])
    assert b.version_hint(agent_id) == version

    sent, stored = _statements(url, _update(agent_id, hint=a.version_hint(agent_id)))
    assert (sent, stored["row_version"]) == (1, version + 1)
    a.invalidate((agent_id, stored["row_version"]))  # as the route does once it has the answer

    sent, stored = _statements(url, _update(agent_id, hint=b.version_hint(agent_id)))
    assert (sent, stored["row_version"]) == (1, version + 2)
    assert (stored["ADVTECH"], stored["row_version"]) == _stored(mariadb, agent_id)


def test_a_delete_is_one_statement(url: str, mariadb: MariaDB) -> None:
    mariadb.query("INSERT INTO agents (NAME, SPECIES, SRVSTART) VALUES ('Gone', 'x', '2000-01-01')")
    agent_id = int(mariadb.query("SELECT MAX(id) FROM agents")[0][0])

    async def delete(db: Database) -> None:
        async with db.connect() as conn:
            await crud.delete_agent(conn, agent_id=agent_id, expected_version=None)

    sent, _ = _statements(url, delete)
    assert sent == 1
    assert mariadb.query("SELECT id FROM agents WHERE id = %s", agent_id) == []


def test_puts_in_a_row_through_one_worker_are_one_statement_each(
    url: str, mariadb: MariaDB, tmp_path: Path
) -> None:
    """A PUT guesses the version from what its worker saw last. The snapshot follows the change
    log only every poll (10 s here), so after its own write the worker guesses from what that
    write stored: each PUT of an agent edited again and again (a form saved twice, a script) is
    one UPDATE, with no read of the row and no missed guess. Counted by MariaDB for the whole
    server, once the start-up's reads are done (nothing else runs until the next poll)."""
    env = {"ROAR_DATABASE_URL": mariadb.url, "ROAR_CACHE_POLL_INTERVAL": "10"}
    server = RoarServer(env=env, log_path=tmp_path / "roar.log").start()
    try:
        api = f"{server.url}/api/v1/agents"
        body = {"name": "Edited", "species": "roundtrip", "service_start": "2001-02-03"}
        agent_id = httpx.post(api, json=body).json()["id"]
        before = _settled(mariadb)
        versions = []
        for n in range(4):
            r = httpx.put(f"{api}/{agent_id}", json=body | {"adversary_tech": f"v{n}"})
            versions.append(r.json()["version"])
        assert versions == [2, 3, 4, 5]
        sent = {name: count - before[name] for name, count in _counters(mariadb).items()}
        assert sent == {"Com_update": 4, "Com_select": 0}
        assert _stored(mariadb, agent_id) == ("v3", 5)
    finally:
        server.stop()


def _counters(mariadb: MariaDB) -> dict[str, int]:
    rows = mariadb.query("SHOW GLOBAL STATUS WHERE Variable_name IN ('Com_select', 'Com_update')")
    return {name: int(value) for name, value in rows}


def _settled(mariadb: MariaDB) -> dict[str, int]:
    """The counters once a server's start-up reads (its first load, the log's pruning) are done:
    unchanged over 0.2 s (at most 5 s)."""
    seen: list[dict[str, int]] = []

    def unchanged() -> dict[str, int] | None:
        seen.append(_counters(mariadb))
        return seen[-1] if len(seen) > 1 and seen[-1] == seen[-2] else None

    return eventually(unchanged, what="MariaDB's counters to stay still", within=5, every=0.2)
