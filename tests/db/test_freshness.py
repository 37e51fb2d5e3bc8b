"""Two replicas of two workers each on one MariaDB (docs/configuration.md, "Freshness"): a write
through a replica is visible to its every later read at once, whichever worker answers; writes
through the other replica, and rows written straight into the database with SQL, show
everywhere within 0.25 s, including a transaction that commits after a later one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from support.mariadb import MariaDB
from support.roar import RoarServer, migrate

WORKERS = 2
BOUND = 0.25  # ROAR_CACHE_POLL_INTERVAL (0.1 s) plus one sync, with room to spare


@pytest.fixture(scope="module")
def replicas(mariadb: MariaDB, tmp_path_factory) -> Iterator[tuple[RoarServer, RoarServer]]:  # type: ignore[no-untyped-def]
    mariadb.reset_database()
    env = {"ROAR_DATABASE_URL": mariadb.url}
    migrate(env)
    logs = tmp_path_factory.mktemp("freshness")
    a = RoarServer(env=env, log_path=logs / "a.log", workers=WORKERS).start()
    b = RoarServer(env=env, log_path=logs / "b.log", workers=WORKERS).start()
    yield a, b
    a.stop()
    b.stop()


async def _read_all(*servers: RoarServer) -> list[set[str]]:
    """The names each of several reads lists, per server, all at once on new connections (so
    they land on every worker)."""
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        answers = await asyncio.gather(
            *(
                client.get(f"{server.url}/roar/api/v1/registry")
                for server in servers
                for _ in range(2 * WORKERS)
            )
        )
    return [{agent["NAME"] for agent in answer.json()} for answer in answers]


def _shown_everywhere(name: str, *servers: RoarServer) -> bool:
    return all(name in names for names in asyncio.run(_read_all(*servers)))


def test_a_write_is_read_back_at_once_and_by_the_other_replica_within_the_bound(
    replicas: tuple[RoarServer, RoarServer],
) -> None:
    a, b = replicas
    created = httpx.post(
        f"{a.url}/api/v1/agents",
        json={"name": "Fresh", "species": "x", "service_start": "2000-01-01"},
    )
    assert created.status_code == 201
    assert _shown_everywhere("Fresh", a)  # same server: no wait at all
    time.sleep(BOUND)
    assert _shown_everywhere("Fresh", a, b)


def test_a_row_written_straight_into_the_database_shows_within_the_bound(
    replicas: tuple[RoarServer, RoarServer], mariadb: MariaDB
) -> None:
    # Lab 6's script: seven values by position, straight into MariaDB, not through ROAR.
    mariadb.query(
        "INSERT INTO agents VALUES (NULL, %s, %s, %s, %s, %s, %s)",
        "Woody Woodpecker",
        "bird",
        "1959-05-22",
        "1979-04-15",
        "Buzz Buzzard",
        "menacing stare",
    )
    time.sleep(BOUND)
    assert _shown_everywhere("Woody Woodpecker", *replicas)


def test_a_transaction_that_commits_after_a_later_one_is_not_missed(
    replicas: tuple[RoarServer, RoarServer], mariadb: MariaDB
) -> None:
    """MariaDB numbers the change log when a transaction writes, not when it commits: here the
    log's entry for "Late" commits after the one for "Early", which the replicas read first."""
    a, b = replicas
    slow = mariadb.connect()
    try:
        with slow.cursor() as cursor:
            cursor.execute(
                "INSERT INTO agents (NAME, SPECIES, SRVSTART) VALUES ('Late', 'x', '2000-01-01')"
            )
        early = httpx.post(
            f"{a.url}/api/v1/agents",
            json={"name": "Early", "species": "x", "service_start": "2000-01-01"},
        )
        assert early.status_code == 201
        time.sleep(BOUND)
        assert _shown_everywhere("Early", a, b)
        slow.commit()
    finally:
        slow.close()
    time.sleep(BOUND)
    assert _shown_everywhere("Late", a, b)
