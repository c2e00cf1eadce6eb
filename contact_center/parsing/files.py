"""Reading list files: delimited text, XLSX and fixed-width, in chunks.

Pure: this module reads one local file and returns text. It knows nothing of
lists, phones or Prefect. :func:`read_table` detects what it can (format,
encoding, delimiter), checks that the bytes have the shape the format promises,
and returns a :class:`TableReader` that yields :class:`Chunk` objects of at most
``chunk_rows`` rows, so that memory does not grow with the file.

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

import codecs
import csv
import io
import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import cached_property
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv

from contact_center.exceptions import (
    InvalidFile,
    InvalidParameter,
    LimitExceeded,
    quoted,
    quoted_columns,
)
from contact_center.parsing.encodings import bom_encoding, decoding_encoding, text_for_shape_check
from contact_center.parsing.limits import ReadGuard, limit_exceeded
from contact_center.parsing.text_records import (
    MIN_BLOCK_BYTES,
    block_bytes,
    long_header_error,
    read_error,
    read_head,
)
from contact_center.parsing.workbook_check import check_workbook
from contact_center.settings import CHUNK_ROWS, ReadLimits, get_settings

__all__ = [
    "DELIMITERS",
    "DELIMITER_NAMES",
    "FORMATS",
    "Chunk",
    "TableReader",
    "detect_encoding",
    "match_column",
    "normalise_header",
    "read_arriving_table",
    "read_table",
    "string_bytes",
]

#: The formats that ``read_table`` accepts; ``auto`` detects one of the others.
FORMATS = ("auto", "csv", "xlsx", "fixed")
#: The delimiters that are detected, in order of preference on a tie.
DELIMITERS = (",", ";", "\t", "|")

#: The delimiters by name, as a parameter may give them.
DELIMITER_NAMES = {"comma": ",", "semicolon": ";", "tab": "\t", "\\t": "\t", "pipe": "|"}
_TEXT_SUFFIXES = {".csv", ".txt", ".tsv", ".tab", ".psv", ".dat", ".dnc"}
_XLSX_SUFFIXES = {".xlsx", ".xlsm"}
# Enough text to see the header and a few records; detection reads no more.
_SAMPLE_BYTES = 64 * 1024
_SNIFF_RECORDS = 50
# Rows in the first chunk; each next chunk doubles, up to ``chunk_rows``.
_FIRST_CHUNK_ROWS = 4096
_SCAN_BYTES = 4 << 20
# Bytes 0x80-0x9F that Windows-1252 leaves undefined: text with them is ISO-8859-1.
_CP1252_UNDEFINED = b"\x81\x8d\x8f\x90\x9d"
_C1_BYTES = bytes(range(0x80, 0xA0))
_CONTROL_BYTES = bytes([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x1A), *range(0x1C, 0x20)])
_FIXED_SEPARATOR = "\x1f"  # a control byte that text files never hold (checked up front)

# Signatures of files that are not text, with the name we give them in messages.
_MAGIC = (
    (b"PK\x03\x04", "a ZIP archive (an XLSX workbook?)"),
    (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        "a legacy Excel .xls (OLE2) file; save it as .xlsx or CSV",
    ),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
)


@dataclass(frozen=True)
class Chunk:
    """A run of consecutive data rows.

    Attributes:
        table: one ``string`` column per header column, named as in the header
            (no nulls: an empty cell is ``""``).
        first_row: the file row number of the first row.
    """

    table: pa.Table
    first_row: int

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, first_row: int) -> Chunk:
        """A chunk of the text columns of a DataFrame (NA becomes ``""``)."""
        columns = [
            pc.fill_null(pa.array(frame[c], type=pa.string(), from_pandas=True), "")
            for c in frame.columns
        ]
        return cls(pa.Table.from_arrays(columns, names=[str(c) for c in frame.columns]), first_row)

    @property
    def rows(self) -> int:
        """How many rows the chunk holds."""
        return int(self.table.num_rows)

    @cached_property
    def frame(self) -> pd.DataFrame:
        """The rows as a DataFrame of ``str`` columns (made on first use)."""
        frame: pd.DataFrame = self.table.to_pandas(types_mapper=_str_dtype)
        frame.columns = pd.Index(self.table.column_names)
        return frame


class TableReader:
    """A detected, checked table file; iterate it for :class:`Chunk` objects.

    Iterating opens the file again each time; ``rows_read`` counts the data rows
    of the last complete or current pass.

    Attributes:
        name: the file name used in messages.
        path: the local file.
        format: ``csv``, ``xlsx`` or ``fixed``.
        encoding: the text encoding (``None`` for XLSX).
        delimiter: the delimiter (``None`` unless ``csv``).
        header: the column names as in the file.
        sheet: the sheet read (XLSX only).
        widths: the column widths (fixed-width only).
        chunk_rows: the most rows in one chunk.
        rows_read: data rows yielded so far.
        limits: the read limits.
    """

    def __init__(
        self,
        *,
        path: Path,
        name: str,
        format: str,
        header: list[str],
        chunk_rows: int,
        encoding: str | None = None,
        delimiter: str | None = None,
        sheet: str | None = None,
        widths: list[int] | None = None,
        has_header_row: bool = True,
        opener: Callable[[], IO[bytes]] | None = None,
        complete: Callable[[], Path] | None = None,
        encoding_guessed: bool = False,
        limits: ReadLimits | None = None,
    ) -> None:
        self.limits = limits or get_settings().read_limits
        self.path = path
        self.opener = opener
        self.complete = complete
        self.encoding_guessed = encoding_guessed
        self.name = name
        self.format = format
        self.header = header
        self.chunk_rows = chunk_rows
        self.encoding = encoding
        self.delimiter = delimiter
        self.sheet = sheet
        self.widths = widths
        self.has_header_row = has_header_row
        self.rows_read = 0

    def __repr__(self) -> str:
        return (
            f"TableReader({self.name!r}, format={self.format!r}, encoding={self.encoding!r}, "
            f"delimiter={self.delimiter!r}, columns={len(self.header)})"
        )

    def __iter__(self) -> Iterator[Chunk]:
        self.rows_read = 0
        guard = ReadGuard(self.name, self.limits)
        chunks = self._xlsx_chunks() if self.format == "xlsx" else self._text_chunks()
        for chunk in chunks:
            guard.check(chunk.table, chunk.first_row)
            self.rows_read += chunk.rows
            yield chunk

    # --- delimited text -----------------------------------------------------------

    def _text_chunks(self) -> Iterator[Chunk]:
        """The rows of a text file; with an encoding guessed from the head (UTF-8), the
        rows once more from where the guess failed, in the whole file's encoding."""
        chunks = self._fixed_chunks() if self.format == "fixed" else self._csv_chunks()
        if not self.encoding_guessed:
            yield from chunks
            return
        done = 0
        while True:
            try:
                chunk = next(chunks)
            except StopIteration:
                return
            except InvalidFile as exc:
                # pyarrow reports bytes that are not UTF-8 as an error of the read.
                if isinstance(exc, LimitExceeded) or not self._settle_encoding():
                    raise
                break
            done += chunk.rows
            yield chunk
        yield from self._after(done)

    def _settle_encoding(self) -> bool:
        """Detect the encoding from the whole file; whether it is not the guess."""
        assert self.complete is not None
        self.path, self.opener = self.complete(), None
        found = detect_encoding(self.path)
        self.encoding_guessed = False
        if found == self.encoding:
            return False
        self.encoding = found
        return True

    def _after(self, done: int) -> Iterator[Chunk]:
        """The rows after the first ``done``, which were read as UTF-8: that holds only
        if they (and the header) are ASCII, which reads the same in every encoding
        detected (Windows-1252, ISO-8859-1)."""
        mixed = not all(name.isascii() for name in self.header)
        for chunk in self._fixed_chunks() if self.format == "fixed" else self._csv_chunks():
            seen = min(max(done, 0), chunk.rows)
            done -= chunk.rows
            for column in chunk.table.slice(0, seen).columns if seen else []:
                mixed = mixed or not pc.all(pc.string_is_ascii(column), min_count=0).as_py()
            if mixed:
                raise InvalidFile(
                    f"the text is UTF-8 at first and {self.encoding} later (it mixes "
                    "encodings); set `encoding` to the file's encoding",
                    file=self.name,
                    row=chunk.first_row,
                )
            if seen < chunk.rows:
                yield Chunk(chunk.table.slice(seen), chunk.first_row + seen)

    def _arrow_names(self) -> list[str]:
        """The names Arrow sees for the header, so that every column is read as text."""
        return ["line"] if self.format == "fixed" else self.header

    def open_bytes(self) -> IO[bytes]:
        """The file's bytes from the start: the local file, or a download as it arrives."""
        if self.opener is not None:
            raw = cast(io.RawIOBase, self.opener())
            return io.BufferedReader(raw, buffer_size=MIN_BLOCK_BYTES)
        return self.path.open("rb")

    def _open_arrow(self, source: IO[bytes], **parse: Any) -> pv.CSVStreamingReader:
        assert self.encoding is not None
        try:
            return pv.open_csv(
                source,
                read_options=pv.ReadOptions(
                    block_size=block_bytes(self.limits),
                    use_threads=False,
                    encoding=_arrow_encoding(self.encoding),
                    **parse.pop("read", {}),
                ),
                parse_options=pv.ParseOptions(**parse),
                convert_options=pv.ConvertOptions(
                    column_types={n: pa.string() for n in self._arrow_names()},
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
        except pa.ArrowInvalid as exc:
            raise read_error(self, str(exc), 1) from exc

    def _csv_chunks(self) -> Iterator[Chunk]:
        with self.open_bytes() as source:
            reader = self._open_arrow(source, delimiter=self.delimiter, newlines_in_values=True)
            if len(reader.schema.names) != len(self.header):
                raise InvalidFile(
                    f"the header has {len(reader.schema.names)} columns when read in bulk but "
                    f"{len(self.header)} when sniffed; check the delimiter and quoting",
                    file=self.name,
                    row=1,
                )
            yield from self._rechunk(reader, first_row=2)

    def _rechunk(self, reader: pv.CSVStreamingReader, *, first_row: int) -> Iterator[Chunk]:
        """Re-cut Arrow's byte-sized batches into frames of ``chunk_rows`` rows.

        The first chunks are smaller (:data:`_FIRST_CHUNK_ROWS`, doubling up to
        ``chunk_rows``), so that whoever consumes them (the database, in an import
        that loads a file while it arrives) starts work sooner.
        """
        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        next_row = first_row
        size = min(self.chunk_rows, _FIRST_CHUNK_ROWS)
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except pa.ArrowInvalid as exc:
                raise read_error(self, str(exc), next_row + pending_rows) from exc
            pending.append(batch)
            pending_rows += batch.num_rows
            while pending_rows >= size:
                table = pa.Table.from_batches(pending, schema=reader.schema)
                yield self._chunk(table.slice(0, size), next_row)
                next_row += size
                rest = table.slice(size)
                pending, pending_rows = rest.to_batches(), rest.num_rows
                size = min(self.chunk_rows, 2 * size)
        if pending_rows:
            yield self._chunk(pa.Table.from_batches(pending, schema=reader.schema), next_row)

    def _chunk(self, table: pa.Table, first_row: int) -> Chunk:
        if self.format == "fixed":
            table = self._split_fixed(table.column(0).combine_chunks(), first_row)
        return Chunk(table=table.rename_columns(self.header), first_row=first_row)

    # --- fixed-width ----------------------------------------------------------------

    def _fixed_chunks(self) -> Iterator[Chunk]:
        # Skip physical lines up to and including the header (blank lines before it too).
        header_line = (
            _first_line_number(self.open_bytes(), self.encoding or "utf-8")
            if self.has_header_row
            else 0
        )
        with self.open_bytes() as source:
            reader = self._open_arrow(
                source,
                read={"column_names": ["line"], "skip_rows": header_line},
                delimiter=_FIXED_SEPARATOR,
                quote_char=False,
                escape_char=False,
            )
            yield from self._rechunk(reader, first_row=header_line + 1)

    def _split_fixed(self, lines: pa.Array, first_row: int) -> pa.Table:
        assert self.widths is not None
        total = sum(self.widths)
        beyond = pc.utf8_trim_whitespace(pc.utf8_slice_codeunits(lines, total))
        overflow = pc.greater(pc.utf8_length(beyond), 0)
        if pc.any(overflow).as_py():
            index = int(pc.index(overflow, True).as_py())
            raise InvalidFile(
                f"the line is longer than the column spec ({total} characters) and has "
                "text beyond it; check `widths`",
                file=self.name,
                row=first_row + index,
            )
        columns = []
        start = 0
        for width in self.widths:
            cell = pc.utf8_slice_codeunits(lines, start, start + width)
            columns.append(pc.utf8_trim_whitespace(cell))
            start += width
        return pa.table(columns, names=[f"c{i}" for i in range(len(columns))])

    # --- XLSX --------------------------------------------------------------------

    def _xlsx_chunks(self) -> Iterator[Chunk]:
        width = len(self.header)
        with _open_workbook(self.path, self.name) as workbook:
            sheet = workbook[self.sheet] if self.sheet else workbook.worksheets[0]
            rows = _sheet_rows(sheet, self.name)
            header_row, _ = _xlsx_header_row(rows)
            columns: list[list[str]] = [[] for _ in range(width)]
            blank = [""] * width
            buffered_blank = 0  # blank rows count only when data follows them
            first_row = header_row + 1
            last_row = header_row + self.limits.max_rows
            for row_number, values in enumerate(rows, start=header_row + 1):
                if row_number > last_row:  # blank rows too: openpyxl fills gaps with them
                    raise limit_exceeded(
                        "the sheet has too many data rows",
                        self.limits,
                        "max_rows",
                        file=self.name,
                        row=row_number,
                    )
                cells = [_xlsx_text(v) for v in values]
                if not any(cells):
                    buffered_blank += 1
                    continue
                self._check_xlsx_width(cells, row_number)
                cells = (cells + blank)[:width]
                for row in itertools.chain(itertools.repeat(blank, buffered_blank), [cells]):
                    for column, cell in zip(columns, row, strict=True):
                        column.append(cell)
                    if len(columns[0]) == self.chunk_rows:
                        yield self._xlsx_chunk(columns, first_row)
                        first_row += self.chunk_rows
                        columns = [[] for _ in range(width)]
                buffered_blank = 0
            if columns and columns[0]:
                yield self._xlsx_chunk(columns, first_row)

    def _check_xlsx_width(self, cells: list[str], row_number: int) -> None:
        for offset, extra in enumerate(cells[len(self.header) :], start=len(self.header)):
            if extra:
                raise InvalidFile(
                    "a value lies beyond the last header column",
                    file=self.name,
                    row=row_number,
                    column=_column_letter(offset),
                )

    def _xlsx_chunk(self, columns: list[list[str]], first_row: int) -> Chunk:
        arrays = [pa.array(column, type=pa.string()) for column in columns]
        return Chunk(table=pa.Table.from_arrays(arrays, names=self.header), first_row=first_row)


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
    delimiter = _check_delimiter(delimiter)
    encoding = _check_encoding(encoding)
    if widths is not None or columns is not None:
        if format == "auto":
            format = "fixed"
    if format == "fixed":
        _check_widths(widths, columns)
    limits = limits or get_settings().read_limits
    try:
        if opener is None:
            size = path.stat().st_size
        with opener() if opener is not None else path.open("rb") as handle:
            head = read_head(handle, _SAMPLE_BYTES, most=block_bytes(limits))
    except OSError as exc:
        raise InvalidFile(f"cannot be opened: {exc.strerror or exc}", file=name) from exc
    size = len(head) if size is None else size
    if size == 0:
        raise InvalidFile("the file is empty (no header row)", file=name)
    if format == "auto":
        format = _format_from_name(name) or ("xlsx" if head.startswith(b"PK\x03\x04") else "csv")
    if format == "xlsx":
        if complete is not None:
            path = complete()  # a workbook is a ZIP: it is read whole
        return _read_xlsx(
            path, name=name, head=head, sheet=sheet, chunk_rows=chunk_rows, limits=limits
        )
    _check_text_shape(head, name=name, format=format, encoding=encoding or bom_encoding(head))
    if encoding is not None:
        encoding = decoding_encoding(encoding, head)
    guessed = False
    if encoding is None and complete is not None and size > len(head):
        encoding = _encoding_of_head(head)
        guessed = encoding == "utf-8"
        if encoding is None:
            path = complete()
    encoding = encoding or detect_encoding(path, head=head, whole=size > len(head))
    sample = _decode_sample(head, encoding, cut=size > len(head), name=name)
    if size > len(head) and columns is None and not ("\n" in sample or "\r" in sample):
        raise long_header_error(sample, [delimiter] if delimiter else DELIMITERS, name, limits)
    if format == "fixed":
        assert widths is not None
        reader = _read_fixed(path, name, sample, encoding, widths, columns, chunk_rows, limits)
        reader.opener, reader.complete, reader.encoding_guessed = opener, complete, guessed
        return reader
    records = _sniff_records(sample, delimiter, cut=size > len(head))
    chosen = delimiter or _choose_delimiter(records)
    rows = records[chosen]
    if not rows:
        raise InvalidFile("there is no header row", file=name)
    header = _check_header(rows[0], name, limits)
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


def _encoding_of_head(head: bytes) -> str | None:
    """The encoding that the head of a longer file shows: its BOM's, else UTF-8 when the
    head is UTF-8 (a guess: a later byte may say otherwise), else None (it takes the
    whole file to tell Windows-1252 from ISO-8859-1)."""
    if bom := bom_encoding(head):
        return bom
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head)  # a cut last character is fine
    except UnicodeDecodeError:
        return None
    return "utf-8"


def string_bytes(array: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of an Arrow string array and each value's bounds in them.

    Args:
        array: a ``string`` array (a chunked one is combined first).

    Returns:
        ``(offsets, data)``: ``data[offsets[i]:offsets[i + 1]]`` are value ``i``'s bytes
        (int64 offsets starting at 0; uint8 data, a view where possible).
    """
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    count = len(array)
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[
        array.offset : array.offset + count + 1
    ].astype(np.int64)
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer else np.zeros(1, np.uint8)
    data = data[offsets[0] : offsets[-1]]
    offsets -= offsets[0]
    return offsets, data


def match_column(header: list[str], wanted: str, *, file: str) -> str:
    """Find a column by name, ignoring case and surrounding spaces.

    Args:
        header: the file's column names.
        wanted: the name asked for (e.g. from a mapping).
        file: the file name for messages.

    Returns:
        The column's name exactly as in ``header``.

    Raises:
        InvalidFile: no column, or more than one, has that name.
    """
    key = normalise_header(wanted)
    found = [column for column in header if normalise_header(column) == key]
    if len(found) == 1:
        return found[0]
    if not found:
        raise InvalidFile(
            f"no column named {wanted.strip()!r}; the file has {quoted_columns(header)}",
            file=file,
            column=wanted.strip(),
        )
    raise InvalidFile(
        f"{len(found)} columns match {wanted.strip()!r} ({quoted_columns(found)})",
        file=file,
        column=wanted.strip(),
    )


def normalise_header(name: str) -> str:
    """The form in which header names are compared: trimmed and case-folded."""
    return name.strip().casefold()


def detect_encoding(path: Path, *, head: bytes | None = None, whole: bool = True) -> str:
    """Detect a text file's encoding.

    A BOM decides (``utf-8-sig``, ``utf-16``, ``utf-32``). Otherwise the whole file is
    checked as UTF-8 in blocks (a late ``é`` must not break the load halfway); if
    it is not UTF-8 it is Windows-1252 when it uses one of the bytes 0x80-0x9F that
    Windows-1252 defines (``€``, curly quotes...), and ISO-8859-1 otherwise. The two
    decode 0xA0-0xFF identically, so the choice only matters when those bytes occur.

    Args:
        path: the local file.
        head: the file's first bytes, if already read.
        whole: False when ``head`` is the whole file (nothing else is read).

    Returns:
        A Python codec name: ``utf-8``, ``utf-8-sig``, ``utf-16``, ``utf-32``,
        ``cp1252`` or ``iso-8859-1``.
    """
    if head is None:
        with path.open("rb") as handle:
            head = handle.read(_SAMPLE_BYTES)
    if bom := bom_encoding(head):
        return bom
    decoder = codecs.getincrementaldecoder("utf-8")()
    high_c1 = False
    undefined = False
    is_utf8 = True
    with path.open("rb") if whole else io.BytesIO(head) as handle:
        while block := handle.read(_SCAN_BYTES):
            if is_utf8:
                try:
                    decoder.decode(block)
                    continue
                except UnicodeDecodeError:
                    is_utf8 = False
                    handle.seek(0)
                    continue
            if not high_c1 and block.translate(None, _C1_BYTES) != block:
                high_c1 = True
            if block.translate(None, _CP1252_UNDEFINED) != block:
                undefined = True
                break
    if is_utf8:
        try:
            decoder.decode(b"", final=True)
            return "utf-8"
        except UnicodeDecodeError:
            pass  # a truncated multi-byte sequence at the very end: not UTF-8
    if high_c1 and not undefined:
        return "cp1252"
    return "iso-8859-1"


# --- detection helpers ----------------------------------------------------------------


def _format_from_name(name: str) -> str | None:
    suffix = Path(name).suffix.lower()
    if suffix in _XLSX_SUFFIXES:
        return "xlsx"
    if suffix in _TEXT_SUFFIXES:
        return "csv"
    return None


def _check_delimiter(delimiter: str | None) -> str | None:
    if delimiter is None:
        return None
    value = DELIMITER_NAMES.get(delimiter.lower(), delimiter)
    if value not in DELIMITERS:
        allowed = ", ".join(repr(d) for d in DELIMITERS)
        raise InvalidParameter(
            f"delimiter must be one of {allowed} (or comma, semicolon, tab, pipe), "
            f"not {delimiter!r}"
        )
    return value


def _check_encoding(encoding: str | None) -> str | None:
    if encoding is None:
        return None
    try:
        return codecs.lookup(encoding).name
    except LookupError as exc:
        raise InvalidParameter(f"unknown encoding {encoding!r}") from exc


def _check_widths(widths: list[int] | None, columns: list[str] | None) -> None:
    if not widths or any(not isinstance(w, int) or isinstance(w, bool) or w < 1 for w in widths):
        raise InvalidParameter(
            f"fixed-width needs `widths`, a list of positive integers, not {widths!r}"
        )
    if columns is not None:
        if len(columns) != len(widths):
            raise InvalidParameter(
                f"`columns` has {len(columns)} names but `widths` has {len(widths)} widths"
            )
        _check_header_names(columns, lambda message: InvalidParameter(f"columns: {message}"))


def _check_text_shape(head: bytes, *, name: str, format: str, encoding: str | None) -> None:
    """Refuse bytes that are not text, naming what they look like (UTF-16 and UTF-32 text
    is judged by its characters)."""
    for magic, what in _MAGIC:
        if head.startswith(magic):
            hint = "; set format to 'xlsx' if it is a workbook" if magic == b"PK\x03\x04" else ""
            raise InvalidFile(
                f"expected {_format_label(format)} but the file is {what}{hint}", file=name
            )
    head = text_for_shape_check(head, encoding)
    controls = len(head) - len(head.translate(None, _CONTROL_BYTES))
    if b"\x00" in head or controls > max(2, len(head) // 200):
        raise InvalidFile(
            f"expected {_format_label(format)} but the file holds binary data (or UTF-16 or "
            "UTF-32 text without a byte-order mark: then set `encoding`, e.g. utf-16-le)",
            file=name,
        )


def _format_label(format: str) -> str:
    return "fixed-width text" if format == "fixed" else "delimited text"


def _decode_sample(head: bytes, encoding: str, *, cut: bool, name: str) -> str:
    if cut:
        # Drop the partial last line so that a multi-byte character is not split.
        end = head.rfind(b"\n")
        head = head[: end + 1] if end > 0 else head
    try:
        return codecs.getincrementaldecoder(encoding)().decode(head, final=not cut)
    except UnicodeDecodeError as exc:
        raise InvalidFile(
            f"the text is not valid {encoding}; set `encoding` to the file's encoding",
            file=name,
            row=head[: exc.start].count(b"\n") + 1,
        ) from exc


def _sniff_records(sample: str, delimiter: str | None, *, cut: bool) -> dict[str, list[list[str]]]:
    """The first records of the sample, parsed with each candidate delimiter."""
    result = {}
    for candidate in [delimiter] if delimiter else DELIMITERS:
        reader = csv.reader(
            io.StringIO(sample, newline=""), delimiter=candidate, quotechar='"', doublequote=True
        )
        rows: list[list[str]] = []
        try:
            for row in reader:
                if row:
                    rows.append(row)
                if len(rows) > _SNIFF_RECORDS:
                    break
        except csv.Error:
            pass  # a quoted field cut by the sample's end
        if cut and len(rows) > 1 and len(rows) <= _SNIFF_RECORDS:
            rows.pop()  # possibly truncated
        result[candidate] = rows
    return result


def _choose_delimiter(records: dict[str, list[list[str]]]) -> str:
    """The delimiter that splits the header most while every sniffed record agrees."""
    best, best_score = DELIMITERS[0], (False, 1)
    for candidate, rows in records.items():
        if not rows:
            continue
        width = len(rows[0])
        consistent = all(len(row) == width for row in rows[1:])
        score = (consistent, width)
        if width > 1 and score > best_score:
            best, best_score = candidate, score
    return best


def _check_header(names: list[str], file: str, limits: ReadLimits) -> list[str]:
    if len(names) > limits.max_columns:
        raise limit_exceeded(
            f"the header has {len(names):,} columns", limits, "max_columns", file=file, row=1
        )
    header = [name if name.strip() else f"column_{i}" for i, name in enumerate(names, start=1)]
    _check_header_names(header, lambda message: InvalidFile(message, file=file, row=1))
    return header


def _check_header_names(names: list[str], error: Any) -> None:
    seen: dict[str, str] = {}
    for name in names:
        key = normalise_header(name)
        if key in seen:
            raise error(
                f"the column name {quoted(name.strip())} appears more than once "
                "(ignoring case and spaces)"
            )
        seen[key] = name


def _arrow_encoding(encoding: str) -> str:
    # Arrow skips a UTF-8 BOM itself and decodes UTF-8 natively; other codecs go
    # through Python's, in a streaming wrapper.
    return "utf8" if encoding in ("utf-8", "utf-8-sig") else encoding


def _str_dtype(arrow_type: pa.DataType) -> Any:
    return (
        pd.StringDtype(storage="pyarrow", na_value=float("nan"))
        if pa.types.is_string(arrow_type)
        else None
    )


def _first_line_number(source: IO[bytes], encoding: str) -> int:
    """The line number of the first non-blank line (the fixed-width header)."""
    with io.TextIOWrapper(source, encoding=encoding, newline="") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip("\r\n"):
                return number
    return 1


# --- fixed-width -------------------------------------------------------------------


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
        header = _check_header(cells, name, limits)
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


# --- XLSX ------------------------------------------------------------------------


@contextmanager
def _open_workbook(path: Path, name: str) -> Iterator[Any]:
    """Open a workbook read-only; by handle, because openpyxl judges a path by its suffix."""
    from openpyxl import load_workbook

    with path.open("rb") as handle:
        try:
            workbook = load_workbook(handle, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises zipfile, KeyError, InvalidFileException...
            raise InvalidFile(
                f"is not a readable XLSX workbook ({type(exc).__name__}: {exc})", file=name
            ) from exc
        try:
            yield workbook
        finally:
            workbook.close()


def _read_xlsx(
    path: Path, *, name: str, head: bytes, sheet: str | None, chunk_rows: int, limits: ReadLimits
) -> TableReader:
    if not head.startswith(b"PK\x03\x04"):
        what = next((w for magic, w in _MAGIC if head.startswith(magic)), None)
        if what is None:
            what = "binary data" if b"\x00" in head else "text (delimited text?)"
        raise InvalidFile(f"expected an XLSX workbook but the file is {what}", file=name)
    check_workbook(path, name=name, limits=limits)
    with _open_workbook(path, name) as workbook:
        names = list(workbook.sheetnames)
        if sheet is not None and sheet not in names:
            raise InvalidFile(
                f"there is no sheet {quoted(sheet)}; the workbook has {quoted_columns(names)}",
                file=name,
            )
        worksheet = workbook[sheet] if sheet else workbook.worksheets[0]
        header_row, cells = _xlsx_header_row(_sheet_rows(worksheet, name))
        if header_row == 0:
            raise InvalidFile(
                f"the sheet {quoted(worksheet.title)} is empty (no header row)", file=name
            )
        while cells and not cells[-1]:
            cells.pop()
        header = _check_header(cells, name, limits)
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


def _sheet_rows(sheet: Any, name: str) -> Iterator[tuple[Any, ...]]:
    """A sheet's rows as openpyxl reads them, its errors named with the row they are in."""
    rows = sheet.iter_rows(values_only=True)
    number = 1
    while True:
        try:
            values = next(rows)
        except StopIteration:
            return
        except Exception as exc:  # openpyxl raises XML, number, index errors...
            # The type only: openpyxl's messages quote the cell's text.
            raise InvalidFile(
                f"the sheet cannot be read ({type(exc).__name__})", file=name, row=number
            ) from exc
        yield values
        number += 1


def _xlsx_header_row(rows: Iterator[tuple[Any, ...]]) -> tuple[int, list[str]]:
    """Advance ``rows`` past the first non-blank row; return its number (0 if none) and text."""
    for number, values in enumerate(rows, start=1):
        cells = [_xlsx_text(v) for v in values]
        if any(cells):
            return number, cells
    return 0, []


def _xlsx_text(value: Any) -> str:
    """A cell's value as the text a user sees (an integral float loses its ``.0``)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime):
        if value.time() == time(0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _column_letter(index: int) -> str:
    """The spreadsheet letter of a 0-based column index (0 -> A, 26 -> AA)."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = _LETTERS[rest] + letters
    return letters
