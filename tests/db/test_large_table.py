"""A table whose first load outlasts ROAR_DB_QUERY_TIMEOUT, on MariaDB: a read waits for the
snapshot as long as the load makes progress (docs/configuration.md), and is answered.

bench/scale.py loads 1M agents, about 11 s, against the default timeout of 10 s; a bound on the
whole wait once turned that first read into a 503. This is the same path at a size CI affords:
250,000 agents load in about 1.5 s against a timeout of 0.5 s."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.mariadb import MariaDB
from support.roar import RoarServer, migrate

ROWS = 250_000
TIMEOUT = 0.5  # seconds: ROAR_DB_QUERY_TIMEOUT, a fraction of the load


@pytest.fixture(scope="module")
def large(mariadb: MariaDB) -> Iterator[dict[str, str]]:
    db = mariadb.own_database("large_table")
    env = {"ROAR_DATABASE_URL": db.url}
    migrate(env)
    # MariaDB's SEQUENCE engine: one statement, no round trip per row. The triggers log each.
    db.query(
        "INSERT INTO agents (NAME, SPECIES, SRVSTART) "
        f"SELECT CONCAT('Bulk ', seq), 'bulk', '2020-01-01' FROM seq_1_to_{ROWS}"
    )
    yield env
    mariadb.root_sql("DROP DATABASE large_table")


def test_first_reads_wait_for_a_load_longer_than_the_query_timeout(
    large: dict[str, str], tmp_path: Path
) -> None:
    env = large | {"ROAR_DB_QUERY_TIMEOUT": str(TIMEOUT)}
    server = RoarServer(env=env, log_path=tmp_path / "roar.log").start()
    try:

        async def first_reads() -> tuple[float, list[httpx.Response]]:
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                started = time.monotonic()
                answers = await asyncio.gather(
                    client.get("/api/v1/agents", params={"limit": 2}),
                    client.get(
                        "/api/v1/agents", params={"limit": 2, "offset": ROWS + 3}
                    ),  # the last two
                )
                return time.monotonic() - started, list(answers)

        waited, answers = asyncio.run(first_reads())
        assert [a.status_code for a in answers] == [200, 200], server.log_tail()
        first, last = (a.json() for a in answers)
        assert first["total"] == last["total"] == ROWS + 5  # and the five seeded agents
        assert [agent["name"] for agent in last["items"]] == [f"Bulk {ROWS - 1}", f"Bulk {ROWS}"]
        # Without this the test would not test the path: the load must outlast the timeout.
        assert waited > TIMEOUT, f"the load took only {waited:.2f} s: raise ROWS"
    finally:
        server.stop()
