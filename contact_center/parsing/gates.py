"""The ``max_removed_ratio`` quality gate of a ``replace``, for calling and exclusion lists.

A ``replace`` makes a list exactly its file. A short or wrong file (a partial
export, the wrong day's file, a test file) would silently wipe most of the list,
so a replace that would remove more than ``max_removed_ratio`` of the list's
current records (default half) fails with :class:`QualityGateFailed`, like the
``min_rows`` and ``max_reject_ratio`` gates, unless the run says ``force: true``.
The check runs inside the load's transaction, after the removal was counted and
before anything is committed, so a failed gate changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from contact_center.exceptions import QualityGateFailed

__all__ = ["DEFAULT_MAX_REMOVED_RATIO", "RemovalGate"]

#: The default share of a list that a ``replace`` may remove without ``force``.
DEFAULT_MAX_REMOVED_RATIO = 0.5


@dataclass(frozen=True)
class RemovalGate:
    """How much of a list a ``replace`` may remove.

    Attributes:
        max_ratio: the largest share of the list's current records that may go.
        force: replace anyway, whatever it removes.
    """

    max_ratio: float = DEFAULT_MAX_REMOVED_RATIO
    force: bool = False

    def check(
        self, *, removed: int, current: int, file: str | None, target: str, unit: str = "records"
    ) -> None:
        """Fail a ``replace`` that removes more than ``max_ratio`` of the list.

        Args:
            removed: the records (or keys) the replace removes.
            current: the list's records before the replace.
            file: the file's name, for the message.
            target: the list as the message names it, e.g. ``calling list 'Spring Leads'``.
            unit: what the list holds, for the message (``records``, ``keys``).

        Raises:
            QualityGateFailed: more than ``max_ratio`` of ``current`` would go, without
                ``force``.
        """
        failure = self.verdict(
            removed=removed, current=current, file=file, target=target, unit=unit
        )
        if failure is not None:
            raise QualityGateFailed(failure)

    def verdict(
        self, *, removed: int, current: int, file: str | None, target: str, unit: str = "records"
    ) -> str | None:
        """Why a ``replace`` fails this gate, or None when it passes (see :meth:`check`).

        A dry run reports the verdict instead of failing on it.
        """
        if self.force or current == 0:
            return None
        ratio = removed / current
        if ratio <= self.max_ratio:
            return None
        source = f"file {file!r}" if file else "the file"
        return (
            f"quality gate max_removed_ratio: {source} would remove {removed} of the "
            f"{current} {unit} of {target} ({ratio:.1%} > {self.max_ratio:.1%}); "
            f"{target} was not changed (force: true replaces it anyway)"
        )
