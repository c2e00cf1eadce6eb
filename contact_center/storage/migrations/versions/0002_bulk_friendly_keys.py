"""bulk-friendly list records: json custom fields, "C" collation on keys (PostgreSQL)

A 1M-row list load spent a fifth of its database time decomposing ``jsonb`` and
a tenth comparing keys through the locale's collation in the unique indexes.
``json`` keeps the text as written (and still checks it), and the "C" collation
compares bytes. ``list_records.updated_at`` defaults to the transaction's time, so
that a bulk load need not send (and the server parse) the same time a million
times. SQLite has none of these distinctions, so there it changes nothing.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 13:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# (table, column, nullable) of the keys that take the "C" collation.
_KEYS = (
    ("list_records", "record_key", False),
    ("exclusions", "key_value", False),
    ("call_attempts", "record_key", True),
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.alter_column(
        "list_records",
        "custom_fields",
        type_=sa.JSON(),
        existing_type=postgresql.JSONB(),
        existing_nullable=True,
        postgresql_using="custom_fields::json",
    )
    for table, column, nullable in _KEYS:
        op.alter_column(
            table,
            column,
            type_=sa.String(200, collation="C"),
            existing_type=sa.String(200),
            existing_nullable=nullable,
        )
    op.alter_column("list_records", "updated_at", server_default=sa.text("now()"))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.alter_column("list_records", "updated_at", server_default=None)
    for table, column, nullable in _KEYS:
        op.alter_column(
            table,
            column,
            type_=sa.String(200, collation="default"),
            existing_type=sa.String(200, collation="C"),
            existing_nullable=nullable,
        )
    op.alter_column(
        "list_records",
        "custom_fields",
        type_=postgresql.JSONB(),
        existing_type=sa.JSON(),
        existing_nullable=True,
        postgresql_using="custom_fields::jsonb",
    )
