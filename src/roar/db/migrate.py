"""Migrations (Alembic, which owns the schema) and seeding, callable from code and the CLI."""

from __future__ import annotations

import io
from importlib.resources import files

from alembic import command
from alembic.config import Config
from sqlalchemy import func, insert, select
from sqlalchemy.dialects import mysql
from sqlalchemy.ext.asyncio import AsyncEngine

from roar.db.schema import SEED_AGENTS, agents

__all__ = ["alembic_config", "downgrade_to_base", "mysql_init_sql", "seed", "upgrade"]


def alembic_config(url: str | None = None, *, buffer: io.StringIO | None = None) -> Config:
    cfg = Config(output_buffer=buffer)
    cfg.set_main_option("script_location", str(files("roar.db") / "migrations"))
    if url:
        cfg.attributes["url"] = url
    return cfg


async def upgrade(engine: AsyncEngine) -> None:
    """Migrate the database behind ``engine`` to the newest revision."""

    def _run(connection) -> None:  # type: ignore[no-untyped-def]
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")

    async with engine.begin() as conn:
        await conn.run_sync(_run)


async def downgrade_to_base(engine: AsyncEngine) -> None:
    """Undo every migration (drops ROAR's tables)."""

    def _run(connection) -> None:  # type: ignore[no-untyped-def]
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "base")

    async with engine.begin() as conn:
        await conn.run_sync(_run)


async def seed(engine: AsyncEngine) -> int:
    """Insert the seed rows if the table is empty; returns how many rows were inserted."""
    async with engine.begin() as conn:
        if await conn.scalar(select(func.count()).select_from(agents)):
            return 0
        await conn.execute(insert(agents), list(SEED_AGENTS))
    return len(SEED_AGENTS)


def mysql_init_sql() -> str:
    """MySQL/MariaDB DDL from the migrations (offline mode) followed by the seed rows."""
    buffer = io.StringIO()
    cfg = alembic_config("mysql+pymysql://", buffer=buffer)
    command.upgrade(cfg, "head", sql=True)
    dialect = mysql.dialect()
    lines = ["-- Seed rows (shared/spec/data.md)"]
    for row in SEED_AGENTS:
        stmt = insert(agents).values(**row)
        lines.append(f"{stmt.compile(dialect=dialect, compile_kwargs={'literal_binds': True})};")
    return buffer.getvalue() + "\n".join(lines) + "\n"
