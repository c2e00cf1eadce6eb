"""What a table file is: its format, encoding and delimiter, from its name and first bytes.

Pure: these functions look at a file's name, its head (and, to tell Windows-1252 from
ISO-8859-1, every byte) and the options given; they check the options and refuse bytes
that do not have the shape of the format. :mod:`contact_center.parsing.files` uses
them before it reads a row.
"""

from __future__ import annotations

import codecs
import csv
import io
from pathlib import Path

from contact_center.exceptions import InvalidFile, InvalidParameter
from contact_center.parsing.encodings import bom_encoding, text_for_shape_check
from contact_center.parsing.headers import check_header_names

__all__ = [
    "DELIMITERS",
    "DELIMITER_NAMES",
    "FORMATS",
    "MAGIC",
    "SAMPLE_BYTES",
    "check_delimiter",
    "check_encoding",
    "check_text_shape",
    "check_widths",
    "choose_delimiter",
    "decode_sample",
    "detect_encoding",
    "encoding_of_head",
    "format_from_name",
    "sniff_records",
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
SAMPLE_BYTES = 64 * 1024
_SNIFF_RECORDS = 50
_SCAN_BYTES = 4 << 20
# Bytes 0x80-0x9F that Windows-1252 leaves undefined: text with them is ISO-8859-1.
_CP1252_UNDEFINED = b"\x81\x8d\x8f\x90\x9d"
_C1_BYTES = bytes(range(0x80, 0xA0))
_CONTROL_BYTES = bytes([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x1A), *range(0x1C, 0x20)])

# Signatures of files that are not text, with the name we give them in messages.
MAGIC = (
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


def encoding_of_head(head: bytes) -> str | None:
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
            head = handle.read(SAMPLE_BYTES)
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


def format_from_name(name: str) -> str | None:
    suffix = Path(name).suffix.lower()
    if suffix in _XLSX_SUFFIXES:
        return "xlsx"
    if suffix in _TEXT_SUFFIXES:
        return "csv"
    return None


def check_delimiter(delimiter: str | None) -> str | None:
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


def check_encoding(encoding: str | None) -> str | None:
    if encoding is None:
        return None
    try:
        return codecs.lookup(encoding).name
    except LookupError as exc:
        raise InvalidParameter(f"unknown encoding {encoding!r}") from exc


def check_widths(widths: list[int] | None, columns: list[str] | None) -> None:
    if not widths or any(not isinstance(w, int) or isinstance(w, bool) or w < 1 for w in widths):
        raise InvalidParameter(
            f"fixed-width needs `widths`, a list of positive integers, not {widths!r}"
        )
    if columns is not None:
        if len(columns) != len(widths):
            raise InvalidParameter(
                f"`columns` has {len(columns)} names but `widths` has {len(widths)} widths"
            )
        check_header_names(columns, lambda message: InvalidParameter(f"columns: {message}"))


def check_text_shape(head: bytes, *, name: str, format: str, encoding: str | None) -> None:
    """Refuse bytes that are not text, naming what they look like (UTF-16 and UTF-32 text
    is judged by its characters)."""
    for magic, what in MAGIC:
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


def decode_sample(head: bytes, encoding: str, *, cut: bool, name: str) -> str:
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


def sniff_records(sample: str, delimiter: str | None, *, cut: bool) -> dict[str, list[list[str]]]:
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


def choose_delimiter(records: dict[str, list[list[str]]]) -> str:
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
