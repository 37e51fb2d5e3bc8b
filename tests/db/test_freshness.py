"""The legacy list is served from a per-worker snapshot (roar.cache). The bound: a write
through a worker shows in that worker at once; a write through any other worker, replica or
SQL client shows everywhere within ROAR_CACHE_TTL seconds."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from support.mariadb import MariaDB
from support.roar import RoarServer, migrate

TTL = 1.0
SLACK = 0.4  # scheduling on a busy 2-core machine


@pytest.fixture()
def replicas(mariadb: MariaDB, tmp_path) -> Iterator[tuple[RoarServer, RoarServer]]:  # type: ignore[no-untyped-def]
    mariadb.reset_database()
    env = {"ROAR_DATABASE_URL": mariadb.url, "ROAR_CACHE_TTL": str(TTL)}
    migrate(env)
    a = RoarServer(env=env, log_path=tmp_path / "a.log", workers=2).start()
    b = RoarServer(env=env, log_path=tmp_path / "b.log", workers=2).start()
    yield a, b
    a.stop()
    b.stop()


def _names(server: RoarServer) -> set[str]:
    # A new connection per read, so reads land on every worker of the replica.
    return {a["NAME"] for a in httpx.get(f"{server.url}/roar/api/v1/registry").json()}


def _warm(*servers: RoarServer) -> None:
    for server in servers:
        for _ in range(8):
            _names(server)


def test_write_through_one_replica_shows_on_every_worker_within_the_bound(replicas) -> None:  # type: ignore[no-untyped-def]
    a, b = replicas
    _warm(a, b)
    created = httpx.post(
        f"{a.url}/api/v1/agents",
        json={"name": "Fresh", "species": "x", "service_start": "2000-01-01"},
    )
    assert created.status_code == 201
    written = time.monotonic()
    time.sleep(TTL + SLACK)
    for _ in range(10):
        assert "Fresh" in _names(a) and "Fresh" in _names(b)
    assert time.monotonic() - written < 30


def test_row_written_straight_into_the_database_shows_within_the_bound(replicas, mariadb) -> None:  # type: ignore[no-untyped-def]
    a, b = replicas
    _warm(a, b)
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
    time.sleep(TTL + SLACK)
    for _ in range(10):
        assert "Woody Woodpecker" in _names(a) and "Woody Woodpecker" in _names(b)


def test_a_worker_reads_its_own_writes_at_once(replicas) -> None:  # type: ignore[no-untyped-def]
    a, _ = replicas
    with httpx.Client(base_url=a.url) as same_connection:  # keep-alive: the same worker
        same_connection.get("/roar/api/v1/registry")
        assert (
            same_connection.post(
                "/roar/api/v2/registry",
                json={
                    "AGENT_NAME": "Instant",
                    "AGENT_SPECIES": "x",
                    "SERVICE_START": "2000-01-01",
                },
            ).text
            == "Item inserted"
        )
        names = {r["NAME"] for r in same_connection.get("/roar/api/v1/registry").json()}
        assert "Instant" in names
