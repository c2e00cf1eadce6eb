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
    │   └── DownloadInterrupted a download that a reader follows failed or started over
    ├── DeliveryFailed          a file or an email could not be delivered
    ├── InvalidFile             a file cannot be parsed; names file, row and column
    ├── QualityGateFailed       a quality gate (min_rows, max_reject_ratio,
    │                           max_removed_ratio) stopped a load
    ├── CampaignStateError      a campaign cannot take the requested step
    └── DatabaseError           the contact-centre database refused an operation

A task that meets one of these lets it propagate, so that Prefect marks the run
Failed and the task log shows the message.
"""

from __future__ import annotations

__all__ = [
    "CCTasksError",
    "CampaignStateError",
    "DatabaseError",
    "DeliveryFailed",
    "DownloadInterrupted",
    "HostKeyError",
    "InvalidFile",
    "InvalidParameter",
    "ObjectNotFound",
    "QualityGateFailed",
    "SourceUnavailable",
]


class CCTasksError(Exception):
    """The root of every error that cctasks raises on purpose."""


class InvalidParameter(CCTasksError, ValueError):
    """A parameter is not valid; the message names it and what would be valid."""


class ObjectNotFound(CCTasksError, LookupError):
    """An object (list, campaign, report, block, deployment) does not exist."""


class SourceUnavailable(CCTasksError):
    """A location cannot be reached, listed or read."""


class HostKeyError(SourceUnavailable):
    """An SFTP server presented a host key that is unknown or has changed."""


class DownloadInterrupted(SourceUnavailable):
    """A download that a reader was following failed, or its retry started over.

    The reader's bytes may not be those of the finished file: whoever read them
    drops its work and reads the file again once the download has finished.
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


class QualityGateFailed(CCTasksError):
    """A quality gate stopped a load; nothing was changed."""


class CampaignStateError(CCTasksError):
    """A campaign cannot take the requested step (e.g. nothing to dial)."""


class DatabaseError(CCTasksError):
    """The contact-centre database refused an operation."""
