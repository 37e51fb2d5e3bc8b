"""Fixtures shared by every tier: real MariaDB and real ROAR servers on loopback.

Each test directory is a tier and gets its marker automatically (tests/api -> ``api``), so
``pytest -m api`` selects a tier without every test repeating its marker.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.mariadb import MariaDB
from support.roar import RoarServer, migrate

ROOT = Path(__file__).resolve().parents[1]
TIERS = {"unit", "api", "db", "web", "images", "manifests", "cluster", "operator", "monitoring"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        if parts and parts[0] in TIERS:
            item.add_marker(getattr(pytest.mark, parts[0]))


@pytest.fixture(scope="session")
def output_dir() -> Path:
    """Where tests leave artifacts worth looking at (logs, screenshots)."""
    path = Path(os.environ.get("ROAR_TEST_OUTPUT", ROOT / "test-output"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDB]:
    """One real MariaDB server for the session; modules reset its database."""
    with MariaDB.temporary() as server:
        yield server


class Backend:
    """A freshly seeded database of one kind, and how ROAR is pointed at it."""

    def __init__(self, kind: str, env: dict[str, str], mariadb: MariaDB | None):
        self.kind = kind
        self.env = env
        self.mariadb = mariadb

    def count(self) -> int:
        return int(self.sql("SELECT COUNT(*) FROM agents")[0][0])

    def sql(self, statement: str) -> list[tuple]:
        """Run one statement straight on the database, as a person with a SQL client would."""
        if self.mariadb:
            return self.mariadb.query(statement)
        import sqlite3

        path = Path(self.env["ROAR_DATA_DIR"]) / "roar.db"
        with sqlite3.connect(path) as conn:
            return conn.execute(statement).fetchall()


@pytest.fixture(scope="module", params=["sqlite", "mariadb"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    """A fresh, seeded database per module, once on SQLite and once on MariaDB."""
    if request.param == "sqlite":
        env = {"ROAR_DATA_DIR": str(tmp_path_factory.mktemp("roar-data"))}
        migrate(env)
        return Backend("sqlite", env, None)
    server: MariaDB = request.getfixturevalue("mariadb")
    server.reset_database()
    env = {"ROAR_DATABASE_URL": server.url}
    migrate(env)
    return Backend("mariadb", env, server)


@pytest.fixture(scope="module")
def roar(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoarServer]:
    """A running ROAR on the module's backend, writes open (no token)."""
    log = tmp_path_factory.mktemp("logs") / f"roar-{backend.kind}.log"
    server = RoarServer(env=backend.env, log_path=log).start()
    yield server
    server.stop()
