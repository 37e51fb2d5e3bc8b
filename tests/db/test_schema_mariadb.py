"""On a real MariaDB: the migrated schema equals the schema definition, and the database that
`roar db sql` builds (as the db image does, through the mariadb client) equals the migrated one,
column for column, trigger for trigger; in both, changes made with plain SQL are logged."""

from __future__ import annotations

import subprocess

import pymysql
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from roar.config import normalize_database_url
from roar.db.schema import metadata
from support.agents import species_search
from support.mariadb import MariaDB
from support.roar import migrate, roar_command

COLUMNS = (
    "SELECT table_name, column_name, column_type, is_nullable, column_default, column_comment "
    "FROM information_schema.columns WHERE table_schema=%s "
    "AND table_name IN ('agents', 'agent_changes') ORDER BY table_name, ordinal_position"
)
TRIGGERS = (
    "SELECT trigger_name, action_timing, event_manipulation, event_object_table, "
    "action_statement FROM information_schema.triggers WHERE trigger_schema=%s "
    "ORDER BY trigger_name"
)
INDEXES = (
    "SELECT table_name, index_name, column_name, seq_in_index FROM information_schema.statistics "
    "WHERE table_schema=%s ORDER BY table_name, index_name, seq_in_index"
)


def _root(server: MariaDB, database: str) -> pymysql.Connection:  # type: ignore[type-arg]
    return pymysql.connect(
        user="root", password="", unix_socket=server._sock(), database=database, autocommit=True
    )


def _describe(server: MariaDB, database: str) -> tuple[list, ...]:
    conn = _root(server, database)
    try:
        with conn.cursor() as cur:
            described = []
            for query in (COLUMNS, TRIGGERS, INDEXES):
                cur.execute(query, (database,))
                described.append(list(cur.fetchall()))
            cur.execute("SELECT * FROM agents ORDER BY id")
            described.append(list(cur.fetchall()))
    finally:
        conn.close()
    return tuple(described)


def _logged_by_plain_sql(server: MariaDB, database: str) -> list[int]:
    """The agent ids the change log records for an insert, an update and a delete made with
    plain SQL (lab 6's positional INSERT), not through ROAR."""
    conn = _root(server, database)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COALESCE(MAX(seq), 0) FROM agent_changes")
            (before,) = cur.fetchone()
            cur.execute(
                "INSERT INTO agents VALUES (NULL, 'Woody', 'bird', '1959-05-22', NULL, NULL, NULL)"
            )
            new_id = cur.lastrowid
            cur.execute("UPDATE agents SET ADVNAME = 'Buzz' WHERE id = %s", (new_id,))
            cur.execute("DELETE FROM agents WHERE id = 2")
            cur.execute("SELECT agent_id FROM agent_changes WHERE seq > %s ORDER BY seq", (before,))
            logged = [row[0] for row in cur.fetchall()]
    finally:
        conn.close()
    assert logged[0] == new_id
    return logged


def test_migrations_and_init_sql_agree_on_mariadb(mariadb: MariaDB) -> None:
    mariadb.reset_database()
    migrate({"ROAR_DATABASE_URL": mariadb.url})
    engine = create_engine(mariadb.url.replace("mysql://", "mysql+pymysql://"))
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    engine.dispose()

    sql = subprocess.run(
        [*roar_command(), "db", "sql"], check=True, capture_output=True, text=True
    ).stdout
    mariadb.root_sql(
        "DROP DATABASE IF EXISTS from_sql; CREATE DATABASE from_sql "
        "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
    )
    # The mariadb client, as the image's entrypoint runs it: it splits statements at ';'.
    subprocess.run(
        ["mariadb", "--no-defaults", "-uroot", f"--socket={mariadb._sock()}", "from_sql"],
        input=sql,
        check=True,
        capture_output=True,
        text=True,
    )
    migrated, from_sql = _describe(mariadb, mariadb.database), _describe(mariadb, "from_sql")
    assert migrated == from_sql
    triggers, rows = from_sql[1], from_sql[3]
    assert [(t[1], t[2]) for t in triggers] == [
        ("AFTER", "DELETE"),
        ("AFTER", "INSERT"),
        ("AFTER", "UPDATE"),
    ]
    assert len(rows) == 5
    assert rows[0][1:7] == (
        "Road Runner",
        "bird",
        *rows[0][3:5],
        "Wile E. Coyote",
        "ACME product du jour",
    )
    logged = _logged_by_plain_sql(mariadb, "from_sql")
    assert logged == _logged_by_plain_sql(mariadb, mariadb.database)
    assert logged == [6, 6, 2]


def test_check_constraint_refuses_last_before_first(mariadb: MariaDB) -> None:
    mariadb.reset_database()
    migrate({"ROAR_DATABASE_URL": mariadb.url})
    try:
        mariadb.query("UPDATE agents SET SRVLAST='1900-01-01' WHERE id=1")
    except pymysql.err.OperationalError as exc:
        assert "ck_agents_srvlast" in str(exc)
    else:
        raise AssertionError("MariaDB accepted SRVLAST before SRVSTART")


def test_the_species_search_is_served_by_the_index(mariadb: MariaDB) -> None:
    """The legacy v2 search's statement, as ROAR sends it, looks species up in the index (the
    column's collation ignores case: no lower() that would hide the column from it)."""
    mariadb.reset_database()
    migrate({"ROAR_DATABASE_URL": mariadb.url})
    names, statement, params = species_search(normalize_database_url(mariadb.url))
    assert names == ["Road Runner"]
    plan = mariadb.query(f"EXPLAIN {statement}", *params)
    assert [(row[2], row[5]) for row in plan] == [("agents", "ix_agents_species")]


def test_the_schema_definition_creates_the_migrated_tables_on_mariadb(mariadb: MariaDB) -> None:
    """`metadata.create_all` on MariaDB gives the tables their engine, character set and
    collation, and the change log its DATETIME(6), as the migrations do, even in a database
    whose own defaults differ: the options are given as MariaDB creates the tables."""
    mariadb.reset_database()
    migrate({"ROAR_DATABASE_URL": mariadb.url})
    created = mariadb.own_database("created", defaults="CHARACTER SET latin1")
    engine = create_engine(created.url.replace("mysql://", "mysql+pymysql://"))
    metadata.create_all(engine)
    engine.dispose()
    tables = (
        "SELECT table_name, engine, table_collation FROM information_schema.tables "
        "WHERE table_schema=%s AND table_name IN ('agents', 'agent_changes')"
    )
    created_tables = sorted(mariadb.query(tables, "created"))
    assert created_tables == sorted(mariadb.query(tables, mariadb.database))
    assert created_tables == [
        ("agent_changes", "InnoDB", "utf8mb4_unicode_ci"),
        ("agents", "InnoDB", "utf8mb4_unicode_ci"),
    ]
    columns = _describe(mariadb, "created")[0]
    assert columns == _describe(mariadb, mariadb.database)[0]
    assert ("agent_changes", "changed_at", "datetime(6)") in [c[:3] for c in columns]
