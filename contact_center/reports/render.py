"""Renderers: a generated report as CSV, XLSX, HTML or PDF bytes. Pure: no file I/O.

- ``csv``: UTF-8 with a header; one file per table (``<report>_<period>_<table>.csv``)
  when a report has several tables.
- ``xlsx`` (openpyxl): one sheet per table with a bold, frozen header row and
  columns as wide as their content, plus a ``Chart`` sheet with the chart.
- ``html``: one standalone page (inline style, the chart as a ``data:`` PNG).
- ``pdf`` (fpdf2): the title, highlights and chart, then each table, paginated
  with its header row repeated on every page. DejaVu Sans (shipped with
  matplotlib) gives it full Unicode without any system font.

Text cells that a spreadsheet would run as a formula (starting with ``=``, ``+``,
``-``, ``@``, tab or CR) are neutralised in CSV with a leading ``'``; in XLSX they
are written as text cells, which are never evaluated.
"""

from __future__ import annotations

import csv
import html
import io
import math
import re
from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd
from fpdf import FPDF
from fpdf.fonts import FontFace
from openpyxl import Workbook
from openpyxl.drawing.image import Image as XlsxImage
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from contact_center.exceptions import InvalidParameter
from contact_center.reports.catalogue import ReportData
from contact_center.settings import REPORT_FORMATS
from contact_center.storage.results_format import neutralise

__all__ = [
    "MEDIA_TYPES",
    "RenderedFile",
    "highlights_html",
    "render",
    "render_csv",
    "render_html",
    "render_pdf",
    "render_xlsx",
    "validate_formats",
]

MEDIA_TYPES = {
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "html": "text/html",
    "pdf": "application/pdf",
}
_MAX_XLSX_WIDTH = 60
_SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
_FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@dataclass(frozen=True)
class RenderedFile:
    """One rendered file.

    Attributes:
        name: the file name (``campaign-summary_2026-03-08.pdf``).
        content: its bytes.
        media_type: its MIME type.
    """

    name: str
    content: bytes
    media_type: str

    @property
    def size(self) -> int:
        """Its size in bytes."""
        return len(self.content)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "table"


def _plain(value: Any) -> Any:
    """A cell value as a plain Python value (None for missing)."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        return value.item()
    return value


def _text(value: Any) -> str:
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}" if abs(value) < 1e15 else str(value)
    return str(value)


def _rows(frame: pd.DataFrame) -> list[list[Any]]:
    return [[_plain(v) for v in row] for row in frame.itertuples(index=False, name=None)]


# --- csv ------------------------------------------------------------------------------


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    return neutralise(value) if isinstance(value, str) else value


def render_csv(report: ReportData) -> list[RenderedFile]:
    """Each table as a CSV file (UTF-8, header row, ``\\r\\n`` line ends)."""
    files = []
    single = len(report.tables) == 1
    for title, frame in report.tables.items():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow([str(c) for c in frame.columns])
        for row in _rows(frame):
            writer.writerow([_csv_cell(v) for v in row])
        name = f"{report.base_name}.csv" if single else f"{report.base_name}_{_slug(title)}.csv"
        files.append(RenderedFile(name, buffer.getvalue().encode("utf-8"), MEDIA_TYPES["csv"]))
    return files


# --- xlsx -----------------------------------------------------------------------------


def _sheet_title(title: str, taken: set[str]) -> str:
    base = _SHEET_FORBIDDEN.sub("-", title)[:31] or "Sheet"
    name, number = base, 2
    while name.lower() in taken:
        suffix = f" ({number})"
        name, number = base[: 31 - len(suffix)] + suffix, number + 1
    taken.add(name.lower())
    return name


def render_xlsx(report: ReportData) -> list[RenderedFile]:
    """One workbook: a sheet per table (bold frozen header, fitted widths) and the chart."""
    book = Workbook()
    book.remove(book.active)
    book.properties.title = f"{report.title} · {report.period.description}"
    taken: set[str] = set()
    bold = Font(bold=True)
    for title, frame in report.tables.items():
        sheet = book.create_sheet(_sheet_title(title, taken))
        headers = [str(c) for c in frame.columns]
        sheet.append(headers)
        for cell in sheet[1]:
            cell.font = bold
        widths = [len(h) for h in headers]
        for row_number, row in enumerate(_rows(frame), start=2):
            for column_number, value in enumerate(row, start=1):
                cell = sheet.cell(row=row_number, column=column_number, value=value)
                if isinstance(value, str):
                    # A text cell is never evaluated, even if it starts with "=".
                    cell.data_type = "s"
                widths[column_number - 1] = max(widths[column_number - 1], len(_text(value)))
        for column_number, width in enumerate(widths, start=1):
            letter = get_column_letter(column_number)
            sheet.column_dimensions[letter].width = min(width + 2, _MAX_XLSX_WIDTH)
        sheet.freeze_panes = "A2"
    if report.chart:
        sheet = book.create_sheet(_sheet_title("Chart", taken))
        sheet["A1"] = report.chart_title or report.title
        sheet["A1"].font = bold
        sheet.add_image(XlsxImage(io.BytesIO(report.chart)), "A3")
    buffer = io.BytesIO()
    book.save(buffer)
    return [RenderedFile(f"{report.base_name}.xlsx", buffer.getvalue(), MEDIA_TYPES["xlsx"])]


# --- html -----------------------------------------------------------------------------

_STYLE = """
body{font-family:-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif;margin:24px;
color:#1f2328}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px}
.meta{color:#59636e;margin:0 0 16px}
.highlights{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0 20px;padding:0}
.highlights li{list-style:none;border:1px solid #d1d9e0;border-radius:6px;padding:8px 12px}
.highlights b{display:block;font-size:18px}
table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #d1d9e0;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa;position:sticky;top:0} td.n{text-align:right}
tr:nth-child(even) td{background:#fbfcfd} img{max-width:100%;height:auto}
.empty{color:#59636e;font-style:italic}
""".strip()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _html_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return '<p class="empty">No rows in this period.</p>'
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for row in _rows(frame):
        cells = "".join(
            f'<td class="n">{html.escape(_text(v))}</td>'
            if _is_number(v)
            else f"<td>{html.escape(_text(v))}</td>"
            for v in row
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def highlights_html(report: ReportData) -> str:
    """The report's highlights as an HTML list (also used in the email body)."""
    items = "".join(
        f"<li>{html.escape(str(label))}<b>{html.escape(_text(value))}</b></li>"
        for label, value in report.highlights.items()
    )
    return f'<ul class="highlights">{items}</ul>'


def render_html(report: ReportData) -> list[RenderedFile]:
    """One standalone HTML page with the highlights, the chart and every table."""
    title = html.escape(f"{report.title} · {report.period.description}")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{title}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(report.title)}</h1>",
        f'<p class="meta">{html.escape(report.period.description)} · generated '
        f"{html.escape(report.generated_at.strftime('%Y-%m-%d %H:%M %Z'))}</p>",
        highlights_html(report),
    ]
    if report.chart:
        encoded = b64encode(report.chart).decode("ascii")
        alt = html.escape(report.chart_title or report.title)
        parts.append(f'<img alt="{alt}" src="data:image/png;base64,{encoded}">')
    for table_title, frame in report.tables.items():
        parts.append(f"<h2>{html.escape(table_title)}</h2>")
        parts.append(_html_table(frame))
    parts.append("</body></html>")
    content = "\n".join(parts).encode("utf-8")
    return [RenderedFile(f"{report.base_name}.html", content, MEDIA_TYPES["html"])]


# --- pdf ------------------------------------------------------------------------------

_PDF_FONT = "DejaVu"


class _ReportPdf(FPDF):
    """A landscape A4 page with a running footer: report, period and page numbers."""

    def __init__(self, footer_text: str) -> None:
        super().__init__(orientation="landscape", unit="mm", format="A4")
        self._footer_text = footer_text
        self.add_font(_PDF_FONT, "", str(_FONT_DIR / "DejaVuSans.ttf"))
        self.add_font(_PDF_FONT, "B", str(_FONT_DIR / "DejaVuSans-Bold.ttf"))
        self.set_auto_page_break(auto=True, margin=14)
        self.set_margins(12, 12, 12)

    def footer(self) -> None:
        self.set_y(-10)
        self.set_font(_PDF_FONT, size=7)
        self.set_text_color(110, 118, 129)
        self.cell(0, 5, f"{self._footer_text}    page {self.page_no()}/{{nb}}", align="C")
        self.set_text_color(0, 0, 0)


def _pdf_widths(pdf: _ReportPdf, frame: pd.DataFrame, rows: list[list[str]]) -> list[float]:
    """Column widths in mm: the widest value or header word (in bold), capped at 70 mm.

    Headers wrap between words only; values wrap only when the table is wider than
    the page and fpdf2 scales it down. The current font is the body font.
    """
    family, size = pdf.font_family, pdf.font_size_pt
    pdf.set_font(family, "B", size)
    words = [pdf.get_string_width(max(str(c).split() or [""], key=len)) for c in frame.columns]
    pdf.set_font(family, "", size)
    widths = []
    for number, word in enumerate(words):
        longest = max([word] + [pdf.get_string_width(row[number]) for row in rows[:500]])
        widths.append(min(longest, 70.0) + 5.0)
    return widths


def _pdf_table(pdf: _ReportPdf, frame: pd.DataFrame) -> None:
    if frame.empty:
        pdf.set_font(_PDF_FONT, size=9)
        pdf.cell(0, 6, "No rows in this period.", new_x="LMARGIN", new_y="NEXT")
        return
    raw = _rows(frame)
    text = [[_text(v) for v in row] for row in raw]
    numeric = [
        all(_is_number(r[i]) or r[i] is None for r in raw) for i in range(len(frame.columns))
    ]
    size = 8 if len(frame.columns) <= 10 else 6.5
    pdf.set_font(_PDF_FONT, size=size)
    widths = _pdf_widths(pdf, frame, text)
    with pdf.table(
        col_widths=tuple(widths),
        text_align=tuple("RIGHT" if n else "LEFT" for n in numeric),
        headings_style=FontFace(emphasis="BOLD", fill_color=(240, 243, 246)),
        line_height=size * 0.55,
        padding=0.8,
        width=min(sum(widths), pdf.epw),
        align="LEFT",
    ) as table:
        heading = table.row()
        for column in frame.columns:
            heading.cell(str(column))
        for row in text:
            cells = table.row()
            for value in row:
                cells.cell(value)


def render_pdf(report: ReportData) -> list[RenderedFile]:
    """A paginated PDF: title, highlights and chart on the first page, then the tables."""
    pdf = _ReportPdf(f"{report.title} · {report.period.description}")
    pdf.set_title(f"{report.title} · {report.period.description}")
    pdf.set_creator("cctasks")
    pdf.set_creation_date(report.generated_at)
    pdf.add_page()
    pdf.set_font(_PDF_FONT, "B", size=16)
    pdf.cell(0, 9, report.title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(_PDF_FONT, size=9)
    pdf.set_text_color(89, 99, 110)
    generated = report.generated_at.strftime("%Y-%m-%d %H:%M %Z")
    pdf.cell(
        0, 5, f"{report.period.description} · generated {generated}", new_x="LMARGIN", new_y="NEXT"
    )
    pdf.set_text_color(0, 0, 0)
    pdf.ln(2)
    if report.highlights:
        summary = "    ".join(f"{k}: {_text(v)}" for k, v in report.highlights.items())
        pdf.set_font(_PDF_FONT, "B", size=10)
        pdf.multi_cell(0, 5.5, summary, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
    if report.chart:
        # The 9 x 4.2 in chart at 190 mm wide leaves room for a table below it.
        width = min(pdf.epw, 190.0)
        pdf.image(io.BytesIO(report.chart), w=width, x=(pdf.w - width) / 2)
        pdf.ln(3)
    for title, frame in report.tables.items():
        if pdf.will_page_break(30):
            pdf.add_page()
        pdf.set_font(_PDF_FONT, "B", size=12)
        pdf.cell(0, 8, title, new_x="LMARGIN", new_y="NEXT")
        _pdf_table(pdf, frame)
        pdf.ln(4)
    return [RenderedFile(f"{report.base_name}.pdf", bytes(pdf.output()), MEDIA_TYPES["pdf"])]


_RENDERERS = {"csv": render_csv, "xlsx": render_xlsx, "html": render_html, "pdf": render_pdf}


def validate_formats(formats: list[str] | tuple[str, ...] | str | None) -> list[str]:
    """The requested formats, lower-cased, without repeats, in the order given.

    Raises:
        InvalidParameter: none given, or one that is not csv, xlsx, html or pdf.
    """
    if isinstance(formats, str):
        formats = [f for f in re.split(r"[,\s]+", formats) if f]
    chosen: list[str] = []
    for fmt in formats or []:
        name = str(fmt).strip().lower()
        if name not in REPORT_FORMATS:
            raise InvalidParameter(f"format {fmt!r} is not one of {', '.join(REPORT_FORMATS)}")
        if name not in chosen:
            chosen.append(name)
    if not chosen:
        raise InvalidParameter(f"formats must name at least one of {', '.join(REPORT_FORMATS)}")
    return chosen


def render(report: ReportData, formats: list[str]) -> list[RenderedFile]:
    """Render ``report`` in each of ``formats`` (see :func:`validate_formats`)."""
    files: list[RenderedFile] = []
    for fmt in validate_formats(formats):
        files.extend(_RENDERERS[fmt](report))
    return files
