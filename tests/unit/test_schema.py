"""One schema: the migrations build exactly roar.db.schema, on SQLite here and on MariaDB in
tests/db/test_schema_mariadb.py, and `roar db sql` (the db image's init SQL) agrees with both."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from roar.db import migrate
from roar.db.engine import create_engine as create_async
from roar.db.schema import SEED_AGENTS, agents, column_length, metadata


def _migrated_sqlite(path: Path) -> str:
    url = f"sqlite+aiosqlite:///{path}"

    async def run() -> None:
        engine = create_async(url)
        await migrate.upgrade(engine)
        await migrate.seed(engine)
        await engine.dispose()

    asyncio.run(run())
    return f"sqlite:///{path}"


def test_migrations_build_the_schema_definition(tmp_path: Path) -> None:
    engine = create_engine(_migrated_sqlite(tmp_path / "r.db"))
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
        rows = conn.execute(agents.select().order_by(agents.c.id)).mappings().all()
    assert diff == []
    assert [r["id"] for r in rows] == [1, 2, 3, 4, 5]
    assert [{k: r[k] for k in SEED_AGENTS[0]} for r in rows] == list(SEED_AGENTS)


def test_seed_is_idempotent(tmp_path: Path) -> None:
    _migrated_sqlite(tmp_path / "r.db")
    engine = create_async(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}")

    async def again() -> int:
        try:
            return await migrate.seed(engine)
        finally:
            await engine.dispose()

    assert asyncio.run(again()) == 0


def test_mysql_init_sql_has_the_table_and_the_seed_rows() -> None:
    sql = migrate.mysql_init_sql()
    assert "CREATE TABLE agents" in sql
    assert "`NAME` VARCHAR(30) NOT NULL" in sql and "`ADVTECH` VARCHAR(400)" in sql
    assert "row_version INTEGER NOT NULL DEFAULT 1 INVISIBLE" in sql
    assert "ENGINE=InnoDB" in sql and "utf8mb4" in sql
    assert sql.count("INSERT INTO agents") == 5
    assert "'Road Runner', 'bird', '1955-01-20', '1995-02-15'" in sql


def test_field_limits_come_from_the_columns() -> None:
    assert [column_length(c) for c in ("NAME", "SPECIES", "ADVNAME", "ADVTECH")] == [
        30,
        100,
        40,
        400,
    ]
