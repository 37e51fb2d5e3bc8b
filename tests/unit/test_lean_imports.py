"""What a server process leaves unloaded, each package a share of every start and of every
worker's memory (docs/benchmarks.md):

- the ORM: roar.db.async_core gives SQLAlchemy's asyncio engine without it (about 40 ms and
  7 MB), and code that asks for the rest of ``sqlalchemy.ext.asyncio`` still gets all of it;
- ``pydantic.v1``, which FastAPI imports to ask whether a route's types are v1 models, and the
  WebSocket and file-watching libraries that uvicorn imports when they are there (together about
  2.8 MB and 25 ms);
- ctypes with one worker; platformdirs, and SQLite's dialect and drivers (0.7 MB), where the
  database is not the embedded one; MySQL's dialect and drivers (1.1 MB) where it is;
- Alembic, with which `roar serve` migrates the embedded database in a short-lived child
  (10 MB of the one command's server).

Each case runs in a new interpreter, since this one has imported these packages already."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from support.net import free_port

#: Modules a server process must not import (each with its submodules).
UNWANTED = ("sqlalchemy.orm", "pydantic.v1", "websockets", "watchfiles", "wsproto", "platformdirs")
#: ... and with one worker (the shared write counter is the supervisor's).
ONE_WORKER_UNWANTED = (*UNWANTED, "ctypes")
#: ... and on MariaDB, the embedded database's dialect and drivers.
MARIADB_UNWANTED = (*UNWANTED, "sqlalchemy.dialects.sqlite", "aiosqlite", "sqlite3")
#: ... and on the embedded database (one worker), MariaDB's.
EMBEDDED_UNWANTED = (*ONE_WORKER_UNWANTED, "sqlalchemy.dialects.mysql", "aiomysql", "pymysql")


def _python(code: str, env: dict[str, str] | None = None) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env and os.environ | env
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split("\n")[:-1]


def test_a_server_that_answers_a_query_has_not_loaded_the_orm(tmp_path: Path) -> None:
    out = _python(f"""
import asyncio, sys
from sqlalchemy import text
from roar import server
from roar.api.app import create_app
from roar.api.fastpath import serving
from roar.config import Settings
from roar.db.engine import create_engine

serving(create_app(Settings()))

async def main():
    engine = create_engine("sqlite+aiosqlite:///{tmp_path}/t.db", autocommit=True)
    async with engine.connect() as conn:
        print((await conn.execute(text("select 41 + 1"))).scalar())
    await engine.dispose()

asyncio.run(main())
print(sorted(m for m in sys.modules if m.startswith("sqlalchemy.orm")))
""")  # fmt: skip
    assert out == ["42", "[]"]


def test_the_rest_of_the_package_loads_when_asked() -> None:
    out = _python("""
import sys
from roar.db import async_core
print("sqlalchemy.orm" in sys.modules)
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
import sqlalchemy.ext.asyncio as package
print(create_async_engine is async_core.create_async_engine, AsyncSession.__name__,
      package.async_sessionmaker.__name__, "sqlalchemy.orm" in sys.modules)
""")  # fmt: skip
    assert out == ["False", "True AsyncSession async_sessionmaker True"]


def _loaded(unwanted: tuple[str, ...] = UNWANTED) -> str:
    """Python that prints which of ``unwanted`` (or their submodules) are loaded."""
    return f"""
print(sorted(m for m in sys.modules
             if sys.modules[m] is not None and m.startswith({unwanted!r})))"""


def test_a_worker_answers_without_the_packages_it_does_not_use(tmp_path: Path) -> None:
    """A worker, configured as `roar serve` configures it, serves on loopback: FastAPI and pydantic
    still check a request (a bad body is a 422 naming each field), and none of the unwanted
    packages has been loaded."""
    out = _python(
        f"""
import asyncio, sys
import httpx, uvicorn
from roar import server
from roar.config import Settings

url = "sqlite+aiosqlite:///{tmp_path}/t.db"
config = server._uvicorn_config(Settings(database_url=url, port={free_port()}))

async def main():
    served = uvicorn.Server(config)
    task = asyncio.create_task(served.serve())
    while not served.started:
        await asyncio.sleep(0.01)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{{config.port}}") as client:
        r = await client.post("/api/v1/agents", json={{"name": 5}})
        print(r.status_code, [e["field"] for e in r.json()["errors"]])
    served.should_exit = True
    await task

asyncio.run(main())"""
        + _loaded(EMBEDDED_UNWANTED)
    )
    assert out == ["422 ['name', 'species', 'service_start']", "[]"]


def test_the_worker_supervisor_preloads_none_of_them(tmp_path: Path) -> None:
    out = _python(
        f"""
import sys
from roar import server
from roar.config import Settings

server._preload(Settings(database_url="mysql://roar:x@127.0.0.1:1/roar"), "{tmp_path}")
print("roar.api.app" in sys.modules, "aiomysql" in sys.modules)"""
        + _loaded(MARIADB_UNWANTED),
        env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
    )
    assert out == ["True True", "[]"]


def test_the_one_command_migrates_in_a_child_and_serves_without_alembic(tmp_path: Path) -> None:
    """`roar serve` on the embedded database: the database is migrated and seeded before the
    server starts, and the process that goes on to serve has never imported Alembic."""
    out = _python(
        """
import sys
from roar import cli, server

def serve(settings, overrides):
    print(sorted(m for m in sys.modules if m == "alembic" or m.startswith("alembic.")))
    return 0

server.serve = serve  # stands in for the server, which would run until stopped
cli.cli(["serve", "--port", "0"])""",
        env={"ROAR_DATA_DIR": str(tmp_path), "ROAR_LOG_LEVEL": "WARNING"},
    )
    assert out == ["[]"]
    with sqlite3.connect(tmp_path / "roar.db") as db:
        (agents,) = db.execute("SELECT COUNT(*) FROM agents").fetchone()
        (revision,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
    assert agents == 5 and revision
