"""Reading list files: delimited text, XLSX and fixed-width, in chunks.

Pure: this module reads one local file and returns text. It knows nothing of
lists, phones or Prefect. :func:`read_table` detects what it can (format,
encoding, delimiter), checks that the bytes have the shape the format promises,
and returns a :class:`TableReader` that yields :class:`Chunk` objects of at most
``chunk_rows`` rows, so that memory does not grow with the file.
Detection is in :mod:`~contact_center.parsing.detection`, the header checks in
:mod:`~contact_center.parsing.headers`, the reading in chunks in
:mod:`~contact_center.parsing.table_reader` and an XLSX sheet's cells in
:mod:`~contact_center.parsing.xlsx_cells`.

Every cell comes back as text (``str``; an empty cell is ``""``, never NA).
Row numbers are the ones a user can find in the file: for delimited text the
header is row 1 and each record is one row (a quoted newline does not start a
row; blank lines are skipped and not counted); for XLSX they are the sheet's
own row numbers; for fixed-width they count lines from the first one (blank lines
after the header are skipped and not counted, as for delimited text).

Every read is bounded by the read limits (:class:`~contact_center.settings.ReadLimits`):
a workbook is checked before openpyxl opens it (:mod:`contact_center.parsing.workbook_check`),
a header's width when it is read, and each chunk's rows, values and time as it is
yielded (:class:`~contact_center.parsing.limits.ReadGuard`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO

from contact_center.exceptions import InvalidFile, InvalidParameter, quoted, quoted_columns
from contact_center.parsing.detection import (
    DELIMITERS,
    FORMATS,
    MAGIC,
    SAMPLE_BYTES,
    check_delimiter,
    check_encoding,
    check_text_shape,
    check_widths,
    choose_delimiter,
    decode_sample,
    detect_encoding,
    encoding_of_head,
    format_from_name,
    sniff_records,
)
from contact_center.parsing.encodings import bom_encoding, decoding_encoding
from contact_center.parsing.headers import check_header
from contact_center.parsing.table_reader import TableReader
from contact_center.parsing.text_records import block_bytes, long_header_error, read_head
from contact_center.parsing.workbook_check import check_workbook
from contact_center.parsing.xlsx_cells import open_workbook, sheet_rows, xlsx_header_row
from contact_center.settings import CHUNK_ROWS, ReadLimits, get_settings

__all__ = ["read_arriving_table", "read_table"]


def read_table(
    path: Path,
    *,
    name: str,
    format: str = "auto",
    delimiter: str | None = None,
    encoding: str | None = None,
    sheet: str | None = None,
    widths: list[int] | None = None,
    columns: list[str] | None = None,
    chunk_rows: int = CHUNK_ROWS,
    limits: ReadLimits | None = None,
) -> TableReader:
    """Open a list file, detect what it is, and check that it has that shape.

    Args:
        path: the local file.
        name: the file's name for messages (e.g. the remote name of a download).
        format: ``auto`` (by the name's extension, else by content), ``csv`` (any
            delimited text), ``xlsx`` or ``fixed``.
        delimiter: ``,`` ``;`` ``\\t`` ``|`` (or ``comma``, ``semicolon``, ``tab``,
            ``pipe``); detected when not given.
        encoding: any Python codec name; detected when not given (UTF-8 with or
            without BOM, UTF-16 and UTF-32 with BOM, Windows-1252, ISO-8859-1).
        sheet: the XLSX sheet to read; the first sheet when not given.
        widths: fixed-width column widths, in characters.
        columns: fixed-width column names. When given, the file has no header
            line; when not, its first line is the header, cut by ``widths``.
        chunk_rows: the most rows in one chunk.
        limits: the read limits; the settings' when not given.

    Returns:
        A reader whose ``header``, ``format``, ``encoding`` and ``delimiter`` are set.

    Raises:
        InvalidParameter: an option is not valid.
        InvalidFile: the file is empty, binary, of another format than its name
            says, has no header, a duplicate column name, or cannot be decoded.
        LimitExceeded: the file crosses a read limit (a workbook's size, rows or
            values; a header's width); iterating the reader checks the rest.
    """
    reader = read_arriving_table(
        path,
        name=name,
        format=format,
        delimiter=delimiter,
        encoding=encoding,
        sheet=sheet,
        widths=widths,
        columns=columns,
        chunk_rows=chunk_rows,
        limits=limits,
    )
    return reader


def read_arriving_table(
    path: Path,
    *,
    name: str,
    format: str = "auto",
    delimiter: str | None = None,
    encoding: str | None = None,
    sheet: str | None = None,
    widths: list[int] | None = None,
    columns: list[str] | None = None,
    chunk_rows: int = CHUNK_ROWS,
    opener: Callable[[], IO[bytes]] | None = None,
    size: int | None = None,
    complete: Callable[[], Path] | None = None,
    limits: ReadLimits | None = None,
) -> TableReader:
    """:func:`read_table` for a file that may still be arriving.

    A file that is still arriving (a download) is read through ``opener``, which
    returns its bytes from the start and waits for more, and ``complete``, which
    waits for the whole file. Detection reads only the file's head: an XLSX
    workbook, and a head that is not UTF-8 (telling Windows-1252 from ISO-8859-1
    takes every byte) wait for the whole file; a UTF-8 head without a BOM is a
    guess, ``encoding_guessed``: a later byte that is not UTF-8 makes the reader
    detect the encoding from the whole file and go on in it, from the row where
    the guess failed.

    Args:
        path, name, format, delimiter, encoding, sheet, widths, columns, chunk_rows,
            limits: as for :func:`read_table`.
        opener: for a file still arriving, returns a binary file of its bytes
            (``path`` is then the file being written).
        size: with ``opener``, the size the file will have.
        complete: with ``opener``, waits for the whole file and returns its path.

    Returns:
        A reader whose ``header``, ``format``, ``encoding`` and ``delimiter`` are set.

    Raises:
        InvalidParameter: an option is not valid.
        InvalidFile: the file is empty, binary, of another format than its name
            says, has no header, a duplicate column name, or cannot be decoded.
    """
    if format not in FORMATS:
        raise InvalidParameter(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    if chunk_rows < 1:
        raise InvalidParameter(f"chunk_rows must be at least 1, not {chunk_rows}")
    delimiter = check_delimiter(delimiter)
    encoding = check_encoding(encoding)
    if widths is not None or columns is not None:
        if format == "auto":
            format = "fixed"
    if format == "fixed":
        check_widths(widths, columns)
    limits = limits or get_settings().read_limits
    try:
        if opener is None:
            size = path.stat().st_size
        with opener() if opener is not None else path.open("rb") as handle:
            head = read_head(handle, SAMPLE_BYTES, most=block_bytes(limits))
    except OSError as exc:
        raise InvalidFile(f"cannot be opened: {exc.strerror or exc}", file=name) from exc
    size = len(head) if size is None else size
    if size == 0:
        raise InvalidFile("the file is empty (no header row)", file=name)
    if format == "auto":
        format = format_from_name(name) or ("xlsx" if head.startswith(b"PK\x03\x04") else "csv")
    if format == "xlsx":
        if complete is not None:
            path = complete()  # a workbook is a ZIP: it is read whole
        return _read_xlsx(
            path, name=name, head=head, sheet=sheet, chunk_rows=chunk_rows, limits=limits
        )
    check_text_shape(head, name=name, format=format, encoding=encoding or bom_encoding(head))
    if encoding is not None:
        encoding = decoding_encoding(encoding, head)
    guessed = False
    if encoding is None and complete is not None and size > len(head):
        encoding = encoding_of_head(head)
        guessed = encoding == "utf-8"
        if encoding is None:
            path = complete()
    encoding = encoding or detect_encoding(path, head=head, whole=size > len(head))
    sample = decode_sample(head, encoding, cut=size > len(head), name=name)
    if size > len(head) and columns is None and not ("\n" in sample or "\r" in sample):
        raise long_header_error(sample, [delimiter] if delimiter else DELIMITERS, name, limits)
    if format == "fixed":
        assert widths is not None
        reader = _read_fixed(path, name, sample, encoding, widths, columns, chunk_rows, limits)
        reader.opener, reader.complete, reader.encoding_guessed = opener, complete, guessed
        return reader
    records = sniff_records(sample, delimiter, cut=size > len(head))
    chosen = delimiter or choose_delimiter(records)
    rows = records[chosen]
    if not rows:
        raise InvalidFile("there is no header row", file=name)
    header = check_header(rows[0], name, limits)
    return TableReader(
        path=path,
        name=name,
        format="csv",
        header=header,
        chunk_rows=chunk_rows,
        encoding=encoding,
        delimiter=chosen,
        opener=opener,
        complete=complete,
        encoding_guessed=guessed,
        limits=limits,
    )


def _read_fixed(
    path: Path,
    name: str,
    sample: str,
    encoding: str,
    widths: list[int],
    columns: list[str] | None,
    chunk_rows: int,
    limits: ReadLimits,
) -> TableReader:
    if columns is None:
        line = next((line for line in sample.splitlines() if line.strip()), None)
        if line is None:
            raise InvalidFile("there is no header line", file=name)
        cells, start = [], 0
        for width in widths:
            cells.append(line[start : start + width].strip())
            start += width
        if line[start:].strip():
            raise InvalidFile(
                f"the header line is longer than the column spec ({start} characters); "
                "check `widths`",
                file=name,
                row=1,
            )
        header = check_header(cells, name, limits)
    else:
        header = list(columns)
    return TableReader(
        path=path,
        name=name,
        format="fixed",
        header=header,
        chunk_rows=chunk_rows,
        encoding=encoding,
        widths=list(widths),
        has_header_row=columns is None,
        limits=limits,
    )


def _read_xlsx(
    path: Path, *, name: str, head: bytes, sheet: str | None, chunk_rows: int, limits: ReadLimits
) -> TableReader:
    if not head.startswith(b"PK\x03\x04"):
        what = next((w for magic, w in MAGIC if head.startswith(magic)), None)
        if what is None:
            what = "binary data" if b"\x00" in head else "text (delimited text?)"
        raise InvalidFile(f"expected an XLSX workbook but the file is {what}", file=name)
    check_workbook(path, name=name, limits=limits)
    with open_workbook(path, name) as workbook:
        names = list(workbook.sheetnames)
        if sheet is not None and sheet not in names:
            raise InvalidFile(
                f"there is no sheet {quoted(sheet)}; the workbook has {quoted_columns(names)}",
                file=name,
            )
        worksheet = workbook[sheet] if sheet else workbook.worksheets[0]
        header_row, cells = xlsx_header_row(sheet_rows(worksheet, name))
        if header_row == 0:
            raise InvalidFile(
                f"the sheet {quoted(worksheet.title)} is empty (no header row)", file=name
            )
        while cells and not cells[-1]:
            cells.pop()
        header = check_header(cells, name, limits)
        title = worksheet.title
    return TableReader(
        path=path,
        name=name,
        format="xlsx",
        header=header,
        chunk_rows=chunk_rows,
        sheet=title,
        limits=limits,
    )
