"""Delimited and fixed-width text: its head, its read blocks, and its read errors.

Pure: reads a local file or a stream and nothing else. Arrow reads text in blocks
(:func:`block_bytes`) and cannot read a row longer than a block; its errors do not
count rows. This module reads the head that detection needs (the whole first line,
however wide, up to a block: :func:`read_head`), and turns Arrow's errors into
ours (:func:`read_error`): the row that is ragged or cannot be decoded, and, for a
row longer than a block, the value that is over the limit (:func:`find_long_value`).

The scans here run only on those error paths, each in bounded memory: they count
rows as the readers do (the header is row 1; a quoted newline does not start a
row; blank lines do not count), read a line at most a piece at a time, and stop at
the limit, so a row of a gigabyte costs what a piece costs.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, TextIO

from contact_center.exceptions import InvalidFile
from contact_center.parsing.limits import limit_exceeded
from contact_center.settings import ReadLimits

if TYPE_CHECKING:
    from contact_center.parsing.table_reader import TableReader

__all__ = [
    "MIN_BLOCK_BYTES",
    "block_bytes",
    "find_long_value",
    "long_header_error",
    "read_error",
    "read_head",
    "read_up_to",
]

#: Arrow reads text in blocks of this size, or of the value limit if that is larger.
MIN_BLOCK_BYTES = 1 << 20
_SCAN_BYTES = 4 << 20
_PIECE_CHARS = 1 << 16
_BLANK_LINES = ("\n", "\r", "\r\n")
# The states of a field: before its first character, unquoted, inside quotes, and just
# after a quote inside quotes (a doubled quote, or the closing one).
_START, _PLAIN, _QUOTED, _QUOTE = range(4)


def block_bytes(limits: ReadLimits) -> int:
    """The size of Arrow's read blocks, which a row of text must fit in: the value
    limit, and at least :data:`MIN_BLOCK_BYTES`."""
    return max(MIN_BLOCK_BYTES, limits.max_field_chars)


def read_up_to(handle: IO[bytes], count: int) -> bytes:
    """``count`` bytes, or fewer at the end (a raw file may return less per read)."""
    parts: list[bytes] = []
    wanted = count
    while wanted > 0 and (part := handle.read(wanted)):
        parts.append(part)
        wanted -= len(part)
    return b"".join(parts)


def read_head(handle: IO[bytes], sample: int, *, most: int) -> bytes:
    """A file's first bytes for detection: ``sample`` bytes, and more until they hold a
    line end (so the header is whole, however wide), up to ``most`` bytes."""
    head = read_up_to(handle, sample)
    while b"\n" not in head and b"\r" not in head and sample <= len(head) < most:
        more = read_up_to(handle, min(len(head), most - len(head)))
        if not more:
            break
        head += more
    return head


def long_header_error(
    sample: str, delimiters: Sequence[str], name: str, limits: ReadLimits
) -> InvalidFile:
    """The error for a header with no line end in a block: too many columns, or too long.

    Args:
        sample: the block's text.
        delimiters: the delimiter, or the candidates.
        name: the file's name.
        limits: the read limits.
    """
    columns = max(sample.count(d) for d in delimiters) + 1
    if columns > limits.max_columns:
        return limit_exceeded(
            f"the header has more than {columns - 1:,} columns",
            limits,
            "max_columns",
            file=name,
            row=1,
        )
    return limit_exceeded(
        f"the header is longer than the {_row_bytes_text(limits)}",
        limits,
        "max_field_chars",
        file=name,
        row=1,
    )


def read_error(reader: TableReader, text: str, near_row: int) -> InvalidFile:
    """Our error for Arrow's error ``text`` while ``reader`` read near ``near_row``,
    naming the first bad row (Arrow's own messages do not count rows)."""
    if "straddling" in text:  # a row longer than a block: exactly the row after the last read
        return _long_row_error(reader, near_row)
    if "invalid UTF8" in text or "decode" in text.lower():
        return InvalidFile(
            f"the text is not valid {reader.encoding}; set `encoding` to the file's encoding",
            file=reader.name,
            row=_first_undecodable_row(reader.open_bytes(), reader.encoding or "utf-8"),
        )
    if reader.format == "csv":
        found = _first_ragged_row(
            reader.open_bytes(),
            reader.encoding or "utf-8",
            reader.delimiter or ",",
            len(reader.header),
        )
        if found is not None:
            row, fields = found
            return InvalidFile(
                f"expected {len(reader.header)} fields (as in the header) but found {fields}; "
                "check the delimiter and quoting",
                file=reader.name,
                row=row,
            )
    if reader.format == "fixed" and "Expected 1 columns" in text:
        return InvalidFile(
            "a line holds a control character (\\x1f); this is not a fixed-width text file",
            file=reader.name,
        )
    # Arrow's message ends with the row's text: a file's contents stay out of errors.
    text = re.sub(r"(got \d+):.*", r"\1", text, flags=re.DOTALL)
    return InvalidFile(f"cannot be read near row {near_row}: {text}", file=reader.name)


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


def _long_row_error(reader: TableReader, row: int) -> InvalidFile:
    """The error for a row longer than a read block: the value over the limit, if any."""
    if reader.format == "csv":
        assert reader.encoding is not None and reader.delimiter is not None
        source = reader.open_bytes()
        with io.TextIOWrapper(source, reader.encoding, errors="replace", newline="") as text:
            found = find_long_value(
                text,
                row=row,
                delimiter=reader.delimiter,
                max_chars=reader.limits.max_field_chars,
                max_fields=len(reader.header),
            )
        if found is not None:
            return limit_exceeded(
                "the value is too long",
                reader.limits,
                "max_field_chars",
                file=reader.name,
                row=row,
                column=reader.header[found],
            )
    return limit_exceeded(
        f"the row is longer than the {_row_bytes_text(reader.limits)}",
        reader.limits,
        "max_field_chars",
        file=reader.name,
        row=row,
    )


def _row_bytes_text(limits: ReadLimits) -> str:
    return (
        f"{block_bytes(limits):,} bytes that a row of a text file may take (as many as the "
        "limit on a value's characters, and at least 1 MiB)"
    )


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


def _first_ragged_row(
    source: IO[bytes], encoding: str, delimiter: str, width: int
) -> tuple[int, int] | None:
    """The first record whose field count differs from the header's (slow; errors only).

    None also when a field before it is longer than the csv module takes (128 Ki
    characters): the caller then reports Arrow's error, without the exact row.
    """
    with io.TextIOWrapper(source, encoding=encoding, newline="", errors="replace") as handle:
        row = 0
        try:
            for record in csv.reader(handle, delimiter=delimiter, quotechar='"', doublequote=True):
                if not record:
                    continue
                row += 1
                if len(record) != width:
                    return row, len(record)
        except csv.Error:
            return None
    return None


def _first_undecodable_row(source: IO[bytes], encoding: str) -> int | None:
    """The line that holds the first byte the encoding cannot decode (errors only)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    lines = 1
    with source as handle:
        while block := handle.read(_SCAN_BYTES):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                return lines + block[: exc.start].count(b"\n")
            lines += block.count(b"\n")
    return None
