"""Reading list files: formats, encodings, delimiters, chunks, row numbers, bad shapes."""

from __future__ import annotations

import codecs
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from openpyxl import Workbook

from contact_center.exceptions import InvalidFile, InvalidParameter
from contact_center.parsing.detection import detect_encoding
from contact_center.parsing.files import read_table
from contact_center.parsing.headers import match_column
from contact_center.parsing.table_reader import Chunk


def rows_of(chunks: list[Chunk]) -> list[dict[str, str]]:
    """All rows of all chunks, as dicts, with their file row number under ``_row``."""
    out = []
    for chunk in chunks:
        for offset, record in enumerate(chunk.frame.to_dict("records")):
            out.append({"_row": chunk.first_row + offset, **record})
    return out


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


# --- delimited text ----------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_each_delimiter_is_detected_and_quotes_hold_delimiters_quotes_and_newlines(
    tmp_path: Path, delimiter: str
) -> None:
    d = delimiter
    text = (
        f"Account{d}Phone{d}Note\r\n"
        f'A1{d}212-736-5000{d}"has {d} a delimiter"\r\n'
        f'A2{d}"(212) 736-5001"{d}"says ""hi""\r\nand goes on"\r\n'
        f"A3{d}2127365002{d}plain\r\n"
    )
    path = write(tmp_path / "leads.csv", text)
    reader = read_table(path, name="leads.csv")
    assert (reader.format, reader.delimiter, reader.encoding) == ("csv", d, "utf-8")
    assert reader.header == ["Account", "Phone", "Note"]
    rows = rows_of(list(reader))
    assert [r["_row"] for r in rows] == [2, 3, 4]  # the quoted newline does not start a row
    assert rows[0]["Note"] == f"has {d} a delimiter"
    assert rows[1]["Note"] == 'says "hi"\r\nand goes on'
    assert rows[1]["Phone"] == "(212) 736-5001"
    assert reader.rows_read == 3


def test_every_cell_is_text_and_empty_cells_are_empty_strings(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "zip,n,blank\n02134,1.50,\n")
    frame = next(iter(read_table(path, name="a.csv"))).frame
    assert frame.to_dict("records") == [{"zip": "02134", "n": "1.50", "blank": ""}]
    assert all(isinstance(dtype, pd.StringDtype) for dtype in frame.dtypes)


def test_chunks_are_arrow_string_tables_in_every_format(tmp_path: Path) -> None:
    csv_path = write(tmp_path / "a.csv", " Zip ,n\n02134,\n10001,2\n")
    fixed_path = write(tmp_path / "a.dat", " Zip n\n02134  \n100012 \n")
    xlsx_path = make_xlsx(tmp_path / "a.xlsx", {"s": [[" Zip ", "n"], ["02134", None], [10001, 2]]})
    readers = [
        read_table(csv_path, name="a.csv"),
        read_table(fixed_path, name="a.dat", widths=[5, 2]),
        read_table(xlsx_path, name="a.xlsx"),
    ]
    for reader in readers:
        (chunk,) = list(reader)
        assert chunk.table.column_names == reader.header
        assert chunk.table.schema.types == [pa.string(), pa.string()]
        assert [c.to_pylist() for c in chunk.table.columns] == [["02134", "10001"], ["", "2"]]
        assert chunk.rows == 2 and reader.rows_read == 2
        assert chunk.frame.to_dict("records") == chunk.table.to_pylist()
        assert list(chunk.frame.columns) == reader.header


def test_a_chunk_from_a_frame_has_text_columns_without_nulls() -> None:
    frame = pd.DataFrame({"a": ["x", None], "b": pd.array(["1", pd.NA], dtype="string")})
    chunk = Chunk.from_frame(frame, 7)
    assert chunk.first_row == 7 and chunk.rows == 2
    assert chunk.table.equals(pa.table({"a": ["x", ""], "b": ["1", ""]}))


def test_delimiter_override_and_names(tmp_path: Path) -> None:
    # Commas inside the values would win detection; the override decides.
    path = write(tmp_path / "a.txt", "a;b\nx,y,z;1\n")
    assert read_table(path, name="a.txt", delimiter="semicolon").header == ["a", "b"]
    assert read_table(path, name="a.txt", delimiter=";").delimiter == ";"
    with pytest.raises(InvalidParameter, match="delimiter must be one of"):
        read_table(path, name="a.txt", delimiter=":")


def test_single_column_file_reads_as_one_column(tmp_path: Path) -> None:
    path = write(tmp_path / "dnc.csv", "phone\n2127365000\n2127365001\n")
    reader = read_table(path, name="dnc.csv")
    assert reader.header == ["phone"]
    assert [r["phone"] for r in rows_of(list(reader))] == ["2127365000", "2127365001"]


def test_chunks_are_cut_at_chunk_rows_with_exact_row_numbers(tmp_path: Path) -> None:
    lines = ["id,name"]
    for i in range(1000):
        # every 7th record holds a quoted newline, so that records and lines differ
        lines.append(f'{i},"n{i}\nsecond line"' if i % 7 == 0 else f"{i},n{i}")
    path = write(tmp_path / "big.csv", "\n".join(lines) + "\n\n\n")
    reader = read_table(path, name="big.csv", chunk_rows=300)
    chunks = list(reader)
    assert [len(c.frame) for c in chunks] == [300, 300, 300, 100]
    assert [c.first_row for c in chunks] == [2, 302, 602, 902]
    assert reader.rows_read == 1000
    rows = rows_of(chunks)
    assert all(r["_row"] == int(r["id"]) + 2 for r in rows)
    # the reader can be iterated again
    assert sum(len(c.frame) for c in reader) == 1000


def test_first_chunks_are_smaller_so_that_a_load_starts_sooner(tmp_path: Path) -> None:
    # 4096 rows first, then twice as many each time, up to chunk_rows.
    path = write(tmp_path / "ramp.csv", "id\n" + "".join(f"{i}\n" for i in range(30_000)))
    chunks = list(read_table(path, name="ramp.csv", chunk_rows=10_000))
    assert [len(c.frame) for c in chunks] == [4096, 8192, 10_000, 7712]
    assert [c.first_row for c in chunks] == [2, 4098, 12_290, 22_290]
    assert [int(c.frame["id"].iloc[0]) for c in chunks] == [0, 4096, 12_288, 22_288]


def test_header_only_file_has_no_rows(tmp_path: Path) -> None:
    reader = read_table(write(tmp_path / "h.csv", "account,phone1\n"), name="h.csv")
    assert reader.header == ["account", "phone1"]
    assert list(reader) == []
    assert reader.rows_read == 0


def test_ragged_row_names_file_and_row(tmp_path: Path) -> None:
    text = 'a,b,c\n1,"two\nlines",3\n4,5,6\n7,8\n9,10,11\n'
    path = write(tmp_path / "ragged.csv", text)
    with pytest.raises(
        InvalidFile, match=r"file 'ragged.csv', row 4: expected 3 fields .* found 2"
    ):
        list(read_table(path, name="ragged.csv"))


def test_duplicate_and_blank_header_names(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "Phone,phone \n1,2\n")
    with pytest.raises(InvalidFile, match=r"row 1: the column name 'phone' appears more than once"):
        read_table(path, name="d.csv")
    path = write(tmp_path / "e.csv", "a,,\n1,2,3\n")
    assert read_table(path, name="e.csv").header == ["a", "column_2", "column_3"]


# --- encodings ---------------------------------------------------------------------------

NAMES = "name,city\nJosé Muñoz,Curaçao\nRenée,Zürich\n"


@pytest.mark.parametrize(
    "encoding, expected",
    [
        ("utf-8", "utf-8"),
        ("utf-8-sig", "utf-8-sig"),
        ("iso-8859-1", "iso-8859-1"),
        ("utf-16", "utf-16"),
    ],
)
def test_encodings_are_detected(tmp_path: Path, encoding: str, expected: str) -> None:
    path = write(tmp_path / "n.csv", NAMES, encoding)
    reader = read_table(path, name="n.csv")
    assert reader.encoding == expected
    assert reader.header == ["name", "city"]
    assert rows_of(list(reader))[0] == {"_row": 2, "name": "José Muñoz", "city": "Curaçao"}


def test_windows_1252_with_euro_sign(tmp_path: Path) -> None:
    path = write(tmp_path / "w.csv", "name;amount\nJosé Muñoz;€5 “VIP”\n", "cp1252")
    reader = read_table(path, name="w.csv")
    assert (reader.encoding, reader.delimiter) == ("cp1252", ";")
    assert rows_of(list(reader)) == [{"_row": 2, "name": "José Muñoz", "amount": "€5 “VIP”"}]


def test_a_late_non_ascii_byte_decides_the_encoding(tmp_path: Path) -> None:
    # 200 KB of ASCII first: a sample-only check would call this UTF-8 and fail later.
    body = "".join(f"{i},name{i}\n" for i in range(20_000))
    path = write(tmp_path / "late.csv", "id,name\n" + body + "20000,Müller €\n", "cp1252")
    assert path.stat().st_size > 150_000
    assert detect_encoding(path) == "cp1252"
    rows = rows_of(list(read_table(path, name="late.csv", chunk_rows=5000)))
    assert rows[-1] == {"_row": 20_002, "id": "20000", "name": "Müller €"}


def test_given_encoding_is_used_and_a_wrong_one_names_the_row(tmp_path: Path) -> None:
    path = write(tmp_path / "w.csv", "a,b\n1,x\n2,é\n", "cp1252")
    assert rows_of(list(read_table(path, name="w.csv", encoding="latin-1")))[1]["b"] == "é"
    with pytest.raises(InvalidFile, match=r"row 3: the text is not valid utf-8"):
        list(read_table(path, name="w.csv", encoding="utf-8"))
    with pytest.raises(InvalidParameter, match="unknown encoding 'klingon'"):
        read_table(path, name="w.csv", encoding="klingon")


def test_bom_is_not_part_of_the_header(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(codecs.BOM_UTF8 + b"Account,Phone\nA1,1\n")
    reader = read_table(path, name="bom.csv")
    assert reader.header == ["Account", "Phone"]
    assert list(next(iter(reader)).frame.columns) == ["Account", "Phone"]


# --- wrong shapes ------------------------------------------------------------------------


def make_xlsx(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    workbook = Workbook()
    workbook.remove(workbook.active)
    for title, rows in sheets.items():
        sheet = workbook.create_sheet(title)
        for row in rows:
            sheet.append(row)
    workbook.save(path)
    return path


def test_xlsx_bytes_named_csv_are_refused(tmp_path: Path) -> None:
    make_xlsx(tmp_path / "book.xlsx", {"S": [["a"], [1]]})
    fake = tmp_path / "leads.csv"
    fake.write_bytes((tmp_path / "book.xlsx").read_bytes())
    with pytest.raises(
        InvalidFile, match=r"file 'leads.csv': expected delimited text but the file is a ZIP"
    ):
        read_table(fake, name="leads.csv")
    # named for what it is, or read with format="xlsx", it is fine
    assert read_table(fake, name="leads.csv", format="xlsx").header == ["a"]


@pytest.mark.parametrize(
    "content, match",
    [
        (bytes(range(256)) * 40, "binary data"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600, "legacy Excel .xls"),
        (b"%PDF-1.7\n...", "a PDF document"),
        (b"", "empty"),
    ],
)
def test_binary_and_empty_files_are_refused(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(content)
    with pytest.raises(InvalidFile, match=match):
        read_table(path, name="x.csv")


def test_text_named_xlsx_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "a.xlsx", "a,b\n1,2\n")
    with pytest.raises(InvalidFile, match=r"expected an XLSX workbook but the file is text"):
        read_table(path, name="a.xlsx")


def test_auto_format_sniffs_content_when_the_name_says_nothing(tmp_path: Path) -> None:
    make_xlsx(tmp_path / "book", {"S": [["a"], [1]]})
    assert read_table(tmp_path / "book", name="book").format == "xlsx"
    write(tmp_path / "plain", "a|b\n1|2\n")
    assert read_table(tmp_path / "plain", name="plain").delimiter == "|"
    with pytest.raises(InvalidParameter, match="format must be one of"):
        read_table(tmp_path / "plain", name="plain", format="json")


# --- XLSX --------------------------------------------------------------------------------


def test_xlsx_values_are_text_as_shown(tmp_path: Path) -> None:
    rows: list[list[object]] = [
        ["Account", "Phone", "ZIP", "Call at", "Score", "Flag"],
        ["A1", 2127365000.0, "02134", datetime(2024, 5, 1, 9, 30), 1.5, True],
        ["A2", 2127365001, "10001", datetime(2024, 5, 2), None, False],
        [None, None, None, None, None, None],  # a blank row in the middle is a row
        ["A4", "+44 20 7946 0958", 2134, None, 0.1, None],
        [None, None, None, None, None, None],  # trailing blank rows are not
        [None, None, None, None, None, None],
    ]
    path = make_xlsx(tmp_path / "list.xlsx", {"Leads": rows})
    reader = read_table(path, name="list.xlsx")
    assert (reader.format, reader.sheet, reader.encoding) == ("xlsx", "Leads", None)
    assert reader.header == ["Account", "Phone", "ZIP", "Call at", "Score", "Flag"]
    got = rows_of(list(reader))
    assert got == [
        {"_row": 2, "Account": "A1", "Phone": "2127365000", "ZIP": "02134",
         "Call at": "2024-05-01 09:30:00", "Score": "1.5", "Flag": "TRUE"},
        {"_row": 3, "Account": "A2", "Phone": "2127365001", "ZIP": "10001",
         "Call at": "2024-05-02", "Score": "", "Flag": "FALSE"},
        {"_row": 4, "Account": "", "Phone": "", "ZIP": "", "Call at": "", "Score": "", "Flag": ""},
        {"_row": 5, "Account": "A4", "Phone": "+44 20 7946 0958", "ZIP": "2134",
         "Call at": "", "Score": "0.1", "Flag": ""},
    ]  # fmt: skip
    assert reader.rows_read == 4


def test_xlsx_named_sheet_and_chunks(tmp_path: Path) -> None:
    other = [["x"], ["not this"]]
    wanted = [["account", "phone1"]] + [[f"A{i}", 2120000000 + i] for i in range(25)]
    path = make_xlsx(tmp_path / "two.xlsx", {"Notes": other, "Leads": wanted})
    reader = read_table(path, name="two.xlsx", sheet="Leads", chunk_rows=10)
    assert reader.header == ["account", "phone1"]
    chunks = list(reader)
    assert [(len(c.frame), c.first_row) for c in chunks] == [(10, 2), (10, 12), (5, 22)]
    assert chunks[2].frame["phone1"].tolist()[-1] == "2120000024"
    assert read_table(path, name="two.xlsx").header == ["x"]
    with pytest.raises(
        InvalidFile, match=r"there is no sheet 'Missing'; the workbook has 'Notes', 'Leads'"
    ):
        read_table(path, name="two.xlsx", sheet="Missing")


def test_xlsx_header_lower_down_keeps_sheet_row_numbers(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "h.xlsx", {"S": [[None], [None], ["id", "v"], ["a", 1]]})
    reader = read_table(path, name="h.xlsx")
    assert reader.header == ["id", "v"]
    assert [c.first_row for c in reader] == [4]


def test_xlsx_value_beyond_the_header_names_row_and_column(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "x.xlsx", {"S": [["a", "b"], [1, 2], [3, 4, "stray"]]})
    with pytest.raises(InvalidFile, match=r"row 3, column 'C': a value lies beyond") as caught:
        list(read_table(path, name="x.xlsx"))
    assert "stray" not in str(caught.value)  # errors do not quote a file's data


def test_broken_xlsx_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.xlsx"
    path.write_bytes(b"PK\x03\x04" + b"garbage" * 100)
    with pytest.raises(InvalidFile, match=r"file 'bad.xlsx': is not a readable XLSX workbook"):
        read_table(path, name="bad.xlsx")


# --- fixed width -------------------------------------------------------------------------


def test_fixed_width_with_header_line(tmp_path: Path) -> None:
    text = (
        "\r\n"  # a blank line before the header
        "ACCOUNT   PHONE       ZIP  \r\n"
        "A1        2127365000  02134\r\n"
        "\r\n"
        "A2        (212)736500110001\r\n"
        "A3        2127365002\r\n"
    )
    path = write(tmp_path / "list.dat", text, "cp1252")
    reader = read_table(path, name="list.dat", format="fixed", widths=[10, 12, 5])
    assert reader.format == "fixed"
    assert reader.header == ["ACCOUNT", "PHONE", "ZIP"]
    assert rows_of(list(reader)) == [
        {"_row": 3, "ACCOUNT": "A1", "PHONE": "2127365000", "ZIP": "02134"},
        {"_row": 4, "ACCOUNT": "A2", "PHONE": "(212)7365001", "ZIP": "10001"},
        {"_row": 5, "ACCOUNT": "A3", "PHONE": "2127365002", "ZIP": ""},
    ]


def test_fixed_width_with_column_names_has_no_header_line(tmp_path: Path) -> None:
    path = write(tmp_path / "f.txt", "Müller 021\nRenée  100\n", "iso-8859-1")
    reader = read_table(path, name="f.txt", widths=[7, 3], columns=["name", "code"])
    assert (reader.format, reader.encoding) == ("fixed", "iso-8859-1")
    assert rows_of(list(reader)) == [
        {"_row": 1, "name": "Müller", "code": "021"},
        {"_row": 2, "name": "Renée", "code": "100"},
    ]


def test_fixed_width_line_too_long_names_the_row(tmp_path: Path) -> None:
    path = write(tmp_path / "f.txt", "ab12\ncd34\nef56extra\n")
    with pytest.raises(InvalidFile, match=r"row 3: the line is longer than the column spec"):
        list(read_table(path, name="f.txt", widths=[2, 2], columns=["a", "b"]))


@pytest.mark.parametrize(
    "widths, columns, match",
    [
        ([], None, "needs `widths`"),
        ([3, 0], None, "needs `widths`"),
        ([3, 3], ["a"], "has 1 names but `widths` has 2"),
        ([3, 3], ["a", "A"], "appears more than once"),
    ],
)
def test_fixed_width_spec_is_checked(
    tmp_path: Path, widths: list[int], columns: list[str] | None, match: str
) -> None:
    path = write(tmp_path / "f.txt", "abcdef\n")
    with pytest.raises(InvalidParameter, match=match):
        read_table(path, name="f.txt", format="fixed", widths=widths, columns=columns)


# --- header matching ---------------------------------------------------------------------


def test_match_column_ignores_case_and_surrounding_spaces() -> None:
    header = [" Account ", "PHONE 1", "Zip"]
    assert match_column(header, "account", file="f.csv") == " Account "
    assert match_column(header, " phone 1", file="f.csv") == "PHONE 1"
    with pytest.raises(
        InvalidFile,
        match=r"file 'f.csv', column 'mobile': no column named 'mobile'; "
        r"the file has ' Account ', 'PHONE 1', 'Zip'",
    ):
        match_column(header, "mobile", file="f.csv")
