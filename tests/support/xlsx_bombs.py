"""Hostile workbooks, built in the tests: a ZIP of XML parts written by hand.

A sheet is given as a prefix, a block repeated ``count`` times and a suffix. Each
block is compressed once, after a full flush (which empties the compressor's
history), so every repetition compresses to the same bytes: a 1 GB sheet is built
in about a second and takes about 1 MB. The ZIP is written by hand so that its
directory can also state a size that is not the true one.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

NS = b'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
_MAIN = "application/vnd.openxmlformats-officedocument.spreadsheetml"
CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
    'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
    f'<Override PartName="/xl/workbook.xml" ContentType="{_MAIN}.sheet.main+xml"/>'
    f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{_MAIN}.worksheet+xml"/>'
    f'<Override PartName="/xl/sharedStrings.xml" ContentType="{_MAIN}.sharedStrings+xml"/>'
    "</Types>"
).encode()
_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns='
    '"http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" '
    f'Type="{_RELS}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
).encode()
WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><workbook '
    f'{NS.decode()} xmlns:r="{_RELS}"><sheets><sheet name="Leads" sheetId="1" r:id="rId1"/>'
    "</sheets></workbook>"
).encode()
WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns='
    '"http://schemas.openxmlformats.org/package/2006/relationships">'
    f'<Relationship Id="rId1" Type="{_RELS}/worksheet" Target="worksheets/sheet1.xml"/>'
    f'<Relationship Id="rId2" Type="{_RELS}/sharedStrings" Target="sharedStrings.xml"/>'
    "</Relationships>"
).encode()
EMPTY_STRINGS = b"<sst " + NS + b"></sst>"
SHEET_START = b"<worksheet " + NS + b"><sheetData>"
SHEET_END = b"</sheetData></worksheet>"


@dataclass(frozen=True)
class Part:
    """A ZIP member: ``prefix + block * count + suffix``, deflated."""

    name: str
    prefix: bytes
    block: bytes = b""
    count: int = 0
    suffix: bytes = b""

    @property
    def size(self) -> int:
        return len(self.prefix) + len(self.block) * self.count + len(self.suffix)


def write_workbook(
    path: Path,
    sheet: Part,
    strings: Part | None = None,
    stated_sheet_size: int | None = None,
    extra: tuple[Part, ...] = (),
) -> Path:
    """A workbook of one sheet (``Leads``), its parts deflated.

    Args:
        path: where to write it.
        sheet: the sheet part's text (named ``xl/worksheets/sheet1.xml``).
        strings: the shared-strings part (empty when not given).
        stated_sheet_size: the sheet's size as the ZIP directory states it, if not
            the true one.
        extra: more parts (e.g. ``xl/styles.xml``).
    """
    parts = [
        Part("[Content_Types].xml", CONTENT_TYPES),
        Part("_rels/.rels", ROOT_RELS),
        Part("xl/workbook.xml", WORKBOOK),
        Part("xl/_rels/workbook.xml.rels", WORKBOOK_RELS),
        sheet,
        strings or Part("xl/sharedStrings.xml", EMPTY_STRINGS),
        *extra,
    ]
    directory = []
    with path.open("wb") as out:
        for part in parts:
            offset = out.tell()
            data, crc = _deflate(part)
            stated = part.size
            if part is sheet and stated_sheet_size is not None:
                stated = stated_sheet_size
            name = part.name.encode()
            # version, flags, method (8: deflate), time, date, crc, sizes, name, extra
            fields = (20, 0, 8, 0, 0x21, crc, len(data), stated, len(name))
            out.write(struct.pack("<4s5HLLLHH", b"PK\x03\x04", *fields, 0) + name)
            out.write(data)
            directory.append(
                struct.pack("<4s6HLLLHHHHHLL", b"PK\x01\x02", 20, *fields, 0, 0, 0, 0, 0, offset)
                + name
            )
        start = out.tell()
        table = b"".join(directory)
        out.write(table)
        out.write(
            struct.pack(
                "<4s4HLLH", b"PK\x05\x06", 0, 0, len(parts), len(parts), len(table), start, 0
            )
        )
    return path


def _deflate(part: Part) -> tuple[bytes, int]:
    """The raw deflate stream of the part and its CRC-32."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = [compressor.compress(part.prefix), compressor.flush(zlib.Z_FULL_FLUSH)]
    crc = zlib.crc32(part.prefix)
    if part.count:
        block = compressor.compress(part.block) + compressor.flush(zlib.Z_FULL_FLUSH)
        out.append(block * part.count)
        for _ in range(part.count):
            crc = zlib.crc32(part.block, crc)
    out.append(compressor.compress(part.suffix) + compressor.flush())
    return b"".join(out), zlib.crc32(part.suffix, crc)


def inline_row(number: int, *values: str) -> bytes:
    """A ``<row>`` of inline-string cells, from column A."""
    cells = b"".join(
        b'<c r="%s%d" t="inlineStr"><is><t>%s</t></is></c>' % (bytes([65 + i]), number, v.encode())
        for i, v in enumerate(values)
    )
    return b'<row r="%d">%s</row>' % (number, cells)
