"""The one definition of ROAR's schema and seed rows (shared/spec/data.md).

The Alembic baseline migration, the embedded SQLite database, a migrated MariaDB and the db
image's init SQL (``roar db sql``) all come from here; tests prove they agree.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from sqlalchemy import (
    CheckConstraint,
    Column,
    Date,
    Integer,
    MetaData,
    String,
    Table,
)

__all__ = ["AGENT_COLUMNS", "SEED_AGENTS", "SIXTH_AGENT", "agents", "metadata"]

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
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_unicode_ci",
)

#: The legacy columns in wire order (``id`` first), as the legacy API answers them.
AGENT_COLUMNS: Final = ("id", "NAME", "SPECIES", "SRVSTART", "SRVLAST", "ADVNAME", "ADVTECH")


def _row(name: str, species: str, start: str, last: str, adv: str, tech: str) -> dict:
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
