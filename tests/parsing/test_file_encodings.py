"""UTF-16 and UTF-32 list files: read with or without a BOM when the encoding is given,
detected by their BOM, and never taken for binary data when the encoding says so."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from contact_center.exceptions import InvalidFile
from contact_center.parsing.files import detect_encoding, read_table

TEXT = "Account;Name;City\r\nA1;José Muñoz;Curaçao\r\nA2;Ὀδυσσεύς;Zürich 😀\r\n"
ROWS = [
    {"Account": "A1", "Name": "José Muñoz", "City": "Curaçao"},
    {"Account": "A2", "Name": "Ὀδυσσεύς", "City": "Zürich 😀"},
]
BOMS = {
    "utf-16-le": codecs.BOM_UTF16_LE,
    "utf-16-be": codecs.BOM_UTF16_BE,
    "utf-32-le": codecs.BOM_UTF32_LE,
    "utf-32-be": codecs.BOM_UTF32_BE,
}


def rows(path: Path, **options: str) -> list[dict[str, str]]:
    reader = read_table(path, name=path.name, **options)
    assert reader.header == ["Account", "Name", "City"]
    assert reader.delimiter == ";"
    return [row for chunk in reader for row in chunk.table.to_pylist()]


@pytest.mark.parametrize("encoding", list(BOMS))
def test_a_given_utf16_or_utf32_encoding_reads_a_file_without_a_bom(
    tmp_path: Path, encoding: str
) -> None:
    path = tmp_path / "leads.csv"
    path.write_bytes(TEXT.encode(encoding))
    assert rows(path, encoding=encoding) == ROWS
    # Without the encoding, NUL bytes look binary: the message says what to set.
    with pytest.raises(InvalidFile, match=r"binary data \(or UTF-16 or UTF-32 text without a "):
        read_table(path, name="leads.csv")


@pytest.mark.parametrize("encoding", list(BOMS))
def test_a_bom_is_detected_and_is_never_part_of_the_header(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "leads.csv"
    path.write_bytes(BOMS[encoding] + TEXT.encode(encoding))
    family = encoding[:6]  # utf-16 or utf-32: the codec that reads the BOM
    assert detect_encoding(path) == family
    assert rows(path) == ROWS
    assert read_table(path, name="leads.csv").encoding == family
    # Given as well (the byte order named), the BOM is still skipped.
    assert rows(path, encoding=encoding) == ROWS
    assert rows(path, encoding=family) == ROWS


def test_a_given_utf8_on_a_file_with_a_utf8_bom_skips_it(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_bytes(codecs.BOM_UTF8 + TEXT.encode("utf-8"))
    assert rows(path, encoding="utf-8") == ROWS


def test_utf16_that_is_really_binary_is_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    # Its characters are control characters (a lone surrogate does not decode at all).
    controls = "Account\r\n\x00\x01\x02\x03" * 50 + "\ud800"
    path.write_bytes(codecs.BOM_UTF16_LE + controls.encode("utf-16-le", "surrogatepass"))
    with pytest.raises(InvalidFile, match="binary data"):
        read_table(path, name="leads.csv")
