"""Queries on the agents table. Keyword-only functions over an AsyncConnection, bound
parameters only; the API layer turns their outcomes into HTTP answers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Executable,
    Row,
    String,
    UnaryExpression,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)

from roar.db.async_core import AsyncConnection
from roar.db.schema import FIELD_COLUMNS, agent_changes, agents

__all__ = [
    "SORTABLE",
    "NotFound",
    "VersionMismatch",
    "create_agent",
    "delete_agent",
    "delete_by_name_species",
    "find_by_species",
    "get_agent",
    "list_agents",
    "page_of_all",
    "set_last_service_by_name",
    "update_agent",
]

SORTABLE = {"id": agents.c.id} | {field: agents.c[col] for field, col in FIELD_COLUMNS.items()}


class NotFound(LookupError):
    """No agent matched."""


class VersionMismatch(Exception):
    """The row changed since the version the client had (If-Match failed)."""


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def list_agents(
    conn: AsyncConnection,
    *,
    species: str | None = None,
    name_contains: str | None = None,
    sort: Sequence[tuple[str, bool]] = (("id", False),),
    limit: int = 50,
    offset: int = 0,
) -> tuple[Sequence[Row[Any]], int]:
    """A page of agents matching the filters (case-insensitive), and the total count."""
    conditions = []
    if species:
        conditions.append(func.lower(agents.c.SPECIES) == species.lower())
    if name_contains:
        pattern = f"%{_escape_like(name_contains.lower())}%"
        conditions.append(func.lower(agents.c.NAME).like(pattern, escape="\\"))
    order = _order(sort)
    # One round trip: the total rides along on every row as a window count.
    rows = (
        await conn.execute(
            select(agents, func.count().over().label("total"))
            .where(*conditions)
            .order_by(*order)
            .limit(limit)
            .offset(offset)
        )
    ).all()
    if rows:
        return rows, int(rows[0].total)
    # An empty page says nothing about the total (e.g. an offset past the end): count apart.
    total = await conn.scalar(select(func.count()).select_from(agents).where(*conditions))
    return rows, int(total or 0)


def _order(sort: Sequence[tuple[str, bool]]) -> list[UnaryExpression[Any]]:
    # Text sorts ignore case on every backend (MariaDB's collation does; SQLite's does not).
    keys = [
        (func.lower(SORTABLE[f]) if isinstance(SORTABLE[f].type, String) else SORTABLE[f], desc)
        for f, desc in sort
    ]
    order = [key.desc() if desc else key.asc() for key, desc in keys]
    if not any(field == "id" for field, _ in sort):
        order.append(agents.c.id.asc())  # a stable order makes pages deterministic
    return order


async def page_of_all(
    conn: AsyncConnection,
    *,
    sort: Sequence[tuple[str, bool]] = (("id", False),),
    limit: int = 50,
    offset: int = 0,
) -> tuple[Sequence[Row[Any]], int | None]:
    """A page of all agents, without a count (the snapshot has it), and the newest change-log
    entry read by the same statement: the count to answer with must include it."""
    newest = select(func.max(agent_changes.c.seq)).scalar_subquery().label("log_seq")
    stmt = select(agents, newest).order_by(*_order(sort)).limit(limit).offset(offset)
    rows = (await conn.execute(stmt)).all()
    if rows:
        return rows, rows[0].log_seq
    return rows, await conn.scalar(select(func.max(agent_changes.c.seq)))


def _same_text(column: ColumnElement[str], value: str, dialect: str) -> ColumnElement[bool]:
    """``column`` equals ``value`` in any case, in a form the backend's index can serve."""
    if dialect != "sqlite":
        return column == value  # MariaDB: the column's collation (utf8mb4_unicode_ci) ignores case
    if value.isascii():
        return column.collate("NOCASE") == value  # as ix_agents_species is built
    # NOCASE folds ASCII letters only: compare Python's case folding instead (a scan, for the rare
    # search with other letters).
    return func.roar_casefold(column) == value.casefold()


async def find_by_species(
    conn: AsyncConnection, *, species: str, name: str | None = None
) -> Sequence[Row[Any]]:
    """The legacy v2 search: agents of ``species`` (and ``name``) in any case, ordered by id,
    looked up through the species index."""
    dialect = conn.dialect.name
    conditions = [_same_text(agents.c.SPECIES, species, dialect)]
    if name is not None:
        conditions.append(_same_text(agents.c.NAME, name, dialect))
    return (await conn.execute(select(agents).where(*conditions).order_by(agents.c.id))).all()


# The statements of the single-agent calls, built once: a call binds only its values. Building
# them per call (and their cache keys) was about 5% of a create's CPU under load (py-spy,
# docs/benchmarks.md). The bound names are not column names, so the values' keys set columns.
_BY_ID = select(agents).where(agents.c.id == bindparam("agent_id"))
_INSERT = insert(agents)
_INSERT_RETURNING = _INSERT.returning(*agents.c)


_UPDATE = (
    update(agents)
    .where(agents.c.id == bindparam("agent_id"))
    .values(row_version=agents.c.row_version + 1)
)
_UPDATE_IF = _UPDATE.where(agents.c.row_version == bindparam("expected_version"))
_UPDATE_RETURNING = _UPDATE.returning(*agents.c)
_UPDATE_IF_RETURNING = _UPDATE_IF.returning(*agents.c)
_DELETE = delete(agents).where(agents.c.id == bindparam("agent_id"))
_DELETE_IF = _DELETE.where(agents.c.row_version == bindparam("expected_version"))


def _versioned(
    plain: Executable, guarded: Executable, params: dict[str, Any], expected_version: int | None
) -> tuple[Executable, dict[str, Any]]:
    """The statement and parameters for a write conditional on ``expected_version`` (If-Match),
    or unconditional without one (an UPDATE refuses a parameter it does not use)."""
    if expected_version is None:
        return plain, params
    return guarded, {**params, "expected_version": expected_version}


async def get_agent(conn: AsyncConnection, *, agent_id: int) -> Row[Any]:
    row = (await conn.execute(_BY_ID, {"agent_id": agent_id})).first()
    if row is None:
        raise NotFound(agent_id)
    return row


async def create_agent(conn: AsyncConnection, *, values: dict[str, Any]) -> Row[Any]:
    if conn.dialect.insert_returning:
        # The row comes back with its id and defaults: one round trip instead of an INSERT and
        # a SELECT (MariaDB 10.5+, SQLite 3.35+; a create's cost is mostly round trips).
        return (await conn.execute(_INSERT_RETURNING, values)).one()
    result = await conn.execute(_INSERT, values)
    key = result.inserted_primary_key
    if key is None:  # only an executemany() INSERT has none; this one inserts one row
        raise RuntimeError("INSERT INTO agents gave no primary key")
    return await get_agent(conn, agent_id=key[0])


async def update_agent(
    conn: AsyncConnection,
    *,
    agent_id: int,
    values: dict[str, Any],
    expected_version: int | None,
    version_hint: int | None = None,
) -> Mapping[Any, Any]:
    """Replace fields of one agent, bumping its version; conditional on ``expected_version``.
    Returns the agent as stored (its columns), in one round trip where the new version can be
    known: with RETURNING (SQLite 3.35+), or when the update was conditional on a version,
    ``expected_version`` or, for an unconditional one, ``version_hint`` (the version the caller
    believes the row has: if it holds, the update is the same as an unconditional one). Otherwise
    (MariaDB has no UPDATE ... RETURNING) the row is read right after, as it is then."""
    params = {**values, "agent_id": agent_id}
    if conn.dialect.update_returning:
        stmt, params = _versioned(_UPDATE_RETURNING, _UPDATE_IF_RETURNING, params, expected_version)
        row = (await conn.execute(stmt, params)).first()
        if row is not None:
            return row._mapping
    else:
        guess = expected_version if expected_version is not None else version_hint
        if guess is not None:
            guarded = {**params, "expected_version": guess}
            if (await conn.execute(_UPDATE_IF, guarded)).rowcount == 1:
                return {**values, "id": agent_id, "row_version": guess + 1}
        if expected_version is None and (await conn.execute(_UPDATE, params)).rowcount == 1:
            return (await get_agent(conn, agent_id=agent_id))._mapping
    await get_agent(conn, agent_id=agent_id)  # raises NotFound if it is gone
    raise VersionMismatch(agent_id)


async def delete_agent(
    conn: AsyncConnection, *, agent_id: int, expected_version: int | None
) -> None:
    stmt, params = _versioned(_DELETE, _DELETE_IF, {"agent_id": agent_id}, expected_version)
    if (await conn.execute(stmt, params)).rowcount == 0:
        await get_agent(conn, agent_id=agent_id)
        raise VersionMismatch(agent_id)


async def set_last_service_by_name(
    conn: AsyncConnection, *, name: str, service_last: dt.date | None
) -> int:
    """The legacy PUT: set SRVLAST of every agent with this NAME. Returns rows changed.

    Raises NotFound when no agent has the name, ValueError when the date would come before an
    agent's first service (the whole statement is refused, nothing is half written).
    """
    # Case-insensitive, as MySQL's default collation made the original; the same on SQLite.
    named = func.lower(agents.c.NAME) == name.lower()
    if service_last is not None:
        early = await conn.scalar(
            select(func.count()).where(named, service_last < agents.c.SRVSTART)
        )
        if early:
            raise ValueError("SERVICE_LAST is before the agent's date of first service")
    result = await conn.execute(
        update(agents)
        .where(named)
        .values(SRVLAST=service_last, row_version=agents.c.row_version + 1)
    )
    if result.rowcount == 0:
        raise NotFound(name)
    return result.rowcount


async def delete_by_name_species(conn: AsyncConnection, *, name: str, species: str) -> int:
    """The legacy DELETE: agents with exactly this NAME and SPECIES. Returns rows deleted."""
    result = await conn.execute(
        delete(agents).where(
            func.lower(agents.c.NAME) == name.lower(),
            func.lower(agents.c.SPECIES) == species.lower(),
        )
    )
    if result.rowcount == 0:
        raise NotFound(name)
    return result.rowcount
