"""Agents for tests, derived from the one seed definition (roar.db.schema)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from sqlalchemy import event

from roar.db.agents import find_by_species
from roar.db.engine import create_engine
from roar.db.schema import FIELD_COLUMNS, SIXTH_AGENT

__all__ = ["WOODY", "modern_body", "species_search"]


def modern_body(row: dict[str, Any]) -> dict[str, Any]:
    """A schema row (column names) as a modern API request body."""
    values = {field: row[column] for field, column in FIELD_COLUMNS.items()}
    return {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in values.items()}


#: Lab 6's sixth agent, as the modern API takes it.
WOODY = modern_body(SIXTH_AGENT)


def species_search(url: str) -> tuple[list[str], str, Any]:
    """The legacy v2 search for a bird named "road RUNNER" on the database at ``url`` (async
    SQLAlchemy URL): the names found, and the statement and parameters ROAR sent for it."""
    engine = create_engine(url)
    seen: list[tuple[str, Any]] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: seen.append((a[2], a[3])))

    async def search() -> list[str]:
        try:
            async with engine.connect() as conn:
                rows = await find_by_species(conn, species="BIRD", name="road RUNNER")
        finally:
            await engine.dispose()
        return [r.NAME for r in rows]

    names = asyncio.run(search())
    statement, params = seen[-1]
    return names, statement, params
