"""The change log that keeps every worker's agents snapshot current at the cost of the changes,
and an index for the legacy species search.

``agent_changes`` gets one row per agent inserted, updated or deleted, from triggers, so rows
changed with plain SQL (lab 6) are logged too. Existing rows are not logged: a reader starts with
a full read. On MariaDB, creating triggers needs the TRIGGER privilege and, with binary logging
on, ``log_bin_trust_function_creators=1`` (docs/configuration.md).

Revision ID: 0002_agent_changes
Revises: 0001_create_agents
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002_agent_changes"
down_revision = "0001_create_agents"
branch_labels = None
depends_on = None

_EVENTS = ("insert", "update", "delete")
_LOGGED = {
    "insert": "VALUES (NEW.id)",
    "update": "SELECT NEW.id UNION SELECT OLD.id",
    "delete": "VALUES (OLD.id)",
}


def upgrade() -> None:
    dialect = op.get_context().dialect.name
    op.create_table(
        "agent_changes",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("agent_id", sa.Integer, nullable=False),
        sa.Column(
            "changed_at",
            sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
            # Below the second: tells a recreated database's entry from the old one's.
            server_default=sa.text(
                "(strftime('%Y-%m-%d %H:%M:%f', 'now'))"
                if dialect == "sqlite"
                else "CURRENT_TIMESTAMP(6)"
            ),
        ),
        sqlite_autoincrement=True,
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_ci",
    )
    if dialect == "sqlite":
        # NOCASE: the search compares species in any case, and only a NOCASE index serves that.
        op.execute('CREATE INDEX ix_agents_species ON agents ("SPECIES" COLLATE NOCASE)')
    else:
        op.create_index("ix_agents_species", "agents", ["SPECIES"])
    for event in _EVENTS:
        head = f"CREATE TRIGGER agents_log_{event} AFTER {event.upper()} ON agents"
        body = f"INSERT INTO agent_changes (agent_id) {_LOGGED[event]}"
        if dialect == "sqlite":
            op.execute(f"{head} FOR EACH ROW BEGIN {body}; END")
        else:
            op.execute(f"{head} FOR EACH ROW {body}")


def downgrade() -> None:
    for event in _EVENTS:
        op.execute(f"DROP TRIGGER IF EXISTS agents_log_{event}")
    op.drop_index("ix_agents_species", table_name="agents")
    op.drop_table("agent_changes")
