"""What a calling-list import takes and gives: parsed chunks, the source file, the counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd
import pyarrow as pa

__all__ = ["LoadResult", "ParsedRows", "SourceFile"]


class ParsedRows(Protocol):
    """What the load needs from a parsed chunk (``contact_center.parsing.lists.ParsedChunk``).

    ``valid`` is an Arrow table (the parser's) or a DataFrame with the same columns.
    """

    @property
    def valid(self) -> pa.Table | pd.DataFrame: ...

    @property
    def rejects(self) -> pd.DataFrame: ...


@dataclass(frozen=True)
class SourceFile:
    """The file being imported: what ``list_imports`` records about it."""

    name: str
    location: str
    sha256: str
    size: int


@dataclass
class LoadResult:
    """The counts of one import, as committed.

    Attributes:
        list_id: the calling list's id.
        import_id: the ``list_imports`` row.
        created_list: whether the import created the list.
        rows_read: data rows read from the file.
        loaded: records added.
        updated: existing records changed.
        unchanged: existing records the file repeated as they were (for ``append``:
            existing keys, which are left alone).
        removed: records removed (``replace``).
        rejected: rows rejected; see ``rejects_by_reason``.
        rejects_by_reason: reason -> count.
        excluded: valid rows not loaded because their key is in a scrubbed list.
        invalid_phones: phone values dropped from rows that kept another phone.
        gates: (a dry run) gate -> None when it passes, else why it fails.
        dry_run: whether the load was rolled back (a dry run).
        skipped: the file was the list's last import again: nothing changed, and
            ``import_id`` is the ``skipped`` row that says so.
    """

    list_id: int
    import_id: int
    created_list: bool = False
    rows_read: int = 0
    loaded: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    rejected: int = 0
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    excluded: int = 0
    invalid_phones: int = 0
    gates: dict[str, str | None] = field(default_factory=dict)
    dry_run: bool = False
    skipped: bool = False
