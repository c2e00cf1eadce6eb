"""UTF-16 and UTF-32 list files: read with or without a BOM when the encoding is given,
detected by their BOM, and never taken for binary data when the encoding says so."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from contact_center.exceptions import InvalidFile
from contact_center.parsing.detection import detect_encoding
from contact_center.parsing.files import read_arriving_table, read_table

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


# --- a file read while it arrives: the encoding guessed from its head ----------------------


def _arriving(path: Path) -> list[dict[str, str]] | InvalidFile:
    """Read ``path`` as an arriving file is read: through an opener, from its head."""
    reader = read_arriving_table(
        path,
        name=path.name,
        chunk_rows=1000,
        opener=lambda: path.open("rb", buffering=0),
        size=path.stat().st_size,
        complete=lambda: path,
    )
    assert reader.encoding == "utf-8" and reader.encoding_guessed
    try:
        found = [row for chunk in reader for row in chunk.table.to_pylist()]
    except InvalidFile as exc:
        return exc
    assert reader.encoding == "cp1252" and not reader.encoding_guessed
    return found


def test_a_wrong_utf8_guess_goes_on_in_the_whole_files_encoding(tmp_path: Path) -> None:
    lines = [f"M{i:05d},Ann,{'x' * 40}" for i in range(5000)]  # ASCII, beyond the head
    path = tmp_path / "late.csv"
    path.write_bytes(
        "\r\n".join(["Account,Name,Notes", *lines, "Z9,O’Brien,x", ""]).encode("cp1252")
    )
    found = _arriving(path)
    assert not isinstance(found, InvalidFile)
    assert len(found) == 5001 and found[0]["Account"] == "M00000"
    assert found[-1] == {"Account": "Z9", "Name": "O’Brien", "Notes": "x"}
    assert [row["Account"] for row in found[:-1]] == [f"M{i:05d}" for i in range(5000)]


def test_a_wrong_guess_before_any_row_was_read_reads_them_all_in_the_files_encoding(
    tmp_path: Path,
) -> None:
    # Within Arrow's first block (1 MiB): no row was read as UTF-8 yet.
    lines = [f"M{i:05d},José,{'x' * 40}" for i in range(5000)]
    path = tmp_path / "early.csv"
    body = "\r\n".join(["Account,Name,Notes", *lines, ""]).encode("utf-8")
    path.write_bytes(body + "Z9,O’Brien,x\r\n".encode("cp1252"))
    found = _arriving(path)
    assert not isinstance(found, InvalidFile) and len(found) == 5001
    assert found[0]["Name"] == "JosÃ©" and found[-1]["Name"] == "O’Brien"  # as detect_encoding


def test_a_file_that_is_utf8_at_first_and_not_later_fails_naming_the_row(tmp_path: Path) -> None:
    # Beyond Arrow's first block: rows with a UTF-8 é were read before the cp1252 byte.
    lines = [f"M{i:05d},José,{'x' * 40}" for i in range(60_000)]
    path = tmp_path / "mixed.csv"
    body = "\r\n".join(["Account,Name,Notes", *lines, ""]).encode("utf-8")
    path.write_bytes(body + "Z9,O’Brien,x\r\n".encode("cp1252"))
    found = _arriving(path)
    assert isinstance(found, InvalidFile)
    assert "mixes encodings" in str(found) and "set `encoding`" in str(found)
    assert "row 2" in str(found)
