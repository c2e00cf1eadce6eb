"""Header names of a table file: how they compare, how a column is found, and the checks
that a header passes (width, blank and duplicate names).

Pure: lists of names in, names or one clear error out.
"""

from __future__ import annotations

from typing import Any

from contact_center.exceptions import InvalidFile, quoted, quoted_columns
from contact_center.parsing.limits import limit_exceeded
from contact_center.settings import ReadLimits

__all__ = ["check_header", "check_header_names", "match_column", "normalise_header"]


def match_column(header: list[str], wanted: str, *, file: str) -> str:
    """Find a column by name, ignoring case and surrounding spaces.

    Args:
        header: the file's column names.
        wanted: the name asked for (e.g. from a mapping).
        file: the file name for messages.

    Returns:
        The column's name exactly as in ``header``.

    Raises:
        InvalidFile: no column, or more than one, has that name.
    """
    key = normalise_header(wanted)
    found = [column for column in header if normalise_header(column) == key]
    if len(found) == 1:
        return found[0]
    if not found:
        raise InvalidFile(
            f"no column named {wanted.strip()!r}; the file has {quoted_columns(header)}",
            file=file,
            column=wanted.strip(),
        )
    raise InvalidFile(
        f"{len(found)} columns match {wanted.strip()!r} ({quoted_columns(found)})",
        file=file,
        column=wanted.strip(),
    )


def normalise_header(name: str) -> str:
    """The form in which header names are compared: trimmed and case-folded."""
    return name.strip().casefold()


def check_header(names: list[str], file: str, limits: ReadLimits) -> list[str]:
    if len(names) > limits.max_columns:
        raise limit_exceeded(
            f"the header has {len(names):,} columns", limits, "max_columns", file=file, row=1
        )
    header = [name if name.strip() else f"column_{i}" for i, name in enumerate(names, start=1)]
    check_header_names(header, lambda message: InvalidFile(message, file=file, row=1))
    return header


def check_header_names(names: list[str], error: Any) -> None:
    seen: dict[str, str] = {}
    for name in names:
        key = normalise_header(name)
        if key in seen:
            raise error(
                f"the column name {quoted(name.strip())} appears more than once "
                "(ignoring case and spaces)"
            )
        seen[key] = name
