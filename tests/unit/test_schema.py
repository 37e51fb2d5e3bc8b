"""One schema: the migrations build exactly roar.db.schema, on SQLite here and on MariaDB in
tests/db/test_schema_mariadb.py, and `roar db sql` (the db image's init SQL) agrees with both;
the change-log triggers included, which log rows changed with plain SQL too."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from roar.db import migrate
from roar.db.engine import create_engine as create_async
from roar.db.schema import SEED_AGENTS, agents, metadata
from support.agents import species_search


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


def _schema(path: Path, *kinds: str) -> list[tuple[str, str, str]]:
    """(type, name, SQL) of what SQLite keeps the SQL of, of these kinds, Alembic's own aside."""
    placeholders = ", ".join("?" * len(kinds))
    with sqlite3.connect(path) as db:
        return db.execute(
            f"SELECT type, name, sql FROM sqlite_master WHERE type IN ({placeholders})"
            " AND sql IS NOT NULL AND name != 'alembic_version' ORDER BY name",
            kinds,
        ).fetchall()


def test_the_migrations_and_the_schema_definition_build_the_same_tables_and_triggers(
    tmp_path: Path,
) -> None:
    _migrated_sqlite(tmp_path / "migrated.db")
    metadata.create_all(create_engine(f"sqlite:///{tmp_path / 'created.db'}"))
    # The change log's AUTOINCREMENT included (so a pruned seq is never handed out again).
    tables = _schema(tmp_path / "migrated.db", "table")
    assert tables == _schema(tmp_path / "created.db", "table")
    sql = {name: sql for _, name, sql in tables}
    assert "seq INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT" in sql["agent_changes"]
    migrated = _schema(tmp_path / "migrated.db", "trigger", "index")
    assert migrated == _schema(tmp_path / "created.db", "trigger", "index")
    assert [name for kind, name, _ in migrated if kind == "trigger"] == [
        "agents_log_delete",
        "agents_log_insert",
        "agents_log_update",
    ]


def test_changes_made_with_plain_sql_are_logged(tmp_path: Path) -> None:
    _migrated_sqlite(tmp_path / "r.db")
    with sqlite3.connect(tmp_path / "r.db") as db:
        (before,) = db.execute("SELECT MAX(seq) FROM agent_changes").fetchone()
        db.execute(
            "INSERT INTO agents VALUES (NULL, 'Woody', 'bird', '1959-05-22', NULL, NULL, NULL, 1)"
        )
        db.execute("UPDATE agents SET ADVNAME = 'Buzz' WHERE id = 6")
        db.execute("UPDATE agents SET id = 60 WHERE id = 6")
        db.execute("DELETE FROM agents WHERE id = 2")
        logged = [
            r[0]
            for r in db.execute(
                "SELECT agent_id FROM agent_changes WHERE seq > ? ORDER BY seq", (before,)
            )
        ]
    assert before == 5  # the seed rows
    assert logged[:2] == [6, 6] and sorted(logged[2:4]) == [6, 60] and logged[4:] == [2]


def test_the_species_search_is_served_by_the_index(tmp_path: Path) -> None:
    _migrated_sqlite(tmp_path / "r.db")
    names, statement, params = species_search(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}")
    assert names == ["Road Runner"]
    with sqlite3.connect(tmp_path / "r.db") as db:
        plan = " ".join(r[-1] for r in db.execute(f"EXPLAIN QUERY PLAN {statement}", params))
    assert "USING INDEX ix_agents_species" in plan, plan


def test_downgrading_0002_drops_the_change_log_and_upgrading_restores_it(tmp_path: Path) -> None:
    url = _migrated_sqlite(tmp_path / "r.db")
    engine = create_async(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}")

    async def down_and_up() -> None:
        try:
            await migrate._run(engine, command.downgrade, "0001_create_agents")
            with sqlite3.connect(tmp_path / "r.db") as db:
                assert _schema(tmp_path / "r.db", "trigger", "index") == []
                db.execute(
                    "INSERT INTO agents (NAME, SPECIES, SRVSTART) VALUES ('A', 'b', '2000-01-01')"
                )
            await migrate.upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(down_and_up())
    with create_engine(url).connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    assert len(_schema(tmp_path / "r.db", "trigger", "index")) == 4
