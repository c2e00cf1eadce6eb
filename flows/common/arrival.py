"""A source file as its bytes arrive: the one seam between the fetch and its readers.

The list import reads its file while it is fetched, so that the download, the
parsing and the load overlap. :class:`IncomingFile` is the only kind of file the
import sees: :func:`~flows.common.transfer.fetch` writes the bytes to the run's
work folder through it (a tee that hashes them for the checksum), and the readers
get the bytes as they arrive (:meth:`IncomingFile.open`), or the finished file
once it is all there (:meth:`IncomingFile.whole`).

A retry of the fetch does not disturb a reader: the new attempt writes the file
again from its start, and the reader goes on where it was once the new attempt
has written the same bytes up to where the last one got (compared by their
SHA-256). A source that changed between attempts, or a fetch that failed for good,
fails the read with the fetch's own error, so the load that reads it fails and
changes nothing.
"""

from __future__ import annotations

import hashlib
import io
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from prefect.futures import PrefectFuture

from contact_center.exceptions import DownloadInterrupted, SourceUnavailable
from contact_center.parsing.locations import Location

__all__ = ["FetchedFile", "HashingWriter", "IncomingFile"]

# A reader is woken when at least this much more has been written (or at the end).
_WAKE_BYTES = 256 << 10


@dataclass(frozen=True)
class FetchedFile:
    """A source file, fetched and checked.

    Attributes:
        path: the local file to read (a temporary copy for SFTP sources).
        name: the file's name at the source.
        location: the resolved location (a specific file, no glob or template).
        size: its size in bytes.
        sha256: its SHA-256, hex.
        temporary: whether ``path`` is a copy to delete once done.
    """

    path: Path
    name: str
    location: Location
    size: int
    sha256: str
    temporary: bool

    def cleanup(self) -> None:
        """Delete the local temporary copy, if any."""
        if self.temporary:
            self.path.unlink(missing_ok=True)


class HashingWriter:
    """A binary file wrapper that hashes what is written through it, and tells the
    :class:`IncomingFile` it feeds (if any) how far it got."""

    def __init__(self, target: IO[bytes], incoming: IncomingFile | None = None) -> None:
        self._target = target
        self._incoming = incoming
        self.written = 0
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        incoming = self._incoming
        if incoming is not None:
            if incoming.cancelled:
                raise DownloadInterrupted("the download was stopped: the import no longer needs it")
            incoming.check_prefix(self, data)
        self.sha256.update(data)
        count = self._target.write(data)
        self.written += len(data)
        if incoming is not None:
            incoming.wrote(self.written)
        return count


class IncomingFile:
    """A source file being fetched, readable while its bytes arrive.

    The fetch reports to it (each attempt's start, the bytes written, the finished
    file, a failure); :meth:`follow` ties it to the fetch's Prefect future, whose end
    (after its retries) settles a failure for good.

    Example:
        ```python
        incoming = IncomingFile()
        incoming.follow(fetch_list_file.submit(..., incoming))
        with incoming.open() as stream:      # waits for the first bytes
            for block in iter(lambda: stream.read(1 << 20), b""):
                ...                          # the bytes, as they arrive
        fetched = incoming.whole()           # the finished, hashed file
        ```
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._attempt = 0
        self._path: Path | None = None
        self._location: Location | None = None
        self._size = 0
        self._written = 0
        self._woken_at = 0
        self._fetched: FetchedFile | None = None
        self._error: BaseException | None = None
        self._ended = False
        self._cancelled = False
        # What readers may have read: the bytes of the attempt that got furthest
        # (its length and SHA-256); a new attempt must repeat them before it is read.
        self._checkpoint: tuple[int, bytes] | None = None
        self._writer: HashingWriter | None = None
        self._verified = True
        self._last_failure: BaseException | None = None

    # -- the fetch's side ----------------------------------------------------------------

    def follow(self, future: PrefectFuture[Any] | Future[Any]) -> None:
        """Settle the file when the fetch's future ends (a failure is then final)."""
        future.add_done_callback(lambda _future: self._end())

    def started(self, path: Path, location: Location, size: int) -> None:
        """An attempt started writing ``location``'s ``size`` bytes to ``path``."""
        with self._changed:
            if self._location is not None and (location, size) != (self._location, self._size):
                self._error = SourceUnavailable(
                    f"source {location.text!r} changed between download attempts "
                    f"({self._size} bytes at {self._location.text!r} before, {size} now)"
                )
            self._attempt += 1
            self._path, self._location, self._size = path, location, size
            self._written = self._woken_at = 0
            self._verified = self._checkpoint is None
            self._changed.notify_all()

    def writer(self, target: IO[bytes]) -> HashingWriter:
        """The tee an attempt writes through (hashing, and checking a retry's bytes)."""
        self._writer = HashingWriter(target, self)
        return self._writer

    def check_prefix(self, writer: HashingWriter, data: bytes) -> None:
        """Before ``data`` is written: compare a retry's bytes with what readers may have
        read, once the retry reaches the length of the attempt that got furthest."""
        if self._verified or self._checkpoint is None:
            return
        length, digest = self._checkpoint
        if writer.written + len(data) < length:
            return
        probe = writer.sha256.copy()
        probe.update(data[: length - writer.written])
        with self._changed:
            self._verified = True
            if probe.digest() != digest:
                self._error = SourceUnavailable(
                    f"source {self._location.text if self._location else '?'!r} changed "
                    "between download attempts"
                )
            self._changed.notify_all()

    def wrote(self, total: int) -> None:
        """``total`` bytes of the current attempt are in the file."""
        if total - self._woken_at < _WAKE_BYTES:
            self._written = total
            return
        with self._changed:
            self._written = self._woken_at = total
            self._changed.notify_all()

    def finished(self, fetched: FetchedFile) -> None:
        """The current attempt finished and was checked: ``fetched`` is the file."""
        with self._changed:
            self._fetched = fetched
            self._written = fetched.size
            self._verified = True
            self._changed.notify_all()

    def failed(self, error: BaseException) -> None:
        """The current attempt failed with ``error`` (a retry may start another)."""
        with self._changed:
            writer = self._writer
            if writer is not None and self._verified:
                known = self._checkpoint[0] if self._checkpoint else 0
                if writer.written >= known:
                    self._checkpoint = (writer.written, writer.sha256.digest())
            self._writer = None
            self._last_failure = error
            self._changed.notify_all()

    def cancel(self) -> None:
        """Stop the download (nobody needs the file any more); no-op once it has finished."""
        with self._changed:
            if self._fetched is None:
                self._cancelled = True
                self._changed.notify_all()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` stopped the download."""
        return self._cancelled

    def _end(self) -> None:
        with self._changed:
            self._ended = True
            if self._fetched is None and self._error is None:
                self._error = self._last_failure or SourceUnavailable(
                    "the download ended without a file"
                )
            self._changed.notify_all()

    # -- the readers' side -----------------------------------------------------------------

    @property
    def size(self) -> int:
        """The size the file will have (the source's), once the fetch has started."""
        return self._size

    @property
    def path(self) -> Path | None:
        """The local file being written (None before the fetch starts)."""
        return self._path

    @property
    def fetched(self) -> FetchedFile | None:
        """The finished file, once the fetch has finished and been checked."""
        return self._fetched

    def location(self) -> Location:
        """The file being fetched, once an attempt has started writing (waits for it).

        Raises:
            SourceUnavailable: (or the fetch's own error) the fetch failed for good
                before it started writing.
        """
        with self._changed:
            self._changed.wait_for(lambda: self._path is not None or self._error is not None)
            if self._path is None:
                self._raise()
            assert self._location is not None
            return self._location

    def whole(self) -> FetchedFile:
        """Wait for the end of the fetch; the finished, hashed file.

        Raises:
            SourceUnavailable: (or the fetch's own error) the fetch failed for good,
                or the source changed between attempts.
        """
        with self._changed:
            self._changed.wait_for(lambda: self._fetched is not None or self._error is not None)
            self._raise()
            assert self._fetched is not None
            return self._fetched

    def open(self) -> IO[bytes]:
        """A binary file of the bytes from the start, waiting for more until the end.

        Raises:
            SourceUnavailable: (or the fetch's own error, when reading) the fetch failed
                for good, or the source changed between attempts.
        """
        self.location()
        return cast(IO[bytes], _FollowingReader(self))

    def _readable(self, attempt: int, position: int) -> tuple[int, Path, bool]:
        """Wait until the current attempt has verified bytes beyond ``position``, or the end.

        Returns:
            (the attempt, its file, whether there is more to read).
        """
        with self._changed:
            self._changed.wait_for(
                lambda: (
                    self._error is not None
                    or self._fetched is not None
                    or (self._verified and self._written > position)
                )
            )
            self._raise()
            assert self._path is not None
            if self._fetched is not None:
                return self._attempt, self._fetched.path, position < self._fetched.size
            return self._attempt, self._path, True

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error


class _FollowingReader(io.RawIOBase):
    """The binary file of :meth:`IncomingFile.open`: reads, and waits for more at the end."""

    def __init__(self, incoming: IncomingFile) -> None:
        super().__init__()
        self._incoming = incoming
        self._attempt = -1
        self._handle: IO[bytes] | None = None
        self._position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while True:
            if self._handle is not None:
                count = self._handle.readinto(buffer)  # type: ignore[attr-defined]
                if count:
                    self._position += count
                    return int(count)
            attempt, path, more = self._incoming._readable(self._attempt, self._position)
            if not more:
                return 0
            if attempt != self._attempt or self._handle is None:
                # A new attempt (or the finished file, renamed from its temporary name):
                # go on from the same place in the file it writes.
                self._reopen(path)
                self._attempt = attempt

    def _reopen(self, path: Path) -> None:
        if self._handle is not None:
            self._handle.close()
        try:
            self._handle = path.open("rb", buffering=0)
        except FileNotFoundError:
            # Renamed from its temporary name as it finished: open it under its own.
            self._handle = self._incoming.whole().path.open("rb", buffering=0)
        self._handle.seek(self._position)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        super().close()
