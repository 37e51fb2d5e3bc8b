"""MariaDB stops: readiness and the APIs answer 503 (no stack traces) and the log names the
database; MariaDB returns: everything recovers without a restart of ROAR, nothing lost."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from support.agents import WOODY
from support.mariadb import MariaDB
from support.roar import RoarServer, migrate
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

        answers = [
            httpx.get(f"{server.url}/roar/api/v1/registry"),
            httpx.get(f"{server.url}/roar/api/v2/registry/bird"),
            httpx.get(f"{server.url}/roar/api/v1/status/database"),
            httpx.get(f"{server.url}/api/v1/agents"),
            httpx.get(f"{server.url}/api/v1/agents/1"),
            httpx.post(
                f"{server.url}/api/v1/agents",
                json={"name": "Lost", "species": "x", "service_start": "2000-01-01"},
            ),
            httpx.post(
                f"{server.url}/roar/api/v2/registry",
                json={"AGENT_NAME": "Lost", "AGENT_SPECIES": "x", "SERVICE_START": "2000-01-01"},
            ),
        ]
        for r in answers:
            assert r.status_code == 503, (r.request.url, r.text)
            assert "database is unavailable" in r.text
            assert "Traceback" not in r.text and "pymysql" not in r.text.lower()
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
