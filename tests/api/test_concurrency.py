"""Several worker processes behind one socket: concurrent writers lose and duplicate nothing, a
write is visible to every later read whichever worker answers it, and rows written straight into
the database with SQL show within the stated bound (0.25 s)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.roar import RoarServer

WORKERS = 4
#: The bound for changes made outside this server (docs/configuration.md).
BOUND = 0.25


@pytest.fixture(scope="module")
def server(backend, tmp_path_factory) -> Iterator[RoarServer]:  # type: ignore[no-untyped-def]
    log = tmp_path_factory.mktemp("logs") / f"roar-{backend.kind}-{WORKERS}w.log"
    server = RoarServer(env=backend.env, log_path=log, workers=WORKERS).start()
    yield server
    assert server.stop() == 0


def _sql(backend, statement: str, *args: object) -> None:  # type: ignore[no-untyped-def]
    """One statement straight into the backend's database, as a SQL client (lab 6) would."""
    if backend.mariadb:
        backend.mariadb.query(statement, *args)
        return
    with sqlite3.connect(Path(backend.env["ROAR_DATA_DIR"]) / "roar.db") as conn:
        conn.execute(statement.replace("%s", "?"), args)


#: A new connection per request (no keep-alive), so requests land on every worker.
_fresh = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=30)


def _listed(url: str) -> list[dict[str, object]]:
    answer = _fresh.get(f"{url}/roar/api/v1/registry")
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def _create_many(url: str, count: int) -> list[int]:
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        answers = await asyncio.gather(
            *(
                client.post(
                    "/api/v1/agents",
                    json={
                        "name": f"Agent {i:02d}",
                        "species": "swarm",
                        "service_start": "2020-01-01",
                    },
                )
                for i in range(count)
            )
        )
    assert all(r.status_code == 201 for r in answers), [r.text for r in answers[:3]]
    return [r.json()["id"] for r in answers]


def test_fifty_concurrent_creates_give_exactly_fifty_rows(backend, server) -> None:  # type: ignore[no-untyped-def]
    before = backend.count()
    ids = asyncio.run(_create_many(server.url, 50))
    assert len(set(ids)) == 50
    assert backend.count() == before + 50
    listed = httpx.get(
        f"{server.url}/api/v1/agents", params={"species": "swarm", "limit": 500}
    ).json()
    assert listed["total"] == 50
    assert sorted(a["name"] for a in listed["items"]) == [f"Agent {i:02d}" for i in range(50)]
    assert sum(a["SPECIES"] == "swarm" for a in _listed(server.url)) == 50


async def _lists(client: httpx.AsyncClient, url: str, count: int) -> list[list[dict[str, object]]]:
    """``count`` legacy lists read at once, each on its own new connection: the workers take
    the connections in parallel, so the reads land on several of them."""
    answers = await asyncio.gather(
        *(client.get(f"{url}/roar/api/v1/registry") for _ in range(count))
    )
    assert all(a.status_code == 200 for a in answers), answers[0].text
    return [a.json() for a in answers]


async def _tight_loop(url: str) -> tuple[int, list[str]]:
    """Create, change, delete through the API, each followed at once by reads on every worker;
    what every read should show and what it did not. Bounded: 15 rounds or 15 s."""
    stale: list[str] = []
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        rounds, deadline = 0, time.monotonic() + 15
        while rounds < 15 and time.monotonic() < deadline:
            name = f"Tight {rounds}"
            created = await client.post(
                f"{url}/api/v1/agents",
                json={"name": name, "species": "tight", "service_start": "2000-01-01"},
            )
            assert created.status_code == 201
            for listed in await _lists(client, url, 2 * WORKERS):
                if name not in {a["NAME"] for a in listed}:
                    stale.append(f"round {rounds}: created, not listed")
            page = (await client.get(f"{url}/api/v1/agents", params={"limit": 1})).json()
            if page["total"] != len(listed):
                stale.append(f"round {rounds}: modern total {page['total']} != {len(listed)}")
            changed = await client.put(
                f"{url}/roar/api/v3/registry/tight/{name}",
                json={"AGENT_NAME": name, "SERVICE_LAST": "2001-02-03"},
            )
            assert changed.status_code == 200
            for listed in await _lists(client, url, 2 * WORKERS):
                mine = [a.get("SRVLAST") for a in listed if a["NAME"] == name]
                if mine != ["2001-02-03"]:
                    stale.append(f"round {rounds}: updated, listed with SRVLAST {mine}")
            deleted = await client.delete(f"{url}/roar/api/v3/registry/tight/{name}")
            assert deleted.status_code == 200
            for listed in await _lists(client, url, 2 * WORKERS):
                if name in {a["NAME"] for a in listed}:
                    stale.append(f"round {rounds}: deleted, still listed")
            rounds += 1
    return rounds, stale


def test_every_read_sees_the_writes_answered_before_it(server) -> None:  # type: ignore[no-untyped-def]
    rounds, stale = asyncio.run(_tight_loop(server.url))
    assert stale == []
    assert rounds >= 5, f"only {rounds} rounds in 15 s"


def test_rows_written_with_sql_show_within_the_bound(backend, server) -> None:  # type: ignore[no-untyped-def]
    url = server.url
    _sql(
        backend,
        "INSERT INTO agents (NAME, SPECIES, SRVSTART) VALUES (%s, %s, %s)",
        "Straight",
        "sql",
        "1990-01-01",
    )
    time.sleep(BOUND)
    for _ in range(2 * WORKERS):
        assert "Straight" in {a["NAME"] for a in _listed(url)}
    _sql(backend, "UPDATE agents SET ADVNAME = %s WHERE NAME = %s", "Nemesis", "Straight")
    time.sleep(BOUND)
    for _ in range(2 * WORKERS):
        assert [a.get("ADVNAME") for a in _listed(url) if a["NAME"] == "Straight"] == ["Nemesis"]
    _sql(backend, "DELETE FROM agents WHERE NAME = %s", "Straight")
    time.sleep(BOUND)
    for _ in range(2 * WORKERS):
        assert "Straight" not in {a["NAME"] for a in _listed(url)}
