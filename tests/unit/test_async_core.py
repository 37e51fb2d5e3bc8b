"""roar.db.async_core: a server process runs SQLAlchemy's asyncio engine without loading the ORM
(about 40 ms of every start and 7 MB of every process, docs/benchmarks.md), and code that asks
for the rest of ``sqlalchemy.ext.asyncio`` still gets all of it. Each case runs in a new
interpreter, since this one has imported the package already."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _python(code: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
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
