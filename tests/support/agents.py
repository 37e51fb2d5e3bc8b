"""Agents for tests, derived from the one seed definition (roar.db.schema)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from roar.db.schema import FIELD_COLUMNS, SIXTH_AGENT

__all__ = ["WOODY", "modern_body"]


def modern_body(row: dict[str, Any]) -> dict[str, Any]:
    """A schema row (column names) as a modern API request body."""
    values = {field: row[column] for field, column in FIELD_COLUMNS.items()}
    return {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in values.items()}


#: Lab 6's sixth agent, as the modern API takes it.
WOODY = modern_body(SIXTH_AGENT)
