"""Which contact-centre database a flow works on."""

from __future__ import annotations

from typing import cast

from prefect.exceptions import ObjectNotFound as PrefectObjectNotFound
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from blocks.database import ContactCenterDatabase
from contact_center.exceptions import InvalidParameter
from contact_center.settings import DEFAULT_DATABASE_BLOCK, get_settings
from contact_center.storage.db import create_db_engine, ensure_schema

__all__ = ["contact_center_engine"]


def _saved_block(name: str) -> ContactCenterDatabase | None:
    try:
        return cast(ContactCenterDatabase, ContactCenterDatabase.load(name))
    except (ValueError, PrefectObjectNotFound):
        return None
    except RuntimeError as exc:
        # A block saved before its url was checked (say, with a password in it):
        # Prefect wraps the validation error, whose message never quotes the value.
        if not isinstance(exc.__cause__, ValidationError):
            raise
        raise InvalidParameter(
            f"the Contact Center Database block {name!r} cannot be loaded: "
            f"{exc.__cause__.errors(include_input=False)[0]['msg']}; save it again"
        ) from None


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
