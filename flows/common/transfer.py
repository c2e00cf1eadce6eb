"""Moving files between locations: fetch a source, deliver a result, tidy after import.

These are plain functions; the flows wrap them in Prefect tasks (only the
network step retries). See :mod:`contact_center.parsing.locations` for the strings.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from contact_center.exceptions import DeliveryFailed, InvalidParameter, SourceUnavailable
from contact_center.parsing.locations import (
    Location,
    has_glob,
    parse_location,
    pick_newest,
    render_path,
)
from flows.common.arrival import FetchedFile, HashingWriter, IncomingFile
from flows.common.confine import check_local, check_remote
from flows.common.placing import check_free, place_local, place_remote, refusal
from flows.common.servers import load_sftp_block, sftp_session

__all__ = [
    "FetchedFile",
    "after_import",
    "deliver",
    "fetch",
    "load_sftp_block",
    "resolve_source",
    "sftp_session",
]

Progress = Callable[[int, int], None]
_HASH_BLOCK = 1 << 20


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
    incoming: IncomingFile | None = None,
) -> FetchedFile:
    """Fetch one resolved file; SFTP files are downloaded to a temporary copy.

    The download is checked against the remote size before it is used.

    Args:
        location: a specific file (see :func:`resolve_source`).
        workdir: where a downloaded copy goes.
        progress: called with (bytes so far, total bytes).
        incoming: told how the fetch goes, so that readers can follow it (see
            :mod:`flows.common.arrival`).

    Raises:
        SourceUnavailable: the file is missing or the transfer failed or fell short.
        InvalidParameter: the file is outside its base (see :mod:`flows.common.confine`).
    """
    try:
        fetched = _fetch(location, workdir, progress, incoming)
    except BaseException as exc:
        if incoming is not None:
            incoming.failed(exc)
        raise
    if incoming is not None:
        incoming.finished(fetched)
    return fetched


def _fetch(
    location: Location, workdir: Path, progress: Progress | None, incoming: IncomingFile | None
) -> FetchedFile:
    name = posixpath.basename(location.path)
    if location.scheme == "file":
        path = check_local(location.path, "source", location.text)
        if not path.is_file():
            raise SourceUnavailable(f"file {location.text!r} does not exist")
        size = path.stat().st_size
        if incoming is not None:
            incoming.started(path, location, size)  # readable at once, hashed meanwhile
            incoming.wrote(size)
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
            if incoming is not None:
                incoming.started(partial, location, expected)
            writer = incoming.writer(handle) if incoming is not None else HashingWriter(handle)
            session.get(remote, writer, progress)  # type: ignore[arg-type]
    got = partial.stat().st_size
    if got != expected:
        partial.unlink(missing_ok=True)
        raise SourceUnavailable(
            f"download of {location.text!r} is incomplete: {got} of {expected} bytes"
        )
    final = workdir / name
    partial.replace(final)  # a reader's open file follows the rename
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
            server or file system; created when missing), as the flow's
            ``AfterImport`` type allows.

    Returns:
        What happened, for the outcome (e.g. ``archived to done/leads.csv``).

    Raises:
        InvalidParameter: the file or the folder is outside its base.
    """
    kind, _, folder = action.partition(":")
    if action == "keep":
        return "kept"
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
