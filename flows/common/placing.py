"""Putting an uploaded file under its final name without replacing someone else's.

A delivery writes ``.<name>.part`` and then renames it to ``<name>``. Where the
final name must not replace a file that is already there (a results export never
replaces another export's file), the rename itself refuses, so that two deliveries
racing for one name cannot both win:

- SFTP: the protocol's own ``rename`` (SFTP v3), which fails when the target
  exists; OpenSSH's server does it with ``link()`` + ``unlink()``. paramiko's
  ``posix_rename`` (the ``posix-rename@openssh.com`` extension) replaces instead;
  it is used only where replacing is allowed.
- Local: ``os.link()`` to the final name, which fails when it exists, then the
  temporary name is removed. A file system without hard links falls back to a
  check followed by a rename (which a racing writer could slip between).

A refusal is a :class:`DeliveryFailed` whose cause is a :class:`FileExistsError`:
waiting will not fix it, so the flows do not retry it. The temporary file is removed.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from blocks.sftp import SftpSession
from contact_center.exceptions import DeliveryFailed, SourceUnavailable

__all__ = ["check_free", "place_local", "place_remote", "refusal"]

# Errors of os.link() that mean "no hard links here", not "the name is taken".
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV, errno.EMLINK})


def refusal(name: str, destination: str, final: str) -> DeliveryFailed:
    """The error of a delivery that would replace the existing file ``final``."""
    error = DeliveryFailed(
        f"cannot deliver {name!r} to {destination!r}: {final!r} already exists and was "
        "not written by this delivery; refusing to overwrite it (each delivery needs a "
        "file name of its own)"
    )
    error.__cause__ = FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), final)
    return error


def check_free(session: SftpSession, path: str, error: DeliveryFailed) -> None:
    """Raise ``error`` if ``path`` exists on the server.

    Checked before an upload, so that a refused delivery does not send the file first;
    the rename checks again, atomically.
    """
    if session.exists(path):
        raise error from error.__cause__


def place_remote(
    session: SftpSession, temp: str, final: str, *, replace: bool, refused: DeliveryFailed
) -> None:
    """Rename the uploaded ``temp`` to ``final`` on the server.

    Args:
        session: the open SFTP session.
        temp: the uploaded temporary file.
        final: the final path.
        replace: whether ``final`` may be replaced (``posix-rename``).
        refused: raised when ``final`` exists and may not be replaced.

    Raises:
        DeliveryFailed: ``refused``; the temporary file is removed.
        SourceUnavailable: the rename failed for another reason (retried).
    """
    if replace:
        session.rename(temp, final, overwrite=True)
        return
    try:
        session.rename(temp, final, overwrite=False)
    except SourceUnavailable:
        # SFTP v3 reports a taken name as a plain "Failure": ask whether it is one.
        if not session.exists(final):
            raise
        _remove_quietly(session, temp)
        raise refused from refused.__cause__


def place_local(temp: Path, final: Path, *, replace: bool, refused: DeliveryFailed) -> None:
    """Rename the copied ``temp`` to ``final``, refusing to replace unless ``replace``.

    Raises:
        DeliveryFailed: ``refused``; the temporary file is removed.
        OSError: the rename failed for another reason.
    """
    if replace:
        temp.replace(final)
        return
    try:
        os.link(temp, final)
    except FileExistsError:
        temp.unlink(missing_ok=True)
        raise refused from refused.__cause__
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        if os.path.lexists(final):
            temp.unlink(missing_ok=True)
            raise refused from refused.__cause__
        temp.replace(final)
        return
    temp.unlink()


def _remove_quietly(session: SftpSession, path: str) -> None:
    """Remove a temporary file; the refusal matters more than a failed clean-up."""
    try:
        session.remove(path)
    except SourceUnavailable:
        pass
