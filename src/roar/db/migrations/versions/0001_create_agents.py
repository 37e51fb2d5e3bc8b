"""Create the agents table (shared/spec/data.md) with ROAR's row_version.

A migration is history: it spells out the table as it was at this revision instead of importing
the current schema module. tests/unit/test_schema.py proves head equals roar.db.schema.

Revision ID: 0001_create_agents
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_create_agents"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("NAME", sa.String(30), nullable=False),
        sa.Column("SPECIES", sa.String(100), nullable=False),
        sa.Column("SRVSTART", sa.Date, nullable=False, comment="date of first service"),
        sa.Column("SRVLAST", sa.Date, nullable=True, comment="date of last service"),
        sa.Column("ADVNAME", sa.String(40), nullable=True, comment="adversary"),
        sa.Column("ADVTECH", sa.String(400), nullable=True, comment="adversary's technology"),
        sa.Column("row_version", sa.Integer, nullable=False, server_default="1"),
        sa.CheckConstraint("SRVLAST IS NULL OR SRVLAST >= SRVSTART", name="ck_agents_srvlast"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_ci",
    )
    if op.get_context().dialect.name == "mysql":
        # Lab 6 inserts rows with seven values by position (no column list). An INVISIBLE
        # column (MariaDB 10.3+, MySQL 8.0.23+) is left out of positional inserts and SELECT *.
        op.execute("ALTER TABLE agents MODIFY row_version INTEGER NOT NULL DEFAULT 1 INVISIBLE")


def downgrade() -> None:
    op.drop_table("agents")
