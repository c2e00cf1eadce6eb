"""list records keep their custom fields as JSON text (PostgreSQL)

``json`` parses every document it stores to check it. The list parser writes each
document itself, so the check finds nothing, and it was a tenth of a 1M-row list
COPY. ``text`` stores the same characters unchecked; SQL that looks inside a
document casts it to ``json`` (``contact_center.storage.results_query``). SQLite stores JSON as
text already, so there it changes nothing.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 16:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.alter_column(
        "list_records",
        "custom_fields",
        type_=sa.Text(),
        existing_type=sa.JSON(),
        existing_nullable=True,
        postgresql_using="custom_fields::text",
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.alter_column(
        "list_records",
        "custom_fields",
        type_=sa.JSON(),
        existing_type=sa.Text(),
        existing_nullable=True,
        postgresql_using="custom_fields::json",
    )
