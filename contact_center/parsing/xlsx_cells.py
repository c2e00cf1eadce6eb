"""The cells of an XLSX sheet as text, read with openpyxl (read-only).

Pure: it opens one local workbook and turns its values into the text a user sees
(an integral float loses its ``.0``, a date is ISO), its errors named with the row.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from contact_center.exceptions import InvalidFile

__all__ = ["column_letter", "open_workbook", "sheet_rows", "xlsx_header_row", "xlsx_text"]


@contextmanager
def open_workbook(path: Path, name: str) -> Iterator[Any]:
    """Open a workbook read-only; by handle, because openpyxl judges a path by its suffix."""
    from openpyxl import load_workbook

    with path.open("rb") as handle:
        try:
            workbook = load_workbook(handle, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises zipfile, KeyError, InvalidFileException...
            raise InvalidFile(
                f"is not a readable XLSX workbook ({type(exc).__name__}: {exc})", file=name
            ) from exc
        try:
            yield workbook
        finally:
            workbook.close()


def sheet_rows(sheet: Any, name: str) -> Iterator[tuple[Any, ...]]:
    """A sheet's rows as openpyxl reads them, its errors named with the row they are in."""
    rows = sheet.iter_rows(values_only=True)
    number = 1
    while True:
        try:
            values = next(rows)
        except StopIteration:
            return
        except Exception as exc:  # openpyxl raises XML, number, index errors...
            # The type only: openpyxl's messages quote the cell's text.
            raise InvalidFile(
                f"the sheet cannot be read ({type(exc).__name__})", file=name, row=number
            ) from exc
        yield values
        number += 1


def xlsx_header_row(rows: Iterator[tuple[Any, ...]]) -> tuple[int, list[str]]:
    """Advance ``rows`` past the first non-blank row; return its number (0 if none) and text."""
    for number, values in enumerate(rows, start=1):
        cells = [xlsx_text(v) for v in values]
        if any(cells):
            return number, cells
    return 0, []


def xlsx_text(value: Any) -> str:
    """A cell's value as the text a user sees (an integral float loses its ``.0``)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime):
        if value.time() == time(0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def column_letter(index: int) -> str:
    """The spreadsheet letter of a 0-based column index (0 -> A, 26 -> AA)."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = _LETTERS[rest] + letters
    return letters
