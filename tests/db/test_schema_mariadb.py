"""On a real MariaDB: the migrated schema equals the schema definition, and the database that
`roar db sql` builds (as the db image does) equals the migrated one, column for column."""

from __future__ import annotations

import subprocess

import pymysql
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from roar.db.schema import metadata
from support.mariadb import MariaDB
from support.roar import migrate, roar_command

COLUMNS = (
    "SELECT column_name, column_type, is_nullable, column_default, column_comment "
    "FROM information_schema.columns WHERE table_schema=%s AND table_name='agents' "
    "ORDER BY ordinal_position"
)


def _describe(server: MariaDB, database: str) -> tuple[list, list]:
    conn = pymysql.connect(
        host="127.0.0.1", port=server.port, user="root", password="", unix_socket=server._sock()
    )
    try:
        with conn.cursor() as cur:
            cur.execute(COLUMNS, (database,))
            columns = list(cur.fetchall())
            cur.execute(f"SELECT * FROM {database}.agents ORDER BY id")
            rows = list(cur.fetchall())
    finally:
        conn.close()
    return columns, rows


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
        "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci; USE from_sql;" + sql
    )
    migrated, from_sql = _describe(mariadb, mariadb.database), _describe(mariadb, "from_sql")
    assert migrated == from_sql
    assert len(from_sql[1]) == 5
    assert from_sql[1][0][1:7] == (
        "Road Runner",
        "bird",
        *from_sql[1][0][3:5],
        "Wile E. Coyote",
        "ACME product du jour",
    )


def test_check_constraint_refuses_last_before_first(mariadb: MariaDB) -> None:
    mariadb.reset_database()
    migrate({"ROAR_DATABASE_URL": mariadb.url})
    try:
        mariadb.query("UPDATE agents SET SRVLAST='1900-01-01' WHERE id=1")
    except pymysql.err.OperationalError as exc:
        assert "ck_agents_srvlast" in str(exc)
    else:
        raise AssertionError("MariaDB accepted SRVLAST before SRVSTART")
