"""Which files in a drop folder have arrived: pure functions, no I/O, no Prefect.

The file sensor (``flows/file_sensor.py``) lists each watched folder twice, a few
seconds apart. A file counts as *arrived* when both listings show it with the same size
and modification time (a partner still uploading it changes one or the other), and it
is *new* when the sensor has not announced that same file, with that same size and
time, before. A file written again (even unchanged) is new again: the import's
checksum check, not the sensor, decides whether it is loaded.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

__all__ = ["SeenFile", "matching", "new_arrivals", "stable_files"]


@dataclass(frozen=True, order=True)
class SeenFile:
    """A file as one folder listing shows it.

    Attributes:
        name: the file name, without its folder.
        size: its size in bytes.
        mtime: its modification time (seconds since the epoch).
    """

    name: str
    size: int
    mtime: float

    @property
    def signature(self) -> str:
        """What tells two versions of the file apart: ``<size>:<mtime>``."""
        return f"{self.size}:{self.mtime:.6f}"


def matching(files: list[SeenFile], pattern: str) -> list[SeenFile]:
    """The files whose name matches the glob ``pattern`` (case-sensitive), by name."""
    return sorted(f for f in files if fnmatch.fnmatchcase(f.name, pattern))


def stable_files(first: list[SeenFile], second: list[SeenFile]) -> list[SeenFile]:
    """The files that the two listings show alike (same size, same time), by name.

    A file missing from either listing, or whose size or time changed between them, is
    still being written (or was removed) and is left for a later look.
    """
    before = {f.name: f for f in first}
    return sorted(f for f in second if before.get(f.name) == f and f.size > 0)


def new_arrivals(
    stable: list[SeenFile], announced: dict[str, str]
) -> tuple[list[SeenFile], dict[str, str]]:
    """The stable files not announced yet, and what is announced after this look.

    Args:
        stable: the stable files of one watched folder.
        announced: file name -> signature of what the sensor announced before; only
            files still there are kept, so the memory stays as small as the folder.

    Returns:
        (files to announce now, the new ``announced`` for this folder).
    """
    fresh = [f for f in stable if announced.get(f.name) != f.signature]
    present = {f.name for f in stable}
    kept = {name: sig for name, sig in announced.items() if name in present}
    kept.update({f.name: f.signature for f in fresh})
    return fresh, kept
