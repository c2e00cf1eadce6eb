"""Each report format, rendered from a report built in memory (no database needed)."""

from __future__ import annotations

import base64
import csv
import io
import re
import zipfile
from datetime import datetime
from zoneinfo import ZoneInfo

import openpyxl
import pandas as pd
import pytest

from contact_center.exceptions import InvalidParameter
from contact_center.reports import ReportData, render, resolve_period, validate_formats
from contact_center.reports.charts import bar_chart
from contact_center.reports.mail import compose_report_email, validate_addresses

NY = ZoneInfo("America/New_York")
NOW = datetime(2026, 3, 9, 7, 0, tzinfo=NY)


def sample(rows: int = 3) -> ReportData:
    period = resolve_period("yesterday", "America/New_York", NOW)
    daily = pd.DataFrame(
        {
            "Campaign": ['=HYPERLINK("http://x")', "Café ☕ Ünïcode", "+1 (212) 555-0100"]
            + [f"Campaign {i:04d}" for i in range(rows - 3)],
            "Day": ["2026-03-08"] * rows,
            "Attempts": list(range(rows)),
            "Completion rate (%)": [12.5] * rows,
        }
    )
    totals = pd.DataFrame({"Campaign": ["All"], "Attempts": [sum(range(rows))], "Note": [None]})
    frame = pd.DataFrame({"attempts": [4, 2]}, index=["2026-03-07", "2026-03-08"])
    return ReportData(
        name="campaign-summary",
        title="Campaign summary",
        period=period,
        generated_at=NOW,
        tables={"Daily": daily, "Campaign totals": totals},
        highlights={"Attempts": 3, "Completion rate (%)": 12.5},
        chart=bar_chart(frame, title="Attempts", ylabel="calls"),
        chart_title="Attempts per day",
    )


def test_csv_one_file_per_table_with_formulas_neutralised() -> None:
    files = render(sample(), ["csv"])
    assert [f.name for f in files] == [
        "campaign-summary_2026-03-08_daily.csv",
        "campaign-summary_2026-03-08_campaign-totals.csv",
    ]
    assert all(f.media_type == "text/csv" for f in files)
    rows = list(csv.reader(io.StringIO(files[0].content.decode("utf-8"))))
    assert rows[0] == ["Campaign", "Day", "Attempts", "Completion rate (%)"]
    assert rows[1][0] == '\'=HYPERLINK("http://x")'
    assert rows[2] == ["Café ☕ Ünïcode", "2026-03-08", "1", "12.5"]
    assert rows[3][0] == "'+1 (212) 555-0100"
    totals = list(csv.reader(io.StringIO(files[1].content.decode("utf-8"))))
    assert totals == [["Campaign", "Attempts", "Note"], ["All", "3", ""]]


def test_xlsx_bold_frozen_header_widths_text_cells_and_chart() -> None:
    (file,) = render(sample(), ["xlsx"])
    assert file.name == "campaign-summary_2026-03-08.xlsx"
    book = openpyxl.load_workbook(io.BytesIO(file.content))
    assert book.sheetnames == ["Daily", "Campaign totals", "Chart"]
    sheet = book["Daily"]
    assert [c.value for c in sheet[1]] == ["Campaign", "Day", "Attempts", "Completion rate (%)"]
    assert all(c.font.bold for c in sheet[1])
    assert not sheet["A2"].font.bold
    assert sheet.freeze_panes == "A2"
    # A text cell that looks like a formula stays text: it is never evaluated.
    assert sheet["A2"].value == '=HYPERLINK("http://x")' and sheet["A2"].data_type == "s"
    assert sheet["C3"].value == 1 and sheet["D3"].value == 12.5
    assert sheet.column_dimensions["A"].width >= len('=HYPERLINK("http://x")')
    assert sheet.column_dimensions["B"].width < sheet.column_dimensions["A"].width
    assert book["Campaign totals"].freeze_panes == "A2"
    with zipfile.ZipFile(io.BytesIO(file.content)) as archive:
        assert any(n.startswith("xl/media/") for n in archive.namelist())  # the chart


def test_html_is_standalone_with_tables_and_embedded_chart() -> None:
    (file,) = render(sample(), ["html"])
    page = file.content.decode("utf-8")
    assert page.startswith("<!DOCTYPE html>") and file.media_type == "text/html"
    assert page.count("<table>") == 2
    assert "<th>Completion rate (%)</th>" in page
    assert "Café ☕ Ünïcode" in page and "=HYPERLINK(&quot;http://x&quot;)" in page
    match = re.search(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', page)
    assert match and base64.b64decode(match.group(1)).startswith(b"\x89PNG\r\n\x1a\n")
    assert 'src="http' not in page and "<link" not in page and "<script" not in page


def pdf_pages(content: bytes) -> int:
    """The page count in the PDF's page tree (and as many page objects)."""
    match = re.search(rb"/Count (\d+)", content)
    assert match, "no page tree"
    count = int(match.group(1))
    assert len(re.findall(rb"/Type\s*/Page\b", content)) == count
    return count


def test_pdf_has_pages_and_paginates_long_tables() -> None:
    (short,) = render(sample(), ["pdf"])
    assert short.content.startswith(b"%PDF-")
    assert short.content.rstrip().endswith(b"%%EOF")
    assert 1 <= pdf_pages(short.content) <= 2
    (long,) = render(sample(rows=400), ["pdf"])
    assert pdf_pages(long.content) >= 5


def test_every_format_at_once_and_format_checks() -> None:
    files = render(sample(), ["PDF", "xlsx", "html", "csv", "pdf"])
    assert [f.name.rsplit(".", 1)[1] for f in files] == ["pdf", "xlsx", "html", "csv", "csv"]
    assert validate_formats("csv, xlsx") == ["csv", "xlsx"]
    with pytest.raises(InvalidParameter, match="format 'docx' is not one of csv, xlsx, html, pdf"):
        validate_formats(["pdf", "docx"])
    with pytest.raises(InvalidParameter, match="at least one"):
        validate_formats([])


def test_email_message_summary_and_attachments() -> None:
    data = sample()
    files = render(data, ["pdf", "csv"])
    message = compose_report_email(
        data, files, sender="Reports <reports@cc.example>",
        recipients=["a@cc.example", "Bo <b@cc.example>"],
    )  # fmt: skip
    assert message["Subject"] == "Campaign summary · 2026-03-08 (America/New_York)"
    assert message["To"] == "a@cc.example, Bo <b@cc.example>"
    html_part = message.get_body(("html",))
    assert html_part is not None and "Attempts" in html_part.get_content()
    attachments = {a.get_filename(): a.get_content() for a in message.iter_attachments()}
    assert set(attachments) == {f.name for f in files}
    assert attachments["campaign-summary_2026-03-08.pdf"].startswith(b"%PDF")


@pytest.mark.parametrize(
    "value, match",
    [
        ("not-an-address", "not a valid email address"),
        ("a@b", "not a valid email address"),
        ("a@b.com\r\nBcc: evil@x.com", "not a single email address"),
        ("", "not a single email address"),
    ],
)
def test_bad_addresses(value: str, match: str) -> None:
    with pytest.raises(InvalidParameter, match=match):
        validate_addresses(["ok@cc.example", value])


def test_addresses_accept_lists_strings_and_names() -> None:
    assert validate_addresses("a@cc.example; B <b@cc.example>, a@cc.example") == [
        "a@cc.example",
        "B <b@cc.example>",
    ]
