"""The read limits, checked on each chunk of a file as it streams.

Pure: no I/O, no Prefect. :class:`ReadGuard` checks the chunks that a
:class:`~contact_center.parsing.table_reader.TableReader` yields, before they go further: the rows
so far, the longest value and the time taken. :func:`limit_exceeded` makes the one
error that every read limit gives (the readers use it for the limits they check
themselves: a workbook's size, a header's width, a row longer than a read block).

The checks cost next to nothing per chunk: a row count; per column, the size of
its text data, which bounds its longest value (most columns stop there); for a
column with more data than one value may hold, one ``binary_length`` and ``max``
(the characters are counted only when a value has more bytes than the limit allows
characters); and one clock reading.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from contact_center.exceptions import LimitExceeded
from contact_center.settings import READ_LIMIT_VARIABLES, ReadLimits

__all__ = ["ReadGuard", "limit_exceeded"]


def limit_exceeded(
    what: str,
    limits: ReadLimits,
    limit: str,
    *,
    file: str,
    row: int | None = None,
    column: str | None = None,
) -> LimitExceeded:
    """The error for a file that crosses the read limit ``limit``.

    Args:
        what: what crossed it, e.g. ``"the value is 52,428,800 characters long"``.
        limits: the limits in force.
        limit: the name of one of them (a field of :class:`ReadLimits`).
        file: the file's name.
        row: the row, if known.
        column: the column, if known.

    Returns:
        An error whose message names the file (row, column), the limit's value and
        the environment variable that sets it.
    """
    value = getattr(limits, limit)
    return LimitExceeded(
        f"{what} (the limit is {value:,} {_UNITS[limit]}; "
        f"set {READ_LIMIT_VARIABLES[limit]} to change it)",
        file=file,
        row=row,
        column=column,
    )


_UNITS = {
    "max_xlsx_bytes": "bytes",
    "max_xlsx_strings": "texts",
    "max_rows": "rows",
    "max_field_chars": "characters",
    "max_columns": "columns",
    "max_read_seconds": "seconds",
}


class ReadGuard:
    """Checks one read of a file, chunk by chunk, against the read limits.

    Args:
        file: the file's name, for messages.
        limits: the limits.
        clock: seconds on a monotonic clock (tests pass their own).
    """

    def __init__(
        self, file: str, limits: ReadLimits, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.file = file
        self.limits = limits
        self._clock = clock
        self._deadline = clock() + limits.max_read_seconds
        self._rows = 0

    def check(self, table: pa.Table, first_row: int) -> None:
        """Check the next chunk of rows (``first_row``: the file row of its first row).

        Raises:
            LimitExceeded: the rows so far, a value or the time crosses its limit.
        """
        self._rows += table.num_rows
        if self._rows > self.limits.max_rows:
            over = table.num_rows - (self._rows - self.limits.max_rows)
            raise limit_exceeded(
                "the file has too many data rows",
                self.limits,
                "max_rows",
                file=self.file,
                row=first_row + over,
            )
        for name, column in zip(table.column_names, table.columns, strict=True):
            self._check_values(column, name, first_row)
        self.check_time(first_row + table.num_rows - 1)

    def check_time(self, row: int | None = None) -> None:
        """Fail once the read has taken longer than its limit (``row``: where it is)."""
        if self._clock() > self._deadline:
            where = f"; it had read up to row {row:,}" if row is not None else ""
            raise limit_exceeded(
                f"reading the file took too long{where}",
                self.limits,
                "max_read_seconds",
                file=self.file,
            )

    def _check_values(self, column: pa.ChunkedArray, name: str, first_row: int) -> None:
        limit = self.limits.max_field_chars
        # A value has no more characters than bytes, nor more bytes than its column's data.
        if column.nbytes <= limit:
            return
        start = 0
        for array in column.chunks:
            if array.nbytes > limit:
                lengths = pc.binary_length(array)
                if pc.max(lengths).as_py() > limit:
                    chars = np.asarray(pc.fill_null(pc.utf8_length(array), 0))
                    over = np.flatnonzero(chars > limit)
                    if len(over):
                        at = int(over[0])
                        raise limit_exceeded(
                            f"the value is {int(chars[at]):,} characters long",
                            self.limits,
                            "max_field_chars",
                            file=self.file,
                            row=first_row + start + at,
                            column=name,
                        )
            start += len(array)
