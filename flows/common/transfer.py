"""Moving files between locations: fetch a source, deliver a result, tidy after import.

These are plain functions; the flows wrap them in Prefect tasks (only the
network step retries). See :mod:`contact_center.parsing.locations` for the strings.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, cast

from contact_center.exceptions import (
    DeliveryFailed,
    DownloadInterrupted,
    InvalidParameter,
    SourceUnavailable,
)
from contact_center.parsing.locations import (
    Location,
    has_glob,
    parse_location,
    pick_newest,
    render_path,
)
from flows.common.confine import check_local, check_remote
from flows.common.placing import check_free, place_local, place_remote, refusal
from flows.common.servers import load_sftp_block, sftp_session

__all__ = [
    "Download",
    "FetchedFile",
    "after_import",
    "deliver",
    "fetch",
    "load_sftp_block",
    "resolve_source",
    "sftp_session",
    "validate_after_import",
]

Progress = Callable[[int, int], None]
_HASH_BLOCK = 1 << 20
# A follower is woken when at least this much more has been written (or at the end).
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


def _as_location(location: str | Location) -> Location:
    return location if isinstance(location, Location) else parse_location(location)


def _local_entries(folder: Path) -> list[tuple[str, float]]:
    try:
        return [(e.name, e.stat().st_mtime) for e in os.scandir(folder) if e.is_file()]
    except OSError as exc:
        raise SourceUnavailable(f"cannot list folder {str(folder)!r}: {exc.strerror}") from None


def resolve_source(
    location: str | Location,
    *,
    when: datetime,
    exclude: set[str] | frozenset[str] = frozenset(),
) -> Location:
    """Turn a location with templates and globs into one specific file.

    Args:
        location: the source as written by the user.
        when: the time that fills date templates (usually the run's scheduled time).
        exclude: file names already imported; a glob skips them.

    Raises:
        SourceUnavailable: nothing matches the glob (or the folder cannot be listed).
        InvalidParameter: the folder is outside its base (see :mod:`flows.common.confine`).
    """
    loc = _as_location(location)
    loc = loc.with_path(render_path(loc.path, when))
    if not has_glob(loc.path):
        return loc
    if loc.scheme == "sftp":
        with sftp_session(loc) as session:
            folder = check_remote(session, loc.directory, "source", loc.text)
            entries = [(f.name, f.mtime) for f in session.list(folder)]
    else:
        entries = _local_entries(check_local(loc.directory, "source", loc.text))
    name = pick_newest(entries, loc.pattern, set(exclude))
    if name is None:
        raise SourceUnavailable(
            f"no file matching {loc.pattern!r} that was not imported yet in {loc.text!r}"
        )
    return loc.with_path(posixpath.join(loc.directory, name) if loc.directory != "." else name)


class Download:
    """A fetch in progress that a reader can follow while the bytes arrive.

    The import reads a list file as it is downloaded, so that fetching, parsing
    and loading overlap. :func:`fetch` reports to it (each attempt's start, the
    bytes written, the end or the failure); a reader opens it with :meth:`open`
    and gets a binary file that waits for more bytes until the download ends.

    Any failure of the attempt being followed, and any new attempt (a retry),
    makes the reader raise :class:`DownloadInterrupted`: the bytes it has read may
    not be the file's, so it must drop its work and read the file again once the
    fetch has finished.

    Example:
        ```python
        download = Download()
        future = executor.submit(fetch, location, workdir, download=download)
        with download.open() as stream:      # waits for the download to start
            for block in iter(lambda: stream.read(1 << 20), b""):
                ...                          # the bytes, as they arrive
        fetched = future.result()
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
        self._failed = False
        self._cancelled = False

    # -- the fetch's side --------------------------------------------------------------

    def started(self, path: Path, location: Location, size: int) -> None:
        """An attempt started writing ``location``'s ``size`` bytes to ``path``."""
        with self._changed:
            self._attempt += 1
            self._path, self._location, self._size = path, location, size
            self._written = self._woken_at = 0
            self._fetched, self._failed = None, False
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
            self._changed.notify_all()

    def cancel(self) -> None:
        """Stop the download (nobody needs the file any more); no-op once it has finished.

        The fetch then fails with :class:`DownloadInterrupted`, which is not retried.
        """
        with self._changed:
            if self._fetched is None:
                self._cancelled = True
                self._changed.notify_all()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` stopped the download."""
        return self._cancelled

    def failed(self) -> None:
        """The current attempt failed (a retry may start another)."""
        with self._changed:
            self._failed = True
            self._changed.notify_all()

    # -- the reader's side -------------------------------------------------------------

    @property
    def fetched(self) -> FetchedFile | None:
        """The finished file, once the download has finished and been checked."""
        return self._fetched

    @property
    def path(self) -> Path | None:
        """The local file being written (None before the download starts)."""
        return self._path

    @property
    def size(self) -> int:
        """The size the file will have (the source's), once the download has started."""
        return self._size

    def wait_fetched(self) -> FetchedFile:
        """Wait for the end of the download being followed; return the file.

        Raises:
            DownloadInterrupted: the attempt failed, or another one started.
        """
        with self._changed:
            attempt = self._attempt
            self._changed.wait_for(lambda: self._fetched is not None or self._failed)
            self._check(attempt)
            assert self._fetched is not None
            return self._fetched

    def location(self) -> Location:
        """The file being fetched, once an attempt has started (waits for it).

        Raises:
            DownloadInterrupted: the fetch failed before it started writing.
        """
        with self._changed:
            self._changed.wait_for(lambda: self._path is not None or self._failed)
            if self._failed or self._location is None:
                raise DownloadInterrupted("the download failed before it started")
            return self._location

    def open(self) -> IO[bytes]:
        """A binary file reading the download as it arrives (waits for it to start).

        Raises:
            DownloadInterrupted: the fetch failed before it started writing.
        """
        self.location()
        with self._changed:
            attempt, fetched, path = self._attempt, self._fetched, self._path
        assert path is not None
        try:
            handle = (fetched.path if fetched is not None else path).open("rb", buffering=0)
        except FileNotFoundError:
            # Renamed from its temporary name as it finished: open it under its own.
            handle = self.wait_fetched().path.open("rb", buffering=0)
        return cast(IO[bytes], _FollowingReader(self, attempt, handle))

    def _wait_beyond(self, attempt: int, position: int) -> bool:
        """Wait until more than ``position`` bytes are written; False at the end.

        Raises:
            DownloadInterrupted: the attempt failed, or another one started.
        """
        with self._changed:
            self._changed.wait_for(
                lambda: self._attempt != attempt
                or self._failed
                or self._fetched is not None
                or self._written > position
            )
            self._check(attempt)
            return self._written > position

    def _check(self, attempt: int) -> None:
        """Raise DownloadInterrupted if ``attempt`` failed or another one started."""
        if self._attempt != attempt or self._failed:
            raise DownloadInterrupted("the download failed or started over while it was being read")


class _FollowingReader(io.RawIOBase):
    """The binary file of :meth:`Download.open`: reads, and waits for more at the end."""

    def __init__(self, download: Download, attempt: int, handle: IO[bytes]) -> None:
        super().__init__()
        self._download = download
        self._attempt = attempt
        self._handle = handle
        self._position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while True:
            self._download._check(self._attempt)
            count = self._handle.readinto(buffer)  # type: ignore[attr-defined]
            if count:
                self._position += count
                return int(count)
            if not self._download._wait_beyond(self._attempt, self._position):
                # The end: whatever the last wake-up left unread is in the file now.
                count = self._handle.readinto(buffer)  # type: ignore[attr-defined]
                self._position += count or 0
                return int(count or 0)

    def close(self) -> None:
        self._handle.close()
        super().close()


class _HashingWriter:
    """A binary file wrapper that hashes what is written through it (and tells a
    :class:`Download`, if one follows it, how far it got)."""

    def __init__(self, target: IO[bytes], download: Download | None = None) -> None:
        self._target = target
        self._download = download
        self._written = 0
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        if self._download is not None and self._download.cancelled:
            raise DownloadInterrupted("the download was stopped: the import no longer needs it")
        self.sha256.update(data)
        count = self._target.write(data)
        self._written += len(data)
        if self._download is not None:
            self._download.wrote(self._written)
        return count


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def fetch(
    location: Location,
    workdir: Path,
    progress: Progress | None = None,
    *,
    download: Download | None = None,
) -> FetchedFile:
    """Fetch one resolved file; SFTP files are downloaded to a temporary copy.

    The download is checked against the remote size before it is used.

    Args:
        location: a specific file (see :func:`resolve_source`).
        workdir: where a downloaded copy goes.
        progress: called with (bytes so far, total bytes).
        download: told how the fetch goes, so that a reader can follow it.

    Raises:
        SourceUnavailable: the file is missing or the transfer failed or fell short.
        InvalidParameter: the file is outside its base (see :mod:`flows.common.confine`).
    """
    try:
        fetched = _fetch(location, workdir, progress, download)
    except BaseException:
        if download is not None:
            download.failed()
        raise
    if download is not None:
        download.finished(fetched)
    return fetched


def _fetch(
    location: Location, workdir: Path, progress: Progress | None, download: Download | None
) -> FetchedFile:
    name = posixpath.basename(location.path)
    if location.scheme == "file":
        path = check_local(location.path, "source", location.text)
        if not path.is_file():
            raise SourceUnavailable(f"file {location.text!r} does not exist")
        size = path.stat().st_size
        if download is not None:
            download.started(path, location, size)  # readable at once, hashed meanwhile
            download.wrote(size)
        if progress:
            progress(size, size)
        return FetchedFile(path, name, location, size, _sha256_of(path), temporary=False)
    workdir.mkdir(parents=True, exist_ok=True)
    partial = workdir / f".{name}.part"
    with sftp_session(location) as session:
        # The file that was checked is the one read: its resolved path.
        remote = check_remote(session, location.path, "source", location.text)
        expected = session.stat(remote).size
        # Unbuffered: what the writer has written is what a follower can read.
        with partial.open("wb", buffering=0) as handle:
            if download is not None:
                download.started(partial, location, expected)
            writer = _HashingWriter(handle, download)
            session.get(remote, writer, progress)  # type: ignore[arg-type]
    got = partial.stat().st_size
    if got != expected:
        partial.unlink(missing_ok=True)
        raise SourceUnavailable(
            f"download of {location.text!r} is incomplete: {got} of {expected} bytes"
        )
    final = workdir / name
    partial.replace(final)  # a follower's open file follows the rename
    return FetchedFile(final, name, location, got, writer.sha256.hexdigest(), temporary=True)


def deliver(
    local_file: Path,
    destination: str | Location,
    *,
    name: str | None = None,
    progress: Progress | None = None,
    replace: bool = True,
) -> tuple[Location, int]:
    """Deliver ``local_file`` into the folder ``destination`` under ``name``.

    The file goes to a temporary name first, its size is checked, and only then is
    it renamed, so a reader never sees a partial file under the final name.

    Args:
        replace: whether a file already under ``name`` may be replaced; if not, the
            delivery refuses it (see :mod:`flows.common.placing`).

    Returns:
        The final location and the bytes delivered.

    Raises:
        DeliveryFailed: the destination cannot be reached or written, or (without
            ``replace``) a file of that name is already there (its cause is then a
            ``FileExistsError``).
        InvalidParameter: the folder is outside its base (see :mod:`flows.common.confine`).
    """
    dest = _as_location(destination)
    name = name or local_file.name
    if "/" in name or name in ("", ".", ".."):
        raise InvalidParameter(f"file name {name!r} must not contain a folder")
    size = local_file.stat().st_size
    final = dest.with_path(posixpath.join(dest.path, name))
    temp_path = posixpath.join(dest.path, f".{name}.part")
    refused = refusal(name, dest.text, final.text)
    try:
        if dest.scheme == "file":
            folder = check_local(dest.path, "destination", dest.text)
            _deliver_local(local_file, folder, name, size, progress, replace, refused)
        else:
            with sftp_session(dest) as session, local_file.open("rb") as source:
                check_remote(session, temp_path, "destination", dest.text)  # and its folder
                session.makedirs(dest.path)
                if not replace:
                    check_free(session, final.path, refused)
                written = session.put(source, temp_path, progress)
                if written != size:
                    raise DeliveryFailed(
                        f"upload to {final.text!r} fell short: {written} of {size} bytes"
                    )
                place_remote(session, temp_path, final.path, replace=replace, refused=refused)
    except SourceUnavailable as exc:
        raise DeliveryFailed(f"cannot deliver {name!r} to {dest.text!r}: {exc}") from exc
    return final, size


def _deliver_local(
    local_file: Path,
    folder: Path,
    name: str,
    size: int,
    progress: Progress | None,
    replace: bool,
    refused: DeliveryFailed,
) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        temp = folder / f".{name}.part"
        temp.unlink(missing_ok=True)  # a symlink left there would be written through
        shutil.copyfile(local_file, temp)
        if temp.stat().st_size != size:
            raise DeliveryFailed(f"copy to {str(folder / name)!r} fell short")
        place_local(temp, folder / name, replace=replace, refused=refused)
    except OSError as exc:
        raise DeliveryFailed(f"cannot write {str(folder / name)!r}: {exc.strerror}") from None
    if progress:
        progress(size, size)


def after_import(location: Location, action: str) -> str:
    """Keep, delete or archive a source file after its load has committed.

    Args:
        location: the resolved source file.
        action: ``keep``, ``delete`` or ``archive:<folder>`` (a folder on the same
            server or file system; created when missing).

    Returns:
        What happened, for the outcome (e.g. ``archived to done/leads.csv``).

    Raises:
        InvalidParameter: the file or the folder is outside its base.
    """
    kind, _, folder = action.partition(":")
    if action == "keep":
        return "kept"
    if kind not in ("delete", "archive") or (kind == "archive" and not folder):
        raise InvalidParameter(
            f"after_import {action!r} is not one of keep, delete, archive:<folder>"
        )
    name = posixpath.basename(location.path)
    if location.scheme == "file":
        check_local(location.path, "source", location.text)
        source = Path(location.path)
        if kind == "delete":
            source.unlink(missing_ok=True)
            return "deleted"
        target_dir = check_local(folder, "after_import", action)
        target_dir.mkdir(parents=True, exist_ok=True)
        os.replace(source, target_dir / name)
        return f"archived to {Path(folder) / name}"
    with sftp_session(location) as session:
        check_remote(session, location.path, "source", location.text)
        if kind == "delete":
            session.remove(location.path)
            return "deleted"
        check_remote(session, folder, "after_import", action)
        session.makedirs(folder)
        target = posixpath.join(folder, name)
        session.rename(location.path, target)
        return f"archived to {target}"


def validate_after_import(action: str) -> None:
    """Check an ``after_import`` value up front.

    Raises:
        InvalidParameter: not ``keep``, ``delete`` or ``archive:<folder>``.
    """
    kind, _, folder = action.partition(":")
    if action in ("keep", "delete") or (kind == "archive" and folder):
        if ".." in folder.split("/"):
            raise InvalidParameter(f"after_import {action!r} climbs out with '..'; refused")
        return
    raise InvalidParameter(
        f"after_import {action!r} is not one of keep, delete, archive:<folder>"
    )
