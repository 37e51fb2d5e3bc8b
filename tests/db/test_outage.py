"""MariaDB stops: readiness and the APIs answer 503 (no stack traces) and the log names the
database; MariaDB returns: everything recovers without a restart of ROAR, nothing lost."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pymysql
import pytest

from roar.db.engine import IDLE_BEFORE_PING
from support.agents import WOODY
from support.mariadb import MariaDB
from support.roar import RoarServer, migrate
from support.tcpproxy import TcpProxy
from support.wait import eventually


@pytest.fixture()
def outage_db() -> Iterator[MariaDB]:
    with MariaDB.temporary() as server:  # its own server: stopping it must not hurt others
        yield server


def test_database_outage_and_recovery(outage_db: MariaDB, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {"ROAR_DATABASE_URL": outage_db.url, "ROAR_CACHE_TTL": "0.5"}
    migrate(env)
    server = RoarServer(env=env, log_path=tmp_path / "roar.log", workers=2).start()
    try:
        created = httpx.post(f"{server.url}/api/v1/agents", json=WOODY)
        assert created.status_code == 201
        before = httpx.get(f"{server.url}/roar/api/v1/registry").content

        outage_db.stop()
        time.sleep(0.6)  # past the cache's freshness bound
        ready = httpx.get(f"{server.url}/readyz")
        assert ready.status_code == 503
        assert "mysql" in ready.json()["database"]
        assert httpx.get(f"{server.url}/healthz").status_code == 200  # liveness unaffected

        answers = _touch_every_database_route(server)
        _assert_unavailable(answers)
        r = answers[-1]
        assert r.headers["retry-after"]
        assert "database unavailable: mysql+aiomysql://admin:***@127.0.0.1" in server.log_tail(
            100000
        )

        outage_db.start()
        eventually(
            lambda: httpx.get(f"{server.url}/readyz").status_code == 200,
            what="readiness after MariaDB returned",
            within=30,
            every=0.25,
        )
        # Every worker recovers: several fresh connections all get answers.
        for _ in range(10):
            assert httpx.get(f"{server.url}/roar/api/v1/registry").content == before
        assert (
            httpx.post(
                f"{server.url}/api/v1/agents",
                json={"name": "After", "species": "x", "service_start": "2000-01-01"},
            ).status_code
            == 201
        )
        assert outage_db.query("SELECT COUNT(*) FROM agents")[0][0] == 7  # 5 + Woody + After
    finally:
        assert server.stop() == 0


def test_frozen_database_answers_503_within_the_deadline(
    outage_db: MariaDB, tmp_path: Path
) -> None:
    """A server that accepts connections but never answers (SIGSTOP: a hung host, a stalled
    disk) gives 503s after ROAR_DB_QUERY_TIMEOUT, not requests that hang; then it recovers."""
    env = {
        "ROAR_DATABASE_URL": outage_db.url,
        "ROAR_CACHE_TTL": "0.5",
        "ROAR_DB_QUERY_TIMEOUT": "1",
    }
    migrate(env)
    server = RoarServer(env=env, log_path=tmp_path / "roar.log", workers=2).start()
    assert outage_db.proc
    pid = outage_db.proc.pid
    try:
        assert httpx.post(f"{server.url}/api/v1/agents", json=WOODY).status_code == 201
        os.kill(pid, signal.SIGSTOP)
        time.sleep(0.6)  # past the cache's freshness bound
        # Each answer within the client's 15 s (a hang would raise ReadTimeout).
        _assert_unavailable(_touch_every_database_route(server, timeout=15))
        assert "no answer within 1 s" in server.log_tail(100000)
    finally:
        os.kill(pid, signal.SIGCONT)
    try:
        eventually(
            lambda: httpx.get(f"{server.url}/readyz").status_code == 200,
            what="readiness after MariaDB thawed",
            within=30,
            every=0.25,
        )
        for _ in range(10):  # every worker's pool replaced the connections it cancelled
            assert httpx.get(f"{server.url}/api/v1/agents?limit=500").json()["total"] == 6
        after = {"name": "After", "species": "x", "service_start": "2000-01-01"}
        assert httpx.post(f"{server.url}/api/v1/agents", json=after).status_code == 201
        assert outage_db.query("SELECT COUNT(*) FROM agents")[0][0] == 7  # 5 + Woody + After
    finally:
        assert server.stop() == 0


def _touch_every_database_route(server: RoarServer, timeout: float = 5) -> list[httpx.Response]:
    """One request to each kind of route that needs the database, reads and writes, both APIs."""
    url = server.url
    return [
        httpx.get(f"{url}/roar/api/v1/registry", timeout=timeout),
        httpx.get(f"{url}/roar/api/v2/registry/bird", timeout=timeout),
        httpx.get(f"{url}/roar/api/v1/status/database", timeout=timeout),
        httpx.get(f"{url}/api/v1/agents", timeout=timeout),
        httpx.get(f"{url}/api/v1/agents/1", timeout=timeout),
        httpx.post(
            f"{url}/api/v1/agents",
            json={"name": "Lost", "species": "x", "service_start": "2000-01-01"},
            timeout=timeout,
        ),
        httpx.post(
            f"{url}/roar/api/v2/registry",
            json={"AGENT_NAME": "Lost", "AGENT_SPECIES": "x", "SERVICE_START": "2000-01-01"},
            timeout=timeout,
        ),
    ]


def _assert_unavailable(answers: list[httpx.Response]) -> None:
    for r in answers:
        assert r.status_code == 503, (r.request.url, r.text)
        assert "database is unavailable" in r.text
        assert "Traceback" not in r.text and "pymysql" not in r.text.lower()


def test_connections_the_server_dropped_are_replaced_not_used(
    outage_db: MariaDB, tmp_path: Path
) -> None:
    """MariaDB closes ROAR's idle connections (KILL, as wait_timeout or a failover does): the next
    requests are answered from new connections, not refused with 503."""
    env = {"ROAR_DATABASE_URL": outage_db.url}
    migrate(env)
    server = RoarServer(env=env, log_path=tmp_path / "roar.log", workers=2).start()
    try:
        search = _fill_pools_then_idle(server)
        ids = [
            row[0]
            for row in outage_db.query(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s", outage_db.user
            )
        ]
        assert len(ids) >= 8, f"ROAR holds only {len(ids)} connections"
        for conn_id in ids:
            with contextlib.suppress(pymysql.err.OperationalError):  # 1094: gone already
                outage_db.root_sql(f"KILL CONNECTION {conn_id}")
        answers = [httpx.get(search).status_code for _ in range(20)]
        answers.append(httpx.post(f"{server.url}/api/v1/agents", json=WOODY).status_code)
        assert answers == [200] * 20 + [201], answers
    finally:
        assert server.stop() == 0


def test_connections_to_a_vanished_address_are_replaced_at_once(
    outage_db: MariaDB, tmp_path: Path
) -> None:
    """The database pod is replaced: ROAR's pooled connections lead to an address that no longer
    answers (no FIN, no RST), while new ones reach the new server. Readiness and requests must not
    hang on the old connections one after another: the first bounded ping that goes unanswered
    replaces the whole pool."""
    with TcpProxy(("127.0.0.1", outage_db.port)) as proxy:
        url = outage_db.url.replace(f":{outage_db.port}/", f":{proxy.port}/")
        env = {"ROAR_DATABASE_URL": url}
        migrate(env)
        server = RoarServer(env=env, log_path=tmp_path / "roar.log").start()
        try:
            search = _fill_pools_then_idle(server)
            assert proxy.silence_existing() >= 4
            # Each as a kubelet probes: 2 s, the manifests' readiness timeout.
            ready = [httpx.get(f"{server.url}/readyz", timeout=2).status_code for _ in range(5)]
            assert ready == [200] * 5, ready
            answers = [httpx.get(search, timeout=15).status_code for _ in range(10)]
            assert answers == [200] * 10, answers
        finally:
            assert server.stop() == 0


def _fill_pools_then_idle(server: RoarServer) -> str:
    """Concurrent searches, so that each worker's pool holds several connections as under load;
    then a pause that makes them idle (pinged at their next checkout). Returns the search URL."""
    search = f"{server.url}/roar/api/v2/registry/bird"
    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(lambda _: httpx.get(search, timeout=30).status_code, range(96)))
    assert set(codes) == {200}
    time.sleep(IDLE_BEFORE_PING + 0.2)
    return search
