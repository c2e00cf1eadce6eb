"""PostgreSQL's bulk path: one ``COPY ... FROM STDIN`` in text format, fed by a thread.

Private to :mod:`contact_center.storage.bulk`. The rows are rendered over whole columns by
Arrow and handed, a block at a time, to psycopg's queued COPY writer, whose thread
sends while Python renders the next part.
"""

from __future__ import annotations

from contextlib import ExitStack
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

from contact_center.parsing.arrow_text import string_bytes
from contact_center.settings import COPY_BLOCK_BYTES

# Pieces (psycopg cuts writes into 128 KiB) that may wait for the COPY writer thread.
_COPY_QUEUE_BLOCKS = 64
# COPY text format: the backslash first, so that the escapes it adds stay as they are.
_COPY_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))


class CopyStream:
    """One ``COPY`` into a table, open until ``stack`` closes; parts are added with :meth:`add`.

    Args:
        dbapi: the psycopg connection of the caller's transaction.
        stack: where the cursor and the COPY are entered (the bulk writer's).
        table: the table's name (a checked identifier).
        columns: the columns of every part, then the constants' columns.
        constants: column -> one value for every row.
    """

    def __init__(
        self,
        dbapi: Any,
        stack: ExitStack,
        table: str,
        columns: list[str],
        constants: dict[str, Any],
    ) -> None:
        self._constants = constants
        cursor = stack.enter_context(dbapi.cursor())
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table),
            sql.SQL(", ").join(sql.Identifier(c) for c in [*columns, *constants]),
        )
        self._copy = stack.enter_context(
            cursor.copy(statement, writer=_BoundedQueuedWriter(cursor))
        )

    def add(self, arrow: pa.Table) -> int:
        """Send one part's rows (the constants are added to each); return their count."""
        for name, value in self._constants.items():
            arrow = arrow.append_column(name, _repeated(value, arrow.num_rows))
        data = _copy_text(arrow)
        for start in range(0, len(data), COPY_BLOCK_BYTES):
            self._copy.write(data[start : start + COPY_BLOCK_BYTES])
        return int(arrow.num_rows)


class _BoundedQueuedWriter(QueuedLibpqWriter):
    """psycopg's queued COPY writer, with a short queue.

    The writer thread sends while Python renders the next part, which is the point;
    but psycopg's queue holds 1024 blocks, so a fast producer could park a whole
    file in memory. A short queue makes the producer wait for the server instead.
    """

    def __init__(self, cursor: Any) -> None:
        super().__init__(cursor)
        self._queue = type(self._queue)(maxsize=_COPY_QUEUE_BLOCKS)


def _repeated(value: Any, count: int) -> pa.Array:
    """A constant column for COPY. A time goes as ISO text, which the server parses
    more cheaply than Arrow formats a zoned timestamp."""
    if value is None:
        return pa.nulls(count)
    if isinstance(value, datetime):
        return pa.repeat(pa.scalar(value.isoformat(), pa.string()), count)
    return pa.repeat(value, count)


def _copy_text(arrow: pa.Table) -> memoryview:
    """The rows in COPY's text format: tab-separated, ``\\N`` for NULL, one line a row.

    Built over whole columns by Arrow. The server reads it faster than CSV (nothing
    is quoted, so a JSON document's quotes are not doubled), and only a column that
    holds a backslash, tab or line break pays for escaping.
    """
    columns = []
    for column in arrow.columns:
        values = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        if not pa.types.is_string(values.type):
            values = pc.cast(values, pa.string())
        if len(values) > values.null_count:
            # Look at the bytes (cheaper than a regex over the column), and replace
            # only the characters that occur.
            data = string_bytes(values)[1]
            for char, escaped in _COPY_ESCAPES:
                if (data == ord(char)).any():
                    values = pc.replace_substring(values, char, escaped)
        columns.append(values)
    lines = pc.binary_join_element_wise(
        *columns, "\t", null_handling="replace", null_replacement="\\N"
    )
    lines = pc.binary_join_element_wise(lines, "", "\n")  # each line ends with a newline
    _, offsets, data = lines.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int32)[lines.offset : lines.offset + len(lines) + 1]
    return memoryview(data)[int(bounds[0]) : int(bounds[-1])]
