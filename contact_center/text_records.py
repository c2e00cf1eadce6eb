"""Finding the value that makes a row of delimited text too long, in bounded memory.

Pure: reads a text stream and nothing else. Arrow reads delimited text in blocks
and cannot read a row longer than a block; it says so, and which row, but not why.
:func:`find_long_value` finds out on that error path: it walks to the row,
counting rows as the readers do (the header is row 1; a quoted newline does not
start a row; blank lines do not count), and then along its fields until one is
longer than the limit. It reads a line at most a piece at a time and stops at the
limit, so a row of a gigabyte costs what a piece costs.
"""

from __future__ import annotations

import re
from typing import TextIO

__all__ = ["find_long_value"]

_PIECE_CHARS = 1 << 16
_BLANK_LINES = ("\n", "\r", "\r\n")
# The states of a field: before its first character, unquoted, inside quotes, and just
# after a quote inside quotes (a doubled quote, or the closing one).
_START, _PLAIN, _QUOTED, _QUOTE = range(4)


def find_long_value(
    handle: TextIO, *, row: int, delimiter: str, max_chars: int, max_fields: int
) -> int | None:
    """The position of the first value of ``row`` that is longer than ``max_chars``.

    Args:
        handle: the file's text from its start, opened with ``newline=""``.
        row: the row (the header is row 1; blank lines are not counted).
        delimiter: the field delimiter; ``"`` quotes fields (doubled inside them).
        max_chars: the longest a value may be.
        max_fields: look at this many fields at most.

    Returns:
        The 0-based position of the value in the row; None when the row has no such
        value among its first ``max_fields``, or the file has fewer rows.
    """
    if not _skip_rows(handle, row - 1):
        return None
    return _long_field(handle, delimiter, max_chars, max_fields)


def _skip_rows(handle: TextIO, count: int) -> bool:
    """Read past ``count`` rows: True when the next row starts where ``handle`` is."""
    seen = 0
    in_quotes = False
    at_start = True
    while seen < count:
        piece = handle.readline(_PIECE_CHARS)
        if not piece:
            return False
        if at_start and not in_quotes and piece in _BLANK_LINES:
            continue
        at_start = False
        # A doubled quote inside quotes counts twice, so the parity holds.
        if piece.count('"') % 2:
            in_quotes = not in_quotes
        if not in_quotes and piece[-1] in "\r\n":
            seen += 1
            at_start = True
    return True


def _long_field(handle: TextIO, delimiter: str, max_chars: int, max_fields: int) -> int | None:
    """Walk one row's fields from its start; the first longer than ``max_chars``."""
    stops = re.compile(f"[{re.escape(delimiter)}\r\n]")
    field = length = 0
    state = _START
    while piece := handle.read(_PIECE_CHARS):
        at = 0
        while at < len(piece):
            if state == _START:
                state = _QUOTED if piece[at] == '"' else _PLAIN
                at += state == _QUOTED
            elif state == _PLAIN:
                stop = stops.search(piece, at)
                end = stop.start() if stop else len(piece)
                length += end - at
                if length > max_chars:
                    return field
                if stop is None:
                    break
                if piece[end] != delimiter:
                    return None  # the row ends
                field, length, state, at = field + 1, 0, _START, end + 1
                if field >= max_fields:
                    return None
            elif state == _QUOTED:
                end = piece.find('"', at)
                length += (end if end >= 0 else len(piece)) - at
                if length > max_chars:
                    return field
                if end < 0:
                    break
                state, at = _QUOTE, end + 1
            else:  # a doubled quote is one character of the value
                if piece[at] == '"':
                    length, state, at = length + 1, _QUOTED, at + 1
                else:
                    state = _PLAIN
    return None
