"""Alembic environment: migrates the connection handed over by contact_center.storage.db."""

from __future__ import annotations

from alembic import context

from contact_center.storage.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    """Run the migrations on the connection in ``config.attributes``."""
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "run migrations through `cctasks db upgrade` or contact_center.storage.db"
        )
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
