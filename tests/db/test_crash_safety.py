"""Crash safety on MariaDB. A worker killed with SIGKILL in the middle of a burst of writes, and
MariaDB restarted in the middle of a load run: no acknowledged write is lost, no row is partial,
the outage is answered 503 (never 500, never a hang), and ROAR recovers on its own.

A write may commit and lose its answer (the worker died, the connection dropped): such a row is
allowed, but only as a complete copy of a body that was sent, and only once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from roar.api.schemas import LEGACY_FIELDS
from roar.db.schema import SEED_AGENTS
from support.mariadb import MariaDB
from support.procs import worker_pids
from support.roar import RoarServer, migrate
from support.traffic import run_concurrently
from support.wait import eventually

SPECIES = "crashtest"
#: roar.server's _MIN_WORKER_LIFETIME: a worker that dies sooner is "failing at start" and
#: stops the whole server, so the kill waits until the workers are older than this.
MIN_WORKER_LIFETIME = 5.0
DB_TIMEOUT = 1.0
#: Scheduling slack on a busy 2-core machine; a hang would be the pool's wait (10 s) or more.
SLACK = 3.0

_TO_LEGACY = {field: key for key, field in LEGACY_FIELDS.items()}


@dataclass
class Call:
    """One request of a load run and what came back."""

    kind: str
    started: float
    body: dict[str, Any] | None = None
    seconds: float = 0.0
    status: int | None = None
    error: str | None = None
    content_type: str = ""
    text: str = ""
    id: int | None = None

    @property
    def acknowledged(self) -> bool:
        return self.body is not None and self.status is not None and 200 <= self.status < 300


def _body(i: int) -> dict[str, Any]:
    """A distinct agent for every ``i``; every column set, so a partial row shows."""
    start = dt.date(1990, 1, 1) + dt.timedelta(days=i)
    return {
        "name": f"crash-{i:05d}",
        "species": SPECIES,
        "service_start": start.isoformat(),
        "service_last": (start + dt.timedelta(days=1 + i % 400)).isoformat(),
        "adversary_name": f"adversary {i}",
        "adversary_tech": f"tech {i}:" + "x" * (i % 300),
    }


async def _create(client: httpx.AsyncClient, i: int, calls: list[Call]) -> Call:
    """POST a new agent, alternately through the modern API and the legacy v2/v3 routes."""
    body = _body(i)
    kind = ("modern", "legacy-v2", "modern", "legacy-v3")[i % 4]
    if kind == "modern":
        path, payload = "/api/v1/agents", body
    else:
        path = f"/roar/api/{kind[-2:]}/registry"
        payload = {_TO_LEGACY[field]: value for field, value in body.items()}
    return await _request(client, Call(kind, time.monotonic(), body), calls, "POST", path, payload)


async def _request(
    client: httpx.AsyncClient,
    call: Call,
    calls: list[Call],
    method: str,
    path: str,
    payload: dict[str, Any] | None = None,
) -> Call:
    calls.append(call)
    try:
        answer = await client.request(method, path, json=payload)
    except httpx.TransportError as exc:
        call.error = f"{type(exc).__name__}: {exc}"
    else:
        call.status = answer.status_code
        call.content_type = answer.headers.get("content-type", "")
        call.text = answer.text
        if call.kind == "modern" and answer.status_code == 201:
            call.id = answer.json()["id"]
    call.seconds = time.monotonic() - call.started
    return call


def _table(db: MariaDB) -> list[tuple[Any, ...]]:
    """Every row but the seed rows (ids 1 to 5): only the test writes to its database."""
    return db.query(
        "SELECT id, NAME, SPECIES, SRVSTART, SRVLAST, ADVNAME, ADVTECH FROM agents WHERE id > %s",
        len(SEED_AGENTS),
    )


def _as_row(body: dict[str, Any]) -> tuple[Any, ...]:
    return (
        body["name"],
        body["species"],
        dt.date.fromisoformat(body["service_start"]),
        dt.date.fromisoformat(body["service_last"]),
        body["adversary_name"],
        body["adversary_tech"],
    )


def _assert_table_holds(db: MariaDB, calls: list[Call]) -> None:
    """Every acknowledged write is in the table, exactly as sent; every row is a complete copy
    of one body that was sent, and no body was stored twice."""
    sent = {call.body["name"]: call for call in calls if call.body is not None}
    stored: Counter[str] = Counter()
    for agent_id, *fields in _table(db):
        call = sent.get(fields[0])
        assert call is not None, f"row {agent_id} ({fields[0]!r}) matches no body that was sent"
        assert tuple(fields) == _as_row(call.body or {}), (
            f"row {agent_id} is not the body sent for it: {fields} != {call.body}"
        )
        assert call.id in (None, agent_id), f"{call.body} acknowledged as {call.id}, not {agent_id}"
        stored[fields[0]] += 1
    twice = sorted(name for name, count in stored.items() if count > 1)
    assert not twice, f"bodies stored more than once: {twice[:5]}"
    lost = [call for call in calls if call.acknowledged and not stored[call.body["name"]]]  # type: ignore[index]
    assert not lost, f"{len(lost)} acknowledged writes are not in the table, e.g. {lost[:3]}"


# A worker killed mid-burst --------------------------------------------------------------------


@pytest.fixture(scope="module")
def crash_db(mariadb: MariaDB) -> MariaDB:
    """Its own database on the session's server: the rows checked are this module's only."""
    db = mariadb.own_database("crash_safety")
    migrate({"ROAR_DATABASE_URL": db.url})
    return db


async def _burst_with_kill(server: RoarServer, kill_at: float) -> tuple[list[Call], int, float]:
    """Creates with 12 in flight from a second before ``kill_at`` until 30 more were
    acknowledged after it (a busy machine is slow; 15 s at most); at ``kill_at`` one worker gets
    SIGKILL. Returns the calls, the victim and when it died."""
    calls: list[Call] = []
    stop = asyncio.Event()
    victim: list[tuple[int, float]] = []
    await asyncio.sleep(max(0.0, kill_at - 1.0 - time.monotonic()))
    limits = httpx.Limits(max_connections=12)
    async with httpx.AsyncClient(base_url=server.url, timeout=10, limits=limits) as client:
        after_kill = 0

        async def create(i: int) -> None:
            nonlocal after_kill
            call = await _create(client, i, calls)
            if victim and call.started > victim[0][1] + 0.5 and call.acknowledged:
                after_kill += 1
                if after_kill >= 30:
                    stop.set()

        async def kill() -> None:
            await asyncio.sleep(max(0.0, kill_at - time.monotonic()))
            pid = worker_pids(server.proc.pid)[0]  # type: ignore[union-attr]
            os.kill(pid, signal.SIGKILL)
            victim.append((pid, time.monotonic()))

        await asyncio.gather(
            run_concurrently(create, concurrency=12, requests=5000, seconds=15, stop=stop),
            kill(),
        )
    return calls, *victim[0]


def test_sigkill_of_a_worker_mid_burst_loses_no_acknowledged_write(
    crash_db: MariaDB, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    server = RoarServer(
        env={"ROAR_DATABASE_URL": crash_db.url}, log_path=tmp_path / "roar.log", workers=2
    ).start()
    try:
        # The supervisor noted its workers' start before the server first answered.
        kill_at = time.monotonic() + MIN_WORKER_LIFETIME + 0.5
        calls, victim, killed = asyncio.run(_burst_with_kill(server, kill_at))

        answered = [c for c in calls if c.status is not None]
        assert all(c.status in (200, 201) for c in answered), {
            (c.status, c.text[:200]) for c in answered if c.status not in (200, 201)
        }
        failed = [c for c in calls if c.error]
        # Only requests in flight on the killed worker may fail; later ones reach the other.
        assert len(failed) <= 12, [c.error for c in failed[:5]]
        assert all(c.started < killed + 0.5 for c in failed), [c.error for c in failed]
        assert sum(c.started > killed + 0.5 and c.acknowledged for c in calls) >= 30
        assert sum(c.started < killed and c.acknowledged for c in calls) >= 5

        # The supervisor replaces the worker, and stays up.
        def replaced() -> list[int]:
            workers = worker_pids(server.proc.pid)  # type: ignore[union-attr]
            return workers if len(workers) == 2 and victim not in workers else []

        eventually(replaced, what=f"a worker in place of {victim}", within=30, every=0.2)
        exited = f"worker {victim} exited with -9; starting another"
        assert exited in server.log_path.read_text()
        # ... which serves: a worker completed its startup after that.
        eventually(
            lambda: "Application startup complete" in server.log_path.read_text().split(exited)[1],
            what="the new worker's startup",
            within=30,
            every=0.2,
        )
        for _ in range(10):  # fresh connections, spread by the kernel over both workers
            assert httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200
        assert server.proc.poll() is None  # type: ignore[union-attr]

        _assert_table_holds(crash_db, calls)
    finally:
        code = server.stop()
    assert code == 0, server.log_tail()


# MariaDB restarted mid-load -------------------------------------------------------------------


@pytest.fixture()
def private_db() -> Iterator[MariaDB]:
    """Its own server (about 3 s to install): stopping it must not disturb other tests."""
    with MariaDB.temporary() as server:
        yield server


_READS = {
    "modern-list": "/api/v1/agents?limit=5",
    "modern-get": "/api/v1/agents/1",
    "legacy-list": "/roar/api/v1/registry",
}


async def _load_with_restart(
    server: RoarServer, db: MariaDB, outage: float, recovered: int
) -> tuple[list[Call], float, float, float]:
    """Reads and writes with 8 in flight; MariaDB stops 1 s in, for ``outage`` seconds, and the
    load goes on until ``recovered`` requests started a second after it is back have been
    answered (30 s in all at most). Returns the calls, when MariaDB had stopped, when its start
    began and when it accepted connections again."""
    calls: list[Call] = []
    stop = asyncio.Event()
    times: list[float] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        after = 0

        async def step(i: int) -> None:
            nonlocal after
            if i % 2:
                call = await _create(client, i // 2, calls)
            else:
                kind = sorted(_READS)[i // 2 % len(_READS)]
                call = await _request(
                    client, Call(kind, time.monotonic()), calls, "GET", _READS[kind]
                )
            if len(times) == 3 and call.started >= times[2] + 1.0:
                after += 1
                if after >= recovered:
                    stop.set()

        async def restart() -> None:
            await asyncio.sleep(1.0)
            await asyncio.to_thread(db.stop)
            times.append(time.monotonic())
            await asyncio.sleep(outage)
            times.append(time.monotonic())  # answers may succeed from here on
            await asyncio.to_thread(db.start)
            times.append(time.monotonic())  # MariaDB accepts connections

        await asyncio.gather(
            run_concurrently(step, concurrency=8, requests=20_000, seconds=30, stop=stop),
            restart(),
        )
    return calls, times[0], times[1], times[2]


def test_mariadb_restart_mid_load_answers_503_then_recovers(private_db: MariaDB, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {"ROAR_DATABASE_URL": private_db.url, "ROAR_DB_TIMEOUT": str(DB_TIMEOUT)}
    migrate(env)
    server = RoarServer(env=env, log_path=tmp_path / "roar.log", workers=2).start()
    try:
        calls, down, starting, up = asyncio.run(_load_with_restart(server, private_db, 2.5, 40))

        assert not [c for c in calls if c.error], {c.error for c in calls if c.error}
        assert {c.status for c in calls} <= {200, 201, 503}, Counter(c.status for c in calls)
        slowest = max(calls, key=lambda c: c.seconds)
        assert slowest.seconds <= DB_TIMEOUT + SLACK, f"{slowest.kind} took {slowest.seconds:.1f} s"

        # The outage: once the legacy list's snapshot has expired (ROAR_CACHE_TTL, 1 s),
        # every answer is a 503 in the API's own error form.
        during = [c for c in calls if down + 1.3 <= c.started and c.started + c.seconds < starting]
        assert len(during) >= 5
        assert all(c.status == 503 for c in during), Counter((c.kind, c.status) for c in during)
        for call in (c for c in calls if c.status == 503):
            if call.kind.startswith("legacy"):
                assert call.content_type.startswith("text/plain"), call.content_type
                assert call.text == "Error: The database is unavailable; try again shortly."
            else:
                assert call.content_type == "application/problem+json", call.content_type
                assert "database is unavailable" in call.text

        # Recovery without a restart of ROAR: everything started a second after MariaDB
        # is back succeeds (measured: the first answers succeed within 0.3 s).
        after = [c for c in calls if c.started >= up + 1.0]
        assert len(after) >= 40
        assert all(c.status in (200, 201) for c in after), Counter(c.status for c in after)
        assert {c.kind for c in after} >= {"modern", "legacy-v2", "legacy-v3", *_READS}

        _assert_table_holds(private_db, calls)
        assert (
            f"database unavailable: mysql+aiomysql://admin:***@127.0.0.1:{private_db.port}/registry"
            in server.log_path.read_text()
        )
    finally:
        code = server.stop()
    assert code == 0, server.log_tail()
