"""The one definition of ROAR's schema and seed rows (shared/spec/data.md).

The Alembic baseline migration, the embedded SQLite database, a migrated MariaDB and the db
image's init SQL (``roar db sql``) all come from here; tests prove they agree.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from sqlalchemy import (
    DDL,
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    event,
)
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateIndex
from sqlalchemy.sql.compiler import DDLCompiler, SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = [
    "AGENT_COLUMNS",
    "FIELD_COLUMNS",
    "SEED_AGENTS",
    "SIXTH_AGENT",
    "agent_changes",
    "agents",
    "change_log_triggers",
    "metadata",
]

metadata = MetaData()

#: The legacy table; column names are the wire names of the legacy API.
agents = Table(
    "agents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("NAME", String(30), nullable=False),
    Column("SPECIES", String(100), nullable=False),
    Column("SRVSTART", Date, nullable=False, comment="date of first service"),
    Column("SRVLAST", Date, nullable=True, comment="date of last service"),
    Column("ADVNAME", String(40), nullable=True, comment="adversary"),
    Column("ADVTECH", String(400), nullable=True, comment="adversary's technology"),
    # ROAR's own: bumped on every update, the ETag of the modern API.
    Column("row_version", Integer, nullable=False, server_default="1"),
    CheckConstraint("SRVLAST IS NULL OR SRVLAST >= SRVSTART", name="ck_agents_srvlast"),
)

#: The legacy v2 search looks agents up by species, in any case: MariaDB's column collation
#: (utf8mb4_unicode_ci) ignores case as it is; SQLite's index is built ``COLLATE NOCASE`` (see
#: ``_create_index_sqlite``) and the search asks with the same collation, so both use the index.
species_index = Index("ix_agents_species", agents.c.SPECIES, info={"sqlite_collate": "NOCASE"})


class _PreciseNow(FunctionElement[dt.datetime]):
    """The time now, below the second (CURRENT_TIMESTAMP alone has whole seconds on both)."""

    type = DateTime()
    inherit_cache = True


@compiles(_PreciseNow, "sqlite")
def _precise_now_sqlite(element: _PreciseNow, compiler: SQLCompiler, **kw: object) -> str:
    return "(strftime('%Y-%m-%d %H:%M:%f', 'now'))"


@compiles(_PreciseNow)
def _precise_now(element: _PreciseNow, compiler: SQLCompiler, **kw: object) -> str:
    return "CURRENT_TIMESTAMP(6)"


class _Microseconds(TypeDecorator[dt.datetime]):
    """A date and time to the microsecond: DATETIME(6) on MariaDB, SQLite's own elsewhere. The
    MySQL type is looked up only for MySQL, which loads its dialect (see ``_TABLE_OPTIONS``)."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "mysql":
            from sqlalchemy.dialects.mysql import DATETIME

            return dialect.type_descriptor(DATETIME(fsp=6))
        return super().load_dialect_impl(dialect)


#: The change log: one row per agent inserted, updated or deleted, written by the database's own
#: triggers (below), so rows changed with plain SQL are logged too. Each worker's snapshot asks
#: for ``seq`` above the last it applied and re-reads only those agents (roar.cache); ROAR prunes
#: old entries. ``changed_at`` (to the millisecond or better) tells a recreated database apart
#: from the one a reader knew.
agent_changes = Table(
    "agent_changes",
    metadata,
    Column(
        "seq",
        BigInteger().with_variant(Integer, "sqlite"),  # SQLite's rowid is INTEGER PRIMARY KEY
        primary_key=True,
        autoincrement=True,
    ),
    Column("agent_id", Integer, nullable=False),
    Column(
        "changed_at",
        _Microseconds(),
        nullable=False,
        server_default=_PreciseNow(),
    ),
)

#: Each dialect's table options, given as that dialect creates the tables rather than as
#: ``Table(mysql_engine=...)``: naming a dialect's option loads that dialect with all its
#: drivers, so every server would carry both (SQLite's 0.7 MB on MariaDB, MySQL's 1.1 MB on the
#: embedded database; tests/unit/test_lean_imports.py). The migrations name them as they are.
_TABLE_OPTIONS: Final[dict[str, dict[str, dict[str, object]]]] = {
    "mysql": {
        table: {
            "mysql_engine": "InnoDB",
            "mysql_charset": "utf8mb4",
            "mysql_collate": "utf8mb4_unicode_ci",
        }
        for table in ("agents", "agent_changes")
    },
    # AUTOINCREMENT: SQLite never hands out a pruned seq again.
    "sqlite": {"agent_changes": {"sqlite_autoincrement": True}},
}


def _dialect_options(table: Table, connection: Connection, **kw: object) -> None:
    table.dialect_kwargs.update(_TABLE_OPTIONS.get(connection.dialect.name, {}).get(table.name, {}))


for _table in (agents, agent_changes):
    event.listen(_table, "before_create", _dialect_options)


#: What each trigger logs: the agent inserted, updated (both ids if the id itself changed; UNION
#: keeps one when they are equal) or deleted.
_LOGGED = {
    "insert": "VALUES (NEW.id)",
    "update": "SELECT NEW.id UNION SELECT OLD.id",
    "delete": "VALUES (OLD.id)",
}


def change_log_triggers(dialect: str) -> list[str]:
    """The CREATE TRIGGER statements that fill ``agent_changes``, for ``dialect``.

    MariaDB's are one statement each (no BEGIN/END), so the init SQL needs no DELIMITER and runs
    in the ``mysql`` client as it is; SQLite's trigger body must be a BEGIN/END block.
    """
    statements = []
    for event_name, rows in _LOGGED.items():
        head = f"CREATE TRIGGER agents_log_{event_name} AFTER {event_name.upper()} ON agents"
        body = f"INSERT INTO agent_changes (agent_id) {rows}"
        if dialect == "sqlite":
            statements.append(f"{head} FOR EACH ROW BEGIN {body}; END")
        else:
            statements.append(f"{head} FOR EACH ROW {body}")
    return statements


# Wherever the tables are created from this module (metadata.create_all), the triggers are too,
# once both tables exist; the migrations spell out the same statements (a migration is history)
# and tests compare the databases each path builds.
for _dialect in ("sqlite", "mysql"):
    for _statement in change_log_triggers(_dialect):
        # SQLAlchemy leaves DDL.execute_if unannotated.
        _ddl = DDL(_statement).execute_if(dialect=_dialect)  # type: ignore[no-untyped-call]
        event.listen(metadata, "after_create", _ddl)


@compiles(CreateIndex, "sqlite")
def _create_index_sqlite(create: CreateIndex, compiler: DDLCompiler, **kw: object) -> str:
    """SQLite's CREATE INDEX, with the collation an index asks for in ``info``."""
    index = create.element
    collation = index.info.get("sqlite_collate")
    if not collation or index.table is None:
        # SQLAlchemy leaves the compiler's visit_* methods unannotated.
        return str(compiler.visit_create_index(create, **kw))  # type: ignore[no-untyped-call]
    quote = compiler.preparer.quote
    columns = ", ".join(f"{quote(c.name)} COLLATE {collation}" for c in index.columns)
    name = compiler.preparer.format_index(index)
    return f"CREATE INDEX {name} ON {compiler.preparer.format_table(index.table)} ({columns})"


#: Modern field name -> legacy column (the legacy API's wire name), in wire order: the one map
#: between the two APIs' names; the modern API's schemas and sorting derive theirs from it.
FIELD_COLUMNS: Final = {
    "name": "NAME",
    "species": "SPECIES",
    "service_start": "SRVSTART",
    "service_last": "SRVLAST",
    "adversary_name": "ADVNAME",
    "adversary_tech": "ADVTECH",
}
#: The legacy columns in wire order (``id`` first), as the legacy API answers them.
AGENT_COLUMNS: Final = ("id", *FIELD_COLUMNS.values())


def _row(name: str, species: str, start: str, last: str, adv: str, tech: str) -> dict[str, Any]:
    return {
        "NAME": name,
        "SPECIES": species,
        "SRVSTART": dt.date.fromisoformat(start),
        "SRVLAST": dt.date.fromisoformat(last),
        "ADVNAME": adv,
        "ADVTECH": tech,
    }


#: The seed rows, ids 1 to 5 in this order.
SEED_AGENTS: Final = (
    _row(
        "Road Runner", "bird", "1955-01-20", "1995-02-15", "Wile E. Coyote", "ACME product du jour"
    ),
    _row("Scooby", "dog", "1969-05-19", "2000-02-11", "fake ghosts", "mask"),
    _row("Perry", "platypus", "2013-01-20", "2015-04-09", "H. Doofensmirtz", "...inator"),
    _row("Mr. Krabs", "crab", "2010-06-17", "2014-07-07", "Plankton", "various"),
    _row("Bugs Bunny", "rabbit", "1966-05-22", "1988-04-15", "E. Fudd", "wabbit gun"),
)

#: The row the persistent-storage lab adds and expects to survive the db pod's deletion.
SIXTH_AGENT: Final = _row(
    "Woody Woodpecker", "bird", "1959-05-22", "1979-04-15", "Buzz Buzzard", "menacing stare"
)


def column_length(name: str) -> int | None:
    """The declared length of a string column (the validation limit of its field)."""
    return getattr(agents.c[name].type, "length", None)
