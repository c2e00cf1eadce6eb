"""Reading a detected table file in chunks: :class:`Chunk` and :class:`TableReader`.

Pure: a reader reads one local file (or a download as it arrives) and yields
:class:`Chunk` objects of at most ``chunk_rows`` rows, every cell as text, each chunk
checked against the read limits (:class:`~contact_center.parsing.limits.ReadGuard`)
as it is yielded. :func:`contact_center.parsing.files.read_table` makes readers.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import IO, Any, cast

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv

from contact_center.exceptions import InvalidFile, LimitExceeded
from contact_center.parsing.detection import detect_encoding
from contact_center.parsing.limits import ReadGuard, limit_exceeded
from contact_center.parsing.text_records import MIN_BLOCK_BYTES, block_bytes, read_error
from contact_center.parsing.xlsx_cells import (
    column_letter,
    open_workbook,
    sheet_rows,
    xlsx_header_row,
    xlsx_text,
)
from contact_center.settings import ReadLimits, get_settings

__all__ = ["Chunk", "TableReader"]

# Rows in the first chunk; each next chunk doubles, up to ``chunk_rows``.
_FIRST_CHUNK_ROWS = 4096
_FIXED_SEPARATOR = "\x1f"  # a control byte that text files never hold (checked up front)


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
        with open_workbook(self.path, self.name) as workbook:
            sheet = workbook[self.sheet] if self.sheet else workbook.worksheets[0]
            rows = sheet_rows(sheet, self.name)
            header_row, _ = xlsx_header_row(rows)
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
                cells = [xlsx_text(v) for v in values]
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
                    column=column_letter(offset),
                )

    def _xlsx_chunk(self, columns: list[list[str]], first_row: int) -> Chunk:
        arrays = [pa.array(column, type=pa.string()) for column in columns]
        return Chunk(table=pa.Table.from_arrays(arrays, names=self.header), first_row=first_row)


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
