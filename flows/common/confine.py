"""Keeping locations inside their base folders.

Refusing ``..`` confines nothing: ``sftp://partner//etc/shadow``, ``file:///etc/passwd``
or a symlink inside the drop folder reach any file the worker can. So every path that
comes from a parameter (a source, an ``archive:`` folder, a file to delete, a
destination) must resolve inside its base:

- a local path inside one of the local folders (``CCTASKS_LOCAL_FOLDERS``; by default
  ``<home>/drop`` and ``<home>/outbox``); a relative path is taken from the working
  folder;
- an SFTP path inside its block's ``base_folder`` (by default the login folder); a
  relative path is taken from the login folder.

Two checks, both before the file is touched:

1. :func:`check_before_io`, at a flow's start: the path as written, made absolute and
   normalised (``..``, ``//``). An SFTP path is checked here when it and the block's
   base are both absolute, else once connected; a local path is also resolved here
   (it costs nothing), so a local archive folder outside is refused before the load.
2. :func:`check_local` / :func:`check_remote`, just before the file is listed, read,
   moved, deleted or written: the lexical check again, then the path with its symlinks
   resolved (``os.path.realpath``; the SFTP server's ``realpath``, paramiko's
   ``normalize``) must still be inside the base, itself resolved.

A refusal is :class:`~contact_center.exceptions.InvalidParameter`, one line naming the
parameter and the base; it is not retried, and it never quotes the file.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import paramiko

from blocks.sftp import SftpServer, SftpSession
from contact_center.exceptions import InvalidParameter, SourceUnavailable
from contact_center.parsing.locations import (
    Location,
    has_glob,
    outside_base,
    parse_location,
    render_path,
    within,
)
from contact_center.settings import get_settings
from flows.common.servers import load_sftp_block

__all__ = ["check_before_io", "check_local", "check_remote"]

_LOCAL = "the local folders"
_LOCAL_HINT = "CCTASKS_LOCAL_FOLDERS lists the folders allowed"
_REMOTE = "the block's base folder"


def check_local(path: str, parameter: str, text: str) -> Path:
    """Check a local path, as written and with its symlinks resolved; return the resolved one.

    The path need not exist yet (a folder to create): what exists of it is resolved.

    Args:
        path: the path (relative to the working folder, or absolute).
        parameter: the parameter it comes from, for the message.
        text: the parameter's value, for the message.

    Raises:
        InvalidParameter: the path is outside the local folders.
    """
    bases = [str(folder) for folder in get_settings().local_folders]
    absolute = os.path.abspath(path)
    if not any(within(absolute, base) for base in bases):
        raise outside_base(parameter, text, _LOCAL, bases, hint=_LOCAL_HINT)
    resolved = os.path.realpath(absolute)
    if not any(within(resolved, os.path.realpath(base)) for base in bases):
        raise outside_base(parameter, text, _LOCAL, bases, resolved=resolved, hint=_LOCAL_HINT)
    return Path(resolved)


def _realpath(session: SftpSession, path: str) -> str:
    """The server's realpath of ``path``. OpenSSH resolves a path whose last part is
    missing, not one missing deeper: then the existing head is resolved and the rest
    appended (it does not exist, so it holds no symlink)."""
    head, rest = posixpath.normpath(path), list[str]()
    sftp = session.raw()
    while True:
        try:
            return posixpath.join(str(sftp.normalize(head or ".")), *reversed(rest))
        except FileNotFoundError as exc:
            parent, name = posixpath.split(head)
            if not name:
                error: BaseException = exc
                break
            head = parent
            rest.append(name)
        except (OSError, paramiko.SSHException) as exc:
            error = exc
            break
    raise SourceUnavailable(
        f"cannot resolve {path!r} on {session.server.address}: {type(error).__name__}"
    )


def check_remote(session: SftpSession, path: str, parameter: str, text: str) -> str:
    """Check an SFTP path, as written and with its symlinks resolved; return the resolved one.

    Args:
        session: an open session to the location's server.
        path: the path (relative to the login folder, or absolute).
        parameter: the parameter it comes from, for the message.
        text: the parameter's value, for the message.

    Raises:
        InvalidParameter: the path is outside the block's base folder.
        SourceUnavailable: the server cannot resolve the path.
    """
    login = _realpath(session, ".")
    base = posixpath.join(login, session.server.base_folder or ".")
    absolute = posixpath.join(login, path)
    if not within(absolute, base):
        raise outside_base(parameter, text, _REMOTE, [posixpath.normpath(base)])
    resolved = _realpath(session, absolute)
    if not within(resolved, _realpath(session, base)):
        raise outside_base(parameter, text, _REMOTE, [posixpath.normpath(base)], resolved=resolved)
    return resolved


def _check_early(location: Location, parameter: str, server: SftpServer | None) -> None:
    path = render_path(location.path, datetime.now(UTC))
    if has_glob(path):  # a glob is checked by its folder, as it is listed
        path = posixpath.dirname(path) or "."
    if location.scheme == "file":
        check_local(path, parameter, location.text)
        return
    base = server.base_folder if server is not None else None
    # A relative path or base is taken from the login folder, known once connected.
    if base and posixpath.isabs(base) and posixpath.isabs(path) and not within(path, base):
        raise outside_base(parameter, location.text, _REMOTE, [posixpath.normpath(base)])


def check_before_io(
    source: str | Location | None = None,
    *,
    after_import: str = "keep",
    destination: str | Location | None = None,
) -> None:
    """The lexical checks of a flow's locations, before any I/O (see the module's notes).

    Args:
        source: the ``source`` parameter.
        after_import: the ``after_import`` parameter; an ``archive:<folder>`` is on the
            source's side (the same file system or SFTP server).
        destination: the ``destination`` parameter.

    Raises:
        InvalidParameter: a location is outside its base; the message names the parameter.
        ObjectNotFound: an SFTP location names no saved block.
    """
    checks: list[tuple[Location, str]] = []
    if source is not None:
        loc = source if isinstance(source, Location) else parse_location(source)
        checks.append((loc, "source"))
        kind, _, folder = after_import.partition(":")
        if kind == "archive" and ".." in folder.split("/"):
            raise InvalidParameter(f"after_import {after_import!r} climbs out with '..'; refused")
        if kind == "archive" and folder:
            archive = Location(loc.scheme, folder, loc.block, after_import)
            checks.append((archive, "after_import"))
    if destination is not None:
        loc = destination if isinstance(destination, Location) else parse_location(destination)
        checks.append((loc, "destination"))
    servers = _servers(loc for loc, _ in checks)
    for loc, parameter in checks:
        _check_early(loc, parameter, servers.get(loc.block or ""))


def _servers(locations: Iterable[Location]) -> dict[str, SftpServer]:
    names = {loc.block for loc in locations if loc.block}
    return {name: load_sftp_block(name) for name in sorted(names)}
