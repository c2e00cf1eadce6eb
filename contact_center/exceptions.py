"""The one exception tree of cctasks.

Every error that a user can meet is a ``CCTasksError``. Lower-level errors
(paramiko, SQLAlchemy, OS errors) are mapped at the boundary with
``raise Mapped(msg) from exc``, and the message names the file, row, column,
location or object involved, never a secret::

    CCTasksError
    ├── InvalidParameter        a flow or CLI parameter is not valid (also a ValueError)
    ├── ObjectNotFound          an unknown list, campaign, report, block or deployment
    ├── SourceUnavailable       a location cannot be reached, listed or read
    │   ├── HostKeyError        an SFTP server's host key is unknown or has changed
    │   └── DownloadInterrupted a download stopped: its import no longer needs it
    ├── DeliveryFailed          a file or an email could not be delivered
    ├── InvalidFile             a file cannot be parsed; names file, row and column
    │   └── LimitExceeded       a file crosses a read limit; names the limit and its setting
    ├── QualityGateFailed       a quality gate (min_rows, max_reject_ratio,
    │                           max_removed_ratio) stopped a load
    ├── CampaignStateError      a campaign cannot take the requested step
    └── DatabaseError           the contact-centre database refused an operation

A task that meets one of these lets it propagate, so that Prefect marks the run
Failed and the task log shows the message.

Messages are cut to :data:`~contact_center.settings.MAX_ERROR_MESSAGE_CHARS`
characters, and they quote a file's contents only as its column names, a few of
them and each one short (:func:`quoted`, :func:`quoted_columns`): an error must
not carry a file's data, nor grow with it.
"""

from __future__ import annotations

from collections.abc import Sequence

from contact_center.settings import MAX_ERROR_MESSAGE_CHARS

__all__ = [
    "CCTasksError",
    "CampaignStateError",
    "DatabaseError",
    "DeliveryFailed",
    "DownloadInterrupted",
    "HostKeyError",
    "InvalidFile",
    "InvalidParameter",
    "LimitExceeded",
    "ObjectNotFound",
    "QualityGateFailed",
    "SourceUnavailable",
    "quoted",
    "quoted_columns",
]

# How much of a file's column names a message quotes.
_QUOTED_CHARS = 24
_QUOTED_COLUMNS = 5


class CCTasksError(Exception):
    """The root of every error that cctasks raises on purpose.

    A message longer than :data:`~contact_center.settings.MAX_ERROR_MESSAGE_CHARS`
    is cut there, ending with "…".
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*(_capped(a) if isinstance(a, str) else a for a in args))


class InvalidParameter(CCTasksError, ValueError):
    """A parameter is not valid; the message names it and what would be valid."""


class ObjectNotFound(CCTasksError, LookupError):
    """An object (list, campaign, report, block, deployment) does not exist."""


class SourceUnavailable(CCTasksError):
    """A location cannot be reached, listed or read."""


class HostKeyError(SourceUnavailable):
    """An SFTP server presented a host key that is unknown or has changed."""


class DownloadInterrupted(SourceUnavailable):
    """A download was stopped because the import that read it no longer needs it.

    Raised inside the fetch (never retried) when the import failed or finished
    before the download did.
    """


class DeliveryFailed(CCTasksError):
    """A file or an email could not be delivered to its destination."""


class InvalidFile(CCTasksError):
    """A file cannot be parsed.

    Args:
        message: what is wrong.
        file: the file's name.
        row: the 1-based row number in the file (the header is row 1), if known.
        column: the column's name, if known.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.file = file
        self.row = row
        self.column = column
        where = []
        if file:
            where.append(f"file {file!r}")
        if row is not None:
            where.append(f"row {row}")
        if column:
            where.append(f"column {column!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class LimitExceeded(InvalidFile):
    """A file crosses one of the read limits (size, rows, value length, columns, time).

    The message names the file, the limit and the environment variable that sets it.
    """


class QualityGateFailed(CCTasksError):
    """A quality gate stopped a load; nothing was changed."""


class CampaignStateError(CCTasksError):
    """A campaign cannot take the requested step (e.g. nothing to dial)."""


class DatabaseError(CCTasksError):
    """The contact-centre database refused an operation."""


def quoted(text: str, limit: int = _QUOTED_CHARS) -> str:
    """``repr(text)``, of at most ``limit`` characters of it (then "…"): a value from a
    file, short enough for a message."""
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def quoted_columns(names: Sequence[str], limit: int = _QUOTED_COLUMNS) -> str:
    """The first ``limit`` column names, each :func:`quoted`, and how many more there are.

    >>> quoted_columns(["Account", "Phone"])
    "'Account', 'Phone'"
    """
    shown = ", ".join(quoted(name) for name in names[:limit])
    rest = len(names) - limit
    return f"{shown} and {rest} more" if rest > 0 else shown


def _capped(message: str) -> str:
    if len(message) <= MAX_ERROR_MESSAGE_CHARS:
        return message
    return message[: MAX_ERROR_MESSAGE_CHARS - 1] + "…"
