"""Which contact-centre database a flow works on."""

from __future__ import annotations

from typing import cast

from prefect.exceptions import ObjectNotFound as PrefectObjectNotFound
from sqlalchemy.engine import Engine

from blocks.database import ContactCenterDatabase
from contact_center.db import create_db_engine, ensure_schema
from contact_center.settings import DEFAULT_DATABASE_BLOCK, get_settings

__all__ = ["contact_center_engine"]


def _saved_block(name: str) -> ContactCenterDatabase | None:
    try:
        return cast(ContactCenterDatabase, ContactCenterDatabase.load(name))
    except (ValueError, PrefectObjectNotFound):
        return None


def contact_center_engine(block_name: str = DEFAULT_DATABASE_BLOCK) -> Engine:
    """The migrated engine of the contact-centre database.

    The saved ``ContactCenterDatabase`` block named ``block_name`` wins; without one,
    ``CCTASKS_DATABASE_URL``; without that, SQLite at ``.cctasks/contact-center.db``.
    The first use in a process applies the migrations.
    """
    block = _saved_block(block_name)
    if block is not None:
        return block.get_engine()
    return ensure_schema(create_db_engine(get_settings().database_url))
