"""Creating the row of a new calling or exclusion list, when two first imports race.

Two first imports of the same new list both find no row and both insert one. A
plain INSERT makes the second fail on the unique name with a raw
``UniqueViolation`` once the first commits. ``INSERT ... ON CONFLICT (name) DO
NOTHING`` instead waits for the first transaction, then inserts nothing: the second
import then locks the row the first one committed and proceeds as an import into an
existing list (or creates the list, if the first one rolled back).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

__all__ = ["insert_new_list"]


def insert_new_list(conn: Connection, table: sa.Table, **values: Any) -> int | None:
    """Insert a list row named ``values["name"]`` unless one exists; return its id.

    Args:
        conn: the import's transaction (PostgreSQL or SQLite).
        table: ``calling_lists`` or ``exclusion_lists`` (unique on ``name``).
        **values: the new row's columns.

    Returns:
        The new row's id, or None when another transaction had created the list
        (on PostgreSQL, after waiting for that transaction to commit).
    """
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    insert = (
        dialect.insert(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[table.c.name])
        .returning(table.c.id)
    )
    new_id = conn.execute(insert).scalar()
    return None if new_id is None else int(new_id)
