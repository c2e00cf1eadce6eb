"""The fields of a calling-list record: their names, in order, and their longest values.

Parsing checks a row against these and storage declares its columns from them, so the
rules do not depend on the database layer. ``tests/storage/test_list_load.py`` pins the
lengths to the ``list_records`` columns.
"""

from __future__ import annotations

__all__ = ["DERIVED_FIELDS", "FIELD_LENGTHS", "LOADED_FIELDS", "PHONE_FIELDS", "RECORD_FIELDS"]

#: The typed fields of a list record, in order; any other column is custom.
PHONE_FIELDS = tuple(f"phone{i}" for i in range(1, 11))
RECORD_FIELDS = (
    "account",
    *PHONE_FIELDS,
    "first_name",
    "last_name",
    "zip",
    "state",
    "timezone",
    "priority",
    "call_at",
)
#: The fields the import derives (never mapped from a file), stored after RECORD_FIELDS.
DERIVED_FIELDS = ("timezone_source",)
#: Every field an import writes, in order.
LOADED_FIELDS = (*RECORD_FIELDS, *DERIVED_FIELDS)

#: The longest text each length-limited field takes (the others are unlimited text).
FIELD_LENGTHS: dict[str, int] = {
    "record_key": 200,
    "account": 200,
    **{phone: 20 for phone in PHONE_FIELDS},
    "zip": 40,
    "state": 40,
    "priority": 40,
    "call_at": 64,
}
