"""Bounded reading: hostile workbooks, oversized values, rows, headers and time; capped errors.

The bombs are built here (``xlsx_bombs``) and read by the real readers; the ones
that would exhaust a machine are read in a child process, which reports its peak
RSS: its memory's high-water mark (``VmHWM``), not ``ru_maxrss``, which on Linux
also counts the parent's memory at the fork (``exec`` keeps it).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook
from support.xlsx_bombs import SHEET_END, SHEET_START, Part, inline_row, write_workbook

from contact_center.exceptions import (
    CCTasksError,
    InvalidFile,
    InvalidParameter,
    LimitExceeded,
    quoted_columns,
)
from contact_center.parsing.files import read_table
from contact_center.parsing.headers import match_column
from contact_center.parsing.lists import validate_mapping
from contact_center.settings import ReadLimits, get_settings

ROOT = Path(__file__).resolve().parents[2]
SHEET = "xl/worksheets/sheet1.xml"
MB = 1 << 20
# The child reads the file with the real reader and says how it ended, and its peak RSS.
CHILD = textwrap.dedent(
    """
    import json, re, sys
    from pathlib import Path
    from contact_center.parsing.files import read_table
    path = Path(sys.argv[1])
    try:
        said = {"rows": sum(chunk.rows for chunk in read_table(path, name=path.name))}
    except Exception as exc:
        said = {"error": f"{type(exc).__name__}: {exc}"}
    status = Path("/proc/self/status").read_text()
    said["peak_kib"] = int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))
    print(json.dumps(said))
    """
)


def read_in_child(path: Path) -> tuple[dict[str, Any], float]:
    """Read ``path`` in a child process: what it says, and its peak RSS in MB."""
    if not Path("/proc/self/status").exists():
        pytest.skip("needs Linux's /proc/<pid>/status for a process's peak RSS (VmHWM)")
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)], capture_output=True, cwd=ROOT, check=True
    )
    said: dict[str, Any] = json.loads(child.stdout)
    return said, said.pop("peak_kib") / 1024


def one_cell_bomb(path: Path, megabytes: int) -> Path:
    """A workbook whose second row is one cell of ``megabytes`` MiB of text."""
    return write_workbook(
        path,
        Part(
            SHEET,
            SHEET_START + inline_row(1, "account", "phone1") + b'<row r="2"><c r="A2" '
            b't="inlineStr"><is><t>',
            b"A" * MB,
            megabytes,
            b"</t></is></c></row>" + SHEET_END,
        ),
    )


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8", newline="")
    return path


# --- hostile workbooks, read in a child process -------------------------------------------


def test_a_1_mb_workbook_of_one_1_gb_cell_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    path = one_cell_bomb(tmp_path / "cell.xlsx", 1024)
    assert path.stat().st_size < 1.5 * MB
    said, peak_mb = read_in_child(path)
    assert said["error"].startswith(
        "LimitExceeded: file 'cell.xlsx', row 2, column 'A': the value takes more than "
        "8,388,608 bytes in the workbook (the limit is 1,048,576 characters; set "
        "CCTASKS_MAX_FIELD_CHARS to change it)"
    )
    assert peak_mb < 500


def test_a_small_workbook_of_millions_of_rows_is_refused_in_bounded_memory(
    tmp_path: Path,
) -> None:
    rows = b"<row><c><v>1</v></c></row>" * 40_000
    sheet = Part(SHEET, SHEET_START + inline_row(1, "account"), rows, 300, SHEET_END)
    path = write_workbook(tmp_path / "rows.xlsx", sheet)  # 12 million rows
    assert path.stat().st_size < MB
    said, peak_mb = read_in_child(path)
    assert said["error"] == (
        f"LimitExceeded: file 'rows.xlsx': the sheet '{SHEET}' has more than 10,000,000 data "
        "rows (the limit is 10,000,000 rows; set CCTASKS_MAX_ROWS to change it)"
    )
    assert peak_mb < 500


def test_a_workbook_whose_zip_directory_understates_a_size_is_refused(tmp_path: Path) -> None:
    bomb = one_cell_bomb(tmp_path / "cell.xlsx", 1024)
    liar = tmp_path / "liar.xlsx"
    one_cell_bomb(liar, 1024)
    write_workbook(  # the same sheet, said to be 1 MiB
        liar,
        Part(
            SHEET,
            SHEET_START + inline_row(1, "account") + b'<row r="2"><c r="A2" t="inlineStr"><is><t>',
            b"A" * MB,
            1024,
            b"</t></is></c></row>" + SHEET_END,
        ),
        stated_sheet_size=MB,
    )
    assert liar.stat().st_size == pytest.approx(bomb.stat().st_size, rel=0.01)
    said, peak_mb = read_in_child(liar)
    assert said["error"] == (
        "InvalidFile: file 'liar.xlsx': is not a readable XLSX workbook "
        f"(BadZipFile: Bad CRC-32 for file '{SHEET}')"
    )
    assert peak_mb < 500


def test_a_50_mb_field_names_its_file_row_and_column_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("account,phone1,note\n")
        out.writelines(f"A{i},2127365000,short\n" for i in range(10))
        out.write("A99,2127365000," + "x" * (50 * MB) + "\n")
        out.write("A100,2127365000,short\n")
    said, peak_mb = read_in_child(path)
    assert said["error"] == (
        "LimitExceeded: file 'big.csv', row 12, column 'note': the value is too long "
        "(the limit is 1,048,576 characters; set CCTASKS_MAX_FIELD_CHARS to change it)"
    )
    assert peak_mb < 500


# --- the limits, through the readers --------------------------------------------------------


def test_a_quoted_field_longer_than_a_read_block_is_found_after_quoted_newlines(
    tmp_path: Path,
) -> None:
    # Quoted newlines and doubled quotes before it must not shift the row or the column.
    text = (
        'id,note,extra\n1,"two\nlines",a\n\n2,"say ""hi""",b\n'
        + '3,short,"'
        + 'y""' * MB
        + '"\n4,x,y\n'
    )
    path = write(tmp_path / "q.csv", text)
    with pytest.raises(LimitExceeded, match=r"file 'q.csv', row 4, column 'extra': the value is"):
        list(read_table(path, name="q.csv"))


def test_a_row_longer_than_a_block_without_a_long_value_is_named(tmp_path: Path) -> None:
    header = ",".join(f"c{i}" for i in range(40))
    # 2.6 MB, each value 65,000 characters: Arrow reads a row across two blocks at most.
    row = ",".join("v" * 65_000 for _ in range(40))
    path = write(tmp_path / "r.csv", f"{header}\n1{',' * 39}\n{row}\n")
    with pytest.raises(
        LimitExceeded,
        match=r"file 'r.csv', row 3: the row is longer than the 1,048,576 bytes that a row of "
        r"a text file may take .* CCTASKS_MAX_FIELD_CHARS",
    ):
        list(read_table(path, name="r.csv"))
    # The block grows with the value limit: the same row then reads.
    limits = ReadLimits(max_field_chars=3 * MB)
    rows = [c.rows for c in read_table(path, name="r.csv", limits=limits)]
    assert rows == [2]


def test_values_over_the_limit_name_their_row_and_column_in_every_format(tmp_path: Path) -> None:
    limits = ReadLimits(max_field_chars=1000)
    # Characters count, not bytes: 900 "é" take 1,800 bytes and are within the limit.
    rows = "".join(f"A{i},{'é' * 900}\n" for i in range(5000))
    path = write(tmp_path / "v.csv", f"account,note\n{rows}A5000,{'x' * 1001}\n")
    with pytest.raises(
        LimitExceeded,
        match=r"file 'v.csv', row 5002, column 'note': the value is 1,001 characters long "
        r"\(the limit is 1,000 characters; set CCTASKS_MAX_FIELD_CHARS",
    ):
        list(read_table(path, name="v.csv", limits=limits, chunk_rows=2000))
    book = Workbook()
    sheet = book.active
    sheet.append(["account", "note"])
    sheet.append(["A1", "é" * 1000])
    sheet.append(["A2", "x" * 1001])
    book.save(tmp_path / "v.xlsx")
    with pytest.raises(LimitExceeded, match=r"file 'v.xlsx', row 3, column 'note': the value is"):
        list(read_table(tmp_path / "v.xlsx", name="v.xlsx", limits=limits))
    fixed = write(tmp_path / "v.dat", "account note\nA1     " + "y" * 1001 + "\n")
    with pytest.raises(LimitExceeded, match=r"file 'v.dat', row 2, column 'note'"):
        list(read_table(fixed, name="v.dat", widths=[7, 2000], limits=limits))


def test_rows_over_the_limit_fail_at_the_first_row_beyond_it(tmp_path: Path) -> None:
    limits = ReadLimits(max_rows=5)
    path = write(tmp_path / "r.csv", "account\n" + "".join(f"A{i}\n" for i in range(5)))
    assert sum(c.rows for c in read_table(path, name="r.csv", limits=limits)) == 5
    path = write(tmp_path / "r.csv", "account\n" + "".join(f"A{i}\n" for i in range(9)))
    with pytest.raises(
        LimitExceeded,
        match=r"file 'r.csv', row 7: the file has too many data rows \(the limit is 5 rows; "
        r"set CCTASKS_MAX_ROWS to change it\)",
    ):
        list(read_table(path, name="r.csv", limits=limits, chunk_rows=3))


def test_a_sheet_with_a_row_numbered_beyond_the_limit_is_refused_before_it_is_read(
    tmp_path: Path,
) -> None:
    # openpyxl would yield every blank row up to it, one by one.
    sheet = Part(SHEET, SHEET_START + inline_row(1, "account") + inline_row(99_999_999, "A1"))
    path = write_workbook(tmp_path / "sparse.xlsx", Part(SHEET, sheet.prefix + SHEET_END))
    started = time.monotonic()
    with pytest.raises(LimitExceeded, match=r"has more than 10,000,000 data rows"):
        read_table(path, name="sparse.xlsx")
    assert time.monotonic() - started < 10
    limits = ReadLimits(max_rows=10)
    path = write_workbook(
        tmp_path / "gap.xlsx",
        Part(SHEET, SHEET_START + inline_row(1, "account") + inline_row(40, "A1") + SHEET_END),
    )
    with pytest.raises(LimitExceeded, match=r"'gap.xlsx': the sheet '.*' has more than 10 data"):
        read_table(path, name="gap.xlsx", limits=limits)
    # A row number the check does not look at (not the first attribute): the reader
    # itself stops at the first row beyond the limit.
    late = inline_row(40, "A1").replace(b'<row r="40">', b'<row spans="1:1" r="40">')
    path = write_workbook(
        tmp_path / "late.xlsx",
        Part(SHEET, SHEET_START + inline_row(1, "account") + late + SHEET_END),
    )
    with pytest.raises(LimitExceeded, match=r"file 'late.xlsx', row 12: the sheet has too many"):
        list(read_table(path, name="late.xlsx", limits=limits))


def test_a_workbook_over_the_size_or_strings_limits_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = one_cell_bomb(tmp_path / "big.xlsx", 3)
    monkeypatch.setenv("CCTASKS_MAX_XLSX_BYTES", "2_000_000")
    with pytest.raises(
        LimitExceeded,
        match=r"file 'big.xlsx': the workbook decompresses to 3,14\d,\d{3} bytes \(the limit is "
        r"2,000,000 bytes; set CCTASKS_MAX_XLSX_BYTES to change it\)",
    ):
        read_table(path, name="big.xlsx")
    strings = Part(
        "xl/sharedStrings.xml", b"<sst " + b'xmlns="x">', b"<si><t>a</t></si>", 101, b"</sst>"
    )
    sheet = Part(SHEET, SHEET_START + inline_row(1, "account") + SHEET_END)
    path = write_workbook(tmp_path / "strings.xlsx", sheet, strings)
    with pytest.raises(LimitExceeded, match=r"shared-strings table holds more than 100 texts"):
        read_table(path, name="strings.xlsx", limits=ReadLimits(max_xlsx_strings=100))
    # openpyxl parses the styles whole: 17 MiB of them is refused, whatever the limits.
    styles = Part("xl/styles.xml", b"<styleSheet " + b'xmlns="x"><cellXfs>', b"<xf/>", 3_600_000)
    path = write_workbook(tmp_path / "styles.xlsx", sheet, extra=(styles,))
    with pytest.raises(
        InvalidFile,
        match=r"the part 'xl/styles.xml' is 18,000,0\d\d bytes decompressed; a workbook's parts "
        r"other than its sheets and shared strings take at most 16,777,216",
    ):
        read_table(path, name="styles.xlsx", limits=ReadLimits())


@pytest.mark.parametrize(
    "markup, what",
    [
        (b'<!DOCTYPE x [<!ENTITY a "aaaa">]>', "a document type declaration"),
        (b"<![CDATA[<<<<]]>", "a CDATA section"),
    ],
)
def test_a_workbook_with_a_dtd_or_cdata_is_refused(
    tmp_path: Path, markup: bytes, what: str
) -> None:
    sheet = Part(SHEET, SHEET_START + inline_row(1, "account") + markup + SHEET_END)
    path = write_workbook(tmp_path / "odd.xlsx", sheet)
    with pytest.raises(InvalidFile, match=f"the part '{SHEET}' holds {what}"):
        read_table(path, name="odd.xlsx")


def test_a_read_that_takes_too_long_fails_naming_the_limit(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "account\n" + "".join(f"A{i}\n" for i in range(10)))
    chunks = iter(
        read_table(path, name="t.csv", chunk_rows=2, limits=ReadLimits(max_read_seconds=1))
    )
    assert next(chunks).rows == 2
    time.sleep(1.2)  # a slow load: the reader waits for it
    with pytest.raises(
        LimitExceeded,
        match=r"file 't.csv': reading the file took too long; it had read up to row 5 \(the "
        r"limit is 1 seconds; set CCTASKS_MAX_READ_SECONDS to change it\)",
    ):
        next(chunks)


def test_limits_are_settings_read_when_a_file_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert get_settings().read_limits == ReadLimits()
    assert ReadLimits() == ReadLimits(
        max_xlsx_bytes=2 << 30,
        max_xlsx_strings=4 << 20,
        max_rows=10_000_000,
        max_field_chars=1 << 20,
        max_columns=16_384,
        max_read_seconds=1800,
    )
    path = write(tmp_path / "r.csv", "account\nA1\nA2\n")
    monkeypatch.setenv("CCTASKS_MAX_ROWS", "1")
    with pytest.raises(LimitExceeded, match="CCTASKS_MAX_ROWS"):
        list(read_table(path, name="r.csv"))
    monkeypatch.setenv("CCTASKS_MAX_ROWS", "lots")
    with pytest.raises(InvalidParameter, match="CCTASKS_MAX_ROWS must be a positive whole"):
        read_table(path, name="r.csv")


# --- headers -----------------------------------------------------------------------------


def test_a_wide_header_is_read_whole(tmp_path: Path) -> None:
    # 12,000 names take about 110 KB: beyond the 64 KiB sample, where a cut name
    # ("c1" of "c1234") used to repeat an earlier one.
    names = [f"c{i}" for i in range(12_000)]
    path = write(tmp_path / "wide.csv", ",".join(names) + "\n" + ",".join(names) + "\n")
    reader = read_table(path, name="wide.csv")
    assert reader.header == names
    (chunk,) = list(reader)
    assert chunk.table.column("c11999").to_pylist() == ["c11999"]


def test_a_header_wider_than_the_limit_names_the_limit_not_a_duplicate(tmp_path: Path) -> None:
    path = write(tmp_path / "w.csv", ",".join(f"c{i}" for i in range(20_000)) + "\n1\n")
    with pytest.raises(
        LimitExceeded,
        match=r"file 'w.csv', row 1: the header has 20,000 columns \(the limit is 16,384 "
        r"columns; set CCTASKS_MAX_COLUMNS to change it\)",
    ):
        read_table(path, name="w.csv")
    # A header line with no end within a block: its width is still what is reported.
    path = write(tmp_path / "w.csv", "a," * MB + "\n1\n")
    with pytest.raises(LimitExceeded, match=r"row 1: the header has more than 524,288 columns"):
        read_table(path, name="w.csv")


# --- messages ----------------------------------------------------------------------------


def test_every_error_message_is_capped(tmp_path: Path) -> None:
    for error in (CCTasksError, InvalidParameter, LimitExceeded):
        message = str(error("x" * 70_000))
        assert len(message) == 500 and message.endswith("x…")
    message = str(InvalidFile("y" * 70_000, file="f.csv", row=3))
    assert message.startswith("file 'f.csv', row 3: yyy") and len(message) == 500
    assert str(InvalidFile("short", file="f.csv")) == "file 'f.csv': short"
    # Through a reader: a header of one 100,000-character name, twice.
    name = "n" * 100_000
    path = write(tmp_path / "h.csv", f"{name},{name}\n1,2\n")
    with pytest.raises(InvalidFile) as caught:
        read_table(path, name="h.csv")
    assert str(caught.value) == (
        f"file 'h.csv', row 1: the column name '{'n' * 23}…' appears more than once "
        "(ignoring case and spaces)"
    )


def test_errors_quote_a_few_short_column_names_and_no_data(tmp_path: Path) -> None:
    header = [f"Column number {i} of the partner's export" for i in range(12)]
    with pytest.raises(InvalidFile) as caught:
        match_column(header, "Phone", file="f.csv")
    assert str(caught.value) == (
        "file 'f.csv', column 'Phone': no column named 'Phone'; the file has "
        + quoted_columns(header)
    )
    assert quoted_columns(header).endswith("'Column number 4 of the …' and 7 more")
    # A file that is not a list: its first line is all that can be quoted, and only a little.
    secret = "root:$y$j9T$Kx3QnM0aZb1Yc2Xd3We4Vf5:20228:0:99999:7:::"
    path = write(tmp_path / "shadow", secret + "\nnobody:*:20228:0:99999:7:::\n")
    reader = read_table(path, name="shadow")
    with pytest.raises(InvalidFile) as caught:
        validate_mapping(None, reader.header, "account", file="shadow")
    assert "the file has 'root:$y$j9T$Kx3QnM0aZb1…';" in str(caught.value)
    assert "Kx3QnM0aZb1Y" not in str(caught.value)
    # A ragged row's text (Arrow puts it in its message) stays out of the error.
    path = write(tmp_path / "r.csv", "a,b\n" + "1,2\n" * 10 + "secret-value\n")
    with pytest.raises(InvalidFile) as caught:
        list(read_table(path, name="r.csv"))
    assert "secret-value" not in str(caught.value) and "row 12" in str(caught.value)
