"""each record's time zone and its source; campaigns' calling hours

``list_records.timezone`` holds one IANA zone or several separated by a space (an
area code or state that spans two zones keeps both), so it becomes ``text`` on
PostgreSQL (SQLite does not enforce lengths); ``timezone_source`` says where the
zone came from. Campaigns gain their calling window, days, holiday region and what
to do with a record that has no zone. Existing rows get the defaults: 08:00-21:00
on weekdays, no holidays, records without a zone skipped.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 22:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _campaign_columns() -> list[sa.Column[str]]:
    return [
        sa.Column("calling_window", sa.String(20), nullable=False, server_default="08:00-21:00"),
        sa.Column(
            "calling_days", sa.String(40), nullable=False, server_default="mon,tue,wed,thu,fri"
        ),
        sa.Column("calling_holidays", sa.String(20), nullable=True),
        sa.Column("unknown_timezone", sa.String(20), nullable=False, server_default="skip"),
    ]


def upgrade() -> None:
    op.add_column("list_records", sa.Column("timezone_source", sa.String(10), nullable=True))
    for column in _campaign_columns():
        op.add_column("campaigns", column)
    if op.get_bind().dialect.name == "postgresql":
        # varchar(64) -> text is a catalogue change only: no table rewrite.
        op.alter_column(
            "list_records",
            "timezone",
            type_=sa.Text(),
            existing_type=sa.String(64),
            existing_nullable=True,
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "list_records",
            "timezone",
            type_=sa.String(64),
            existing_type=sa.Text(),
            existing_nullable=True,
            postgresql_using="left(timezone, 64)",
        )
    with op.batch_alter_table("campaigns") as batch:
        for column in reversed(_campaign_columns()):
            batch.drop_column(column.name)
    with op.batch_alter_table("list_records") as batch:
        batch.drop_column("timezone_source")
