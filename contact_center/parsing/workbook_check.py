"""Checking a workbook against the read limits before openpyxl opens it.

Pure: reads one local file. An XLSX is a ZIP of XML parts, and a small one can
decompress to gigabytes; openpyxl would build whatever it holds in memory (a
one-cell sheet of 1 GB becomes a 1 GB string, and more). :func:`check_workbook`
reads every XML part once, decompressing a piece at a time, and refuses the
workbook, in constant memory, when:

- the ZIP directory states more parts or more decompressed bytes than allowed
  (a stated size can lie, but not to here: ``zipfile`` decompresses a part up to
  its stated size and no further, and then checks its CRC, so a part that
  decompresses to more fails as unreadable);
- a run of text without markup is longer than a value within the value limit can
  take (:data:`_BYTES_PER_CHAR` bytes a character: UTF-8 and entities), so no cell
  can make openpyxl build a string far beyond the limit;
- a sheet has more rows than the row limit (its ``<row>`` elements, or a row
  number above it), or the shared-strings table more texts than its limit;
- a part has a DTD (entity expansion) or a CDATA section, which spreadsheet
  applications do not write;
- a part that openpyxl reads whole (all but the sheets and the shared strings,
  which it reads as streams) is larger than :data:`_MAX_WHOLE_PART_BYTES`.
"""

from __future__ import annotations

import posixpath
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from xml.etree import ElementTree

import numpy as np

from contact_center.exceptions import InvalidFile, quoted
from contact_center.parsing.limits import limit_exceeded
from contact_center.settings import ReadLimits

__all__ = ["check_workbook"]

# A workbook holds a few dozen parts; a ZIP directory of millions would cost gigabytes
# to list (zipfile keeps an object per entry).
_MAX_PARTS = 10_000
# The parts openpyxl parses whole (styles, workbook, relationships...): kilobytes in
# the workbooks Excel writes, and a tree about ten times their size in memory.
_MAX_WHOLE_PART_BYTES = 16 << 20
# A character takes at most 4 bytes in UTF-8 and rarely more as an entity (&amp; 5).
_BYTES_PER_CHAR = 8
_PIECE_BYTES = 1 << 20
# Enough of the bytes before a long run to find the cell it belongs to.
_CONTEXT_BYTES = 4096
_XML_SUFFIXES = (".xml", ".rels", ".vml")
_LT = ord("<")
# Bytes after a position that the tag counts look at: enough for "<!DOCTYPE" and for a
# row's first attribute, r="...", with the longest row number looked at.
_LOOKAHEAD = 24
_MAX_ROW_DIGITS = 15
_REFUSED_MARKUP = {
    b"<!DOCTYPE": "a document type declaration (<!DOCTYPE)",
    b"<![CDATA[": "a CDATA section",
}
_CELL_REF = re.compile(rb'<(?:[A-Za-z_][\w.-]*:)?c\s[^<>]*?\br="([A-Z]{1,3})([0-9]{1,9})"')
_WORKBOOK_TYPES = tuple(
    f"application/vnd.{kind}.main+xml"
    for kind in (
        "openxmlformats-officedocument.spreadsheetml.sheet",
        "openxmlformats-officedocument.spreadsheetml.template",
        "ms-excel.sheet.macroEnabled",
        "ms-excel.template.macroEnabled",
    )
)
_SHARED_STRINGS_TYPE = (
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
)
_CONTENT_TYPES = "[Content_Types].xml"
# Parts openpyxl reads whole by these names, whatever the relationships say.
_WHOLE_PARTS = {
    _CONTENT_TYPES,
    "docProps/core.xml",
    "docProps/custom.xml",
    "xl/styles.xml",
    "xl/theme/theme1.xml",
}


def check_workbook(path: Path, *, name: str, limits: ReadLimits) -> None:
    """Refuse a workbook whose reading would cross the read limits (see the module).

    Args:
        path: the local file (a ZIP).
        name: the file's name for messages.
        limits: the read limits.

    Raises:
        LimitExceeded: the size, a value's length, a sheet's rows or the shared
            strings cross their limits.
        InvalidFile: the ZIP cannot be read, has too many parts, a part fails its
            checksum, holds a DTD or CDATA, or a part read whole is too large.
    """
    parts = _stated_parts(path)
    if parts is not None and parts > _MAX_PARTS:
        raise InvalidFile(
            f"the workbook's ZIP directory lists {parts:,} parts; a workbook has at most "
            f"{_MAX_PARTS:,}",
            file=name,
        )
    try:
        with zipfile.ZipFile(path) as archive:
            _check_parts(archive, name, limits)
    except _UNREADABLE as exc:
        raise InvalidFile(
            f"is not a readable XLSX workbook ({type(exc).__name__}: {exc})", file=name
        ) from exc


_UNREADABLE = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    NotImplementedError,  # a compression method zipfile lacks
    RuntimeError,  # an encrypted entry
    EOFError,
    zlib.error,
    ElementTree.ParseError,
)


def _check_parts(archive: zipfile.ZipFile, name: str, limits: ReadLimits) -> None:
    infos = archive.infolist()
    stated = sum(info.file_size for info in infos)
    if stated > limits.max_xlsx_bytes:
        raise limit_exceeded(
            f"the workbook decompresses to {stated:,} bytes", limits, "max_xlsx_bytes", file=name
        )
    scan = _Scan(name, limits)
    # The small parts that say which parts are streamed are checked (no DTD) first,
    # then parsed; then sizes are checked, and then the other parts read.
    scanned = set()
    for info in infos:
        is_map = info.filename.endswith(".rels") or info.filename == _CONTENT_TYPES
        if is_map and info.file_size <= _MAX_WHOLE_PART_BYTES:
            scan.part(info.filename, archive)
            scanned.add(info.filename)
    streamed = _streamed_parts(archive, {info.filename for info in infos})
    for info in infos:
        if info.filename not in streamed and info.file_size > _MAX_WHOLE_PART_BYTES:
            raise InvalidFile(
                f"the part {quoted(info.filename)} is {info.file_size:,} bytes decompressed; "
                "a workbook's parts other than its sheets and shared strings take at most "
                f"{_MAX_WHOLE_PART_BYTES:,}",
                file=name,
            )
    for info in infos:
        xml = info.filename.lower().endswith(_XML_SUFFIXES)
        if info.filename not in scanned and (xml or info.filename in streamed):
            scan.part(info.filename, archive)


def _stated_parts(path: Path) -> int | None:
    """The entry count that the ZIP's end record states (None without one).

    Read before ``zipfile`` lists the directory, which costs memory per entry; a
    count of 0xFFFF means "see the ZIP64 record", i.e. at least that many.
    """
    with path.open("rb") as handle:
        size = handle.seek(0, 2)
        handle.seek(max(0, size - (1 << 16) - 22))
        tail = handle.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        return None
    return int(struct.unpack_from("<H", tail, at + 10)[0])


def _streamed_parts(archive: zipfile.ZipFile, names: set[str]) -> set[str]:
    """The parts openpyxl reads as streams: the worksheets and the shared strings.

    Found as openpyxl finds them: the content types name the workbook and the shared
    strings, the workbook's relationships its worksheets. A part that openpyxl also
    reads whole by its fixed name never counts as streamed.
    """
    workbook = "xl/workbook.xml"
    streamed = set()
    for override in _xml_elements(archive, _CONTENT_TYPES, names):
        part = override.get("PartName", "").lstrip("/")
        kind = override.get("ContentType", "")
        if kind in _WORKBOOK_TYPES:
            workbook = part
        elif kind == _SHARED_STRINGS_TYPE:
            streamed.add(part)
    folder, base = posixpath.split(workbook)
    relationships = posixpath.join(folder, "_rels", base + ".rels")
    for rel in _xml_elements(archive, relationships, names):
        target = rel.get("Target", "")
        if rel.get("Type", "").endswith("/worksheet") and rel.get("TargetMode") != "External":
            resolved = target[1:] if target.startswith("/") else posixpath.join(folder, target)
            streamed.add(posixpath.normpath(resolved))
    return streamed - _WHOLE_PARTS - {workbook, relationships}


def _xml_elements(
    archive: zipfile.ZipFile, part: str, names: set[str]
) -> list[ElementTree.Element]:
    """The elements of a small part (none if it is absent or too large to be read whole,
    which the caller refuses)."""
    if part not in names or archive.getinfo(part).file_size > _MAX_WHOLE_PART_BYTES:
        return []
    return list(ElementTree.fromstring(archive.read(part)).iter())


@dataclass
class _Scan:
    """Reads parts a piece at a time and checks them; counts what the workbook adds up to."""

    file: str
    limits: ReadLimits
    strings: int = 0

    def part(self, part: str, archive: zipfile.ZipFile) -> None:
        """Check one part of the archive."""
        with archive.open(part) as stream:
            self._read(part, stream)

    def _read(self, part: str, stream: IO[bytes]) -> None:
        # A row number with as many digits as the limit may be beyond it.
        tags = _Tags(min(len(str(self.limits.max_rows)), _MAX_ROW_DIGITS))
        longest_run = self.limits.max_field_chars * _BYTES_PER_CHAR
        run = 0  # bytes since the last "<"
        context = b""  # bytes before the current run
        while piece := stream.read(_PIECE_BYTES):
            starts = tags.add(piece)  # the positions of "<" in the piece
            self._check_tags(part, tags)
            if len(starts) == 0:
                run += len(piece)
                if run > longest_run:
                    raise self._long_run(part, context, longest_run)
                continue
            gaps = np.diff(starts)
            if run + int(starts[0]) > longest_run:
                raise self._long_run(part, context, longest_run)
            if len(gaps) and int(gaps.max()) > longest_run:
                at = int(starts[int(np.argmax(gaps))])
                raise self._long_run(part, piece[max(0, at - _CONTEXT_BYTES) : at], longest_run)
            last = int(starts[-1])
            run = len(piece) - last
            context = piece[max(0, last - _CONTEXT_BYTES) : last]
        tags.finish()
        self._check_tags(part, tags)
        self.strings += tags.strings

    def _check_tags(self, part: str, tags: _Tags) -> None:
        if tags.refused is not None:
            raise InvalidFile(
                f"the part {quoted(part)} holds {tags.refused}, which spreadsheet "
                "applications do not write",
                file=self.file,
            )
        strings = self.strings + tags.strings
        if strings > self.limits.max_xlsx_strings:
            raise limit_exceeded(
                f"the workbook's shared-strings table holds more than "
                f"{self.limits.max_xlsx_strings:,} texts",
                self.limits,
                "max_xlsx_strings",
                file=self.file,
            )
        # The header is a row too.
        if max(tags.rows, tags.highest_row) > self.limits.max_rows + 1:
            raise limit_exceeded(
                f"the sheet {quoted(part)} has more than {self.limits.max_rows:,} data rows",
                self.limits,
                "max_rows",
                file=self.file,
            )

    def _long_run(self, part: str, context: bytes, longest: int) -> InvalidFile:
        """The error for a run of more than ``longest`` bytes without markup, naming the
        cell it is in when the bytes before it show one."""
        cells = _CELL_REF.findall(context)
        column, row = (cells[-1][0].decode(), int(cells[-1][1])) if cells else (None, None)
        where = "the value" if cells else f"a text in the part {quoted(part)}"
        return limit_exceeded(
            f"{where} takes more than {longest:,} bytes in the workbook",
            self.limits,
            "max_field_chars",
            file=self.file,
            row=row,
            column=column,
        )


class _Tags:
    """Counts the ``<row>`` and ``<si>`` elements of a part, notes the highest row number
    (``<row r="...">``) and any refused markup, over the pieces of its text.

    Vectorised over the positions of ``<`` in each piece (and of ``:`` in a part whose
    root element has a prefix, as in ``<x:row>``). The last bytes of a piece wait for
    the next one, so that a tag cut by the piece's end is seen whole.
    """

    def __init__(self, row_digits: int) -> None:
        self.row_digits = row_digits
        self.rows = 0
        self.strings = 0
        self.highest_row = 0
        self.refused: str | None = None
        self._carry = b""
        self._prefixed: bool | None = None

    def add(self, piece: bytes) -> np.ndarray:
        """Look at the next piece (all but its last bytes, which wait for the next one).

        Returns:
            The positions of ``<`` in ``piece``.
        """
        carried = len(self._carry)
        window = self._carry + piece
        starts = self._look(window, len(window) - _LOOKAHEAD)
        self._carry = window[-_LOOKAHEAD:]
        return starts[starts >= carried] - carried

    def finish(self) -> None:
        """Look at the last bytes of the part."""
        self._look(self._carry + bytes(_LOOKAHEAD), len(self._carry))
        self._carry = b""

    def _look(self, window: bytes, end: int) -> np.ndarray:
        """Count the tags that start before ``end`` (_LOOKAHEAD bytes follow it); return
        the positions of every ``<`` in ``window``."""
        text = np.frombuffer(window, dtype=np.uint8)
        starts = np.flatnonzero(text == _LT)
        if end <= 0:
            return starts
        if self._prefixed is None:
            root = re.search(rb"<([A-Za-z_][\w.:-]*)", window)
            self._prefixed = root is not None and b":" in root.group(1)
        marks = [starts[starts < end]]
        if self._prefixed:
            marks.append(np.flatnonzero(text[:end] == ord(":")))
        for at in marks:
            following = text[at + 1]
            for bang in at[following == ord("!")].tolist():  # comments, or refused markup
                for markup, what in _REFUSED_MARKUP.items():
                    if window.startswith(markup, bang):
                        self.refused = what
            rows = _named(text, at[following == ord("r")], b"ow")
            self.rows += len(rows)
            self.strings += len(_named(text, at[following == ord("s")], b"i"))
            self._note_numbers(window, text, rows + 5)
        return starts

    def _note_numbers(self, window: bytes, text: np.ndarray, at: np.ndarray) -> None:
        """Note the row numbers of ``row_digits`` digits or more, from ``r="`` at the
        positions ``at`` (a row's first attribute, where every writer puts it)."""
        at = at[(text[at] == ord("r")) & (text[at + 1] == ord("=")) & (text[at + 2] == ord('"'))]
        for offset in range(3, 3 + self.row_digits):
            at = at[text[at + offset] - ord("0") < 10]
        for position in at.tolist():  # rare with the default limit
            digits = re.match(rb"[0-9]+", window[position + 3 : position + _LOOKAHEAD])
            assert digits is not None
            self.highest_row = max(self.highest_row, int(digits.group()))


def _named(text: np.ndarray, at: np.ndarray, rest: bytes) -> np.ndarray:
    """The positions ``at`` (a "<" or ":" and a name's first letter) that the rest of the
    name and the end of a name follow."""
    for offset, char in enumerate(rest, start=2):
        at = at[text[at + offset] == char]
    end = text[at + len(rest) + 2]
    found: np.ndarray = at[(end == 0x20) | (end == 0x3E) | (end == 0x2F) | (end - 0x09 < 5)]
    return found
