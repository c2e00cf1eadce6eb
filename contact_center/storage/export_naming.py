"""The file names of results exports: the template, and which export owns a name.

**Every export gets its own name.** The default template,
:data:`DEFAULT_FILE_NAME`, holds the window to the second and the export's id
(its ``results_exports`` row): two windows that start and end in the same minute,
or even the same second, still get two names. The id is reserved before anything
is delivered and a resumed export keeps it (see :func:`contact_center.storage.results.plan_export`),
so a retry, or the next run resuming an interrupted window, renders the same name.

**A delivered file is never replaced by another export.** The delivery refuses to
put a file where one of that name already is, unless the export is resuming its own
interrupted delivery and no other export delivered that name (:func:`delivered_by_another`).
A template without ``{export_id}`` that renders the same name twice is therefore
refused at the second export rather than overwriting the first one's file.
"""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from contact_center.exceptions import InvalidParameter
from contact_center.parsing.locations import render_path
from contact_center.storage.models import ResultsExport

__all__ = [
    "DEFAULT_FILE_NAME",
    "TEMPLATE_FIELDS",
    "delivered_by_another",
    "destination_key",
    "render_file_name",
]

#: The default file name: the window in UTC seconds and the export's id.
DEFAULT_FILE_NAME = "{campaign}_{start:%Y%m%d%H%M%S}_{end:%Y%m%d%H%M%S}_{export_id}.csv"
#: The fields a file-name template may use.
TEMPLATE_FIELDS = ("campaign", "start", "end", "format", "export_id")

_UNSAFE_NAME_CHARS = re.compile(r"[^\w .@+-]")
_exports = ResultsExport.__table__


def destination_key(destination: str) -> str:
    """The destination as the watermark knows it: stripped, without a trailing slash.

    Date templates stay unrendered, so a monthly folder keeps one watermark.
    """
    text = destination.strip()
    return text.rstrip("/") or text


def _check_template(template: str) -> None:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise InvalidParameter(f"file_name {template!r} is not a valid template: {exc}") from None
    for _literal, field, _spec, conversion in parsed:
        if field is None:
            continue
        # Only plain names: no attribute or index access into the values.
        if field not in TEMPLATE_FIELDS or conversion:
            raise InvalidParameter(
                f"file_name {template!r} uses {{{field}}}; "
                f"the template may use {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)}"
            )


def _safe_name_part(text: str) -> str:
    cleaned = _UNSAFE_NAME_CHARS.sub("_", text).strip().lstrip(".")
    return cleaned or "campaign"


def render_file_name(
    template: str,
    *,
    campaign: str,
    start: datetime,
    end: datetime,
    format: str,
    export_id: int,
    gzip: bool = False,
) -> str:
    """Render the export's file name; the same export always gets the same name.

    Args:
        template: a ``str.format`` template with ``{campaign}``, ``{start:<strftime>}``,
            ``{end:<strftime>}``, ``{format}`` and ``{export_id}``; times are UTC.
        campaign: the campaign's name (characters unsafe in a file name become ``_``).
        start: the window's start.
        end: the window's end.
        format: ``simple`` or ``detailed``.
        export_id: the export's ``results_exports`` id (a format spec such as
            ``{export_id:06d}`` pads it).
        gzip: append ``.gz``.

    Raises:
        InvalidParameter: another field, attribute access, or a name with a folder.
    """
    _check_template(template)
    try:
        name = template.format(
            campaign=_safe_name_part(campaign),
            start=start.astimezone(UTC),
            end=end.astimezone(UTC),
            format=format,
            export_id=export_id,
        )
    except (ValueError, TypeError) as exc:
        raise InvalidParameter(f"file_name {template!r} cannot be rendered: {exc}") from None
    if "/" in name or "\\" in name or name in ("", ".", "..") or name.startswith("."):
        raise InvalidParameter(
            f"file_name {template!r} renders as {name!r}, which is not a plain file name"
        )
    return f"{name}.gz" if gzip else name


def delivered_by_another(
    conn: Connection,
    *,
    destination: str,
    file_name: str,
    window_end: datetime,
    export_id: int | None,
) -> int | None:
    """The id of another delivered export whose file has this name in the same folder.

    The folder is the destination rendered at the window's end (as the flow delivers
    it), so a monthly folder's exports only meet the exports of their own month.

    Args:
        conn: a connection to the contact-centre database.
        destination: the destination as written (see :func:`destination_key`).
        file_name: the file name to deliver.
        window_end: the end of the window being delivered.
        export_id: the export being delivered (not counted as another).

    Returns:
        The other export's id, or None when no other export delivered that file.
    """
    key = destination_key(destination)
    query = sa.select(_exports.c.id, _exports.c.window_end).where(
        _exports.c.destination == key,
        _exports.c.file_name == file_name,
        _exports.c.status == "delivered",
    )
    if export_id is not None:
        query = query.where(_exports.c.id != export_id)
    folder = render_path(key, window_end)
    for other_id, other_end in conn.execute(query):
        if render_path(key, other_end) == folder:
            return int(other_id)
    return None
