"""Alembic environment: the connection or URL comes from ROAR, never from alembic.ini."""

from __future__ import annotations

from alembic import context

from roar.db.schema import metadata

config = context.config

if context.is_offline_mode():
    context.configure(
        url=config.attributes["url"],
        target_metadata=metadata,
        literal_binds=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    context.configure(
        connection=config.attributes["connection"],
        target_metadata=metadata,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
