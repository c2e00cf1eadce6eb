"""Location strings: where a task reads a file from or delivers one to.

A location is one of:

- a local path (``/data/drop/leads.csv``, ``drop/leads.csv``) or a ``file://`` URL;
- ``sftp://<block-name>/<path>``: a path on the SFTP server saved as the block
  ``<block-name>``; the path is relative to the login directory unless it
  starts with ``//`` (``sftp://partner//srv/out/leads.csv`` is absolute).

The path may hold a date template (``leads_{date:%Y%m%d}.csv``) and a glob
(``leads_*.csv``). A path that climbs out of its base with ``..`` is refused.

Every location must also resolve inside its base folder: a local path inside one
of the local folders (the setting ``CCTASKS_LOCAL_FOLDERS``), an SFTP path inside
its block's ``base_folder``. :func:`within` is the lexical test and
:func:`outside_base` the error; ``flows.common.confine`` applies them, also after
symlinks are resolved. This module is pure: it parses and renders, and does no I/O.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Literal
from urllib.parse import unquote

from contact_center.exceptions import InvalidParameter

__all__ = [
    "Location",
    "has_glob",
    "outside_base",
    "parse_location",
    "pick_newest",
    "render_path",
    "within",
]

_TEMPLATE = re.compile(r"\{(date|now|today)(?::([^{}]*))?\}")
_GLOB_CHARS = re.compile(r"[*?\[]")
_BLOCK_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


@dataclass(frozen=True)
class Location:
    """A parsed location.

    Attributes:
        scheme: ``file`` or ``sftp``.
        path: the path, still holding any template or glob.
        block: the SFTP-server block's name, for ``sftp``.
        text: the location as the user wrote it (it holds no secret).
    """

    scheme: Literal["file", "sftp"]
    path: str
    block: str | None
    text: str

    @property
    def directory(self) -> str:
        """The folder part of the path."""
        return posixpath.dirname(self.path) or "."

    @property
    def pattern(self) -> str:
        """The file-name part of the path (which may be a glob)."""
        return posixpath.basename(self.path)

    def with_path(self, path: str) -> Location:
        """The same place with another path (e.g. a rendered one)."""
        return Location(self.scheme, path, self.block, _display(self.scheme, self.block, path))


def _display(scheme: str, block: str | None, path: str) -> str:
    if scheme == "sftp":
        return f"sftp://{block}/{path}"
    return path


def _refuse_traversal(text: str, path: str) -> None:
    if ".." in PurePosixPath(path).parts:
        raise InvalidParameter(f"location {text!r} climbs out of its base with '..'; refused")


def parse_location(text: str) -> Location:
    """Parse a location string.

    Raises:
        InvalidParameter: empty, an unknown scheme, no block name, or ``..``.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidParameter("a location must be a non-empty path or URL")
    text = text.strip()
    if text.startswith("sftp://"):
        rest = text[len("sftp://") :]
        block, sep, path = rest.partition("/")
        if not sep or not block or not path:
            raise InvalidParameter(
                f"location {text!r} must look like sftp://<block-name>/<path>"
            )
        if not _BLOCK_NAME.match(block):
            raise InvalidParameter(
                f"location {text!r}: {block!r} is not a block name "
                "(lowercase letters, digits and dashes)"
            )
        path = unquote(path)
        _refuse_traversal(text, path)
        return Location("sftp", path, block, text)
    if text.startswith("file://"):
        path = unquote(text[len("file://") :])
        if not path:
            raise InvalidParameter(f"location {text!r} has no path")
        _refuse_traversal(text, path)
        return Location("file", path, None, text)
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text):
        scheme = text.split("://", 1)[0]
        raise InvalidParameter(
            f"location {text!r} has the unsupported scheme {scheme!r}; "
            "use a local path, file:// or sftp://<block-name>/<path>"
        )
    _refuse_traversal(text, text)
    return Location("file", text, None, text)


def render_path(path: str, when: datetime) -> str:
    """Fill a path's date templates: ``{date:%Y%m%d}`` (also ``{now:...}``, ``{today:...}``).

    A bare ``{date}`` renders as ``%Y-%m-%d``.

    Raises:
        InvalidParameter: a format that cannot be rendered.
    """

    def fill(match: re.Match[str]) -> str:
        fmt = match.group(2) or "%Y-%m-%d"
        try:
            return when.strftime(fmt)
        except ValueError as exc:
            raise InvalidParameter(f"bad date format {fmt!r} in {path!r}: {exc}") from exc

    rendered = _TEMPLATE.sub(fill, path)
    if "{" in rendered or "}" in rendered:
        raise InvalidParameter(
            f"path {path!r} has a template other than {{date:<strftime format>}}"
        )
    return rendered


def has_glob(path: str) -> bool:
    """Whether the file-name part of ``path`` is a glob."""
    return bool(_GLOB_CHARS.search(posixpath.basename(path)))


def pick_newest(
    entries: list[tuple[str, float]], pattern: str, exclude: set[str] | frozenset[str] = frozenset()
) -> str | None:
    """Pick the newest entry whose name matches ``pattern`` and is not in ``exclude``.

    Args:
        entries: (file name, modification time) pairs of one folder.
        pattern: a glob for the file name.
        exclude: names already imported.

    Returns:
        The name, or None when nothing matches. Ties on time go to the later name.
    """
    matching = [
        (mtime, name)
        for name, mtime in entries
        if fnmatch.fnmatchcase(name, pattern) and name not in exclude
    ]
    return max(matching)[1] if matching else None


def _normal(path: str) -> str:
    # POSIX lets a path start with "//" (normpath keeps it); for us it is "/".
    normal = posixpath.normpath(path)
    return "/" + normal.lstrip("/") if normal.startswith("/") else normal


def within(path: str, base: str) -> bool:
    """Whether ``path`` is ``base`` or lies inside it, by their text alone.

    Both are normalised first (``.``, ``..``, repeated slashes and a leading ``//``),
    so ``/srv/drop/../etc`` is not inside ``/srv/drop``. Give both absolute (or both
    relative to the same folder); symlinks are the caller's to resolve.

    Example:
        ```python
        within("/srv/drop/in/a.csv", "/srv/drop")   # True
        within("//etc/shadow", "/srv/drop")         # False
        within("/srv/dropbox/a.csv", "/srv/drop")   # False
        ```
    """
    path, base = _normal(path), _normal(base)
    return path == base or path.startswith(base.rstrip("/") + "/")


def outside_base(
    parameter: str,
    text: str,
    where: str,
    bases: Sequence[str],
    *,
    resolved: str | None = None,
    hint: str = "",
) -> InvalidParameter:
    """The one-line error for a location outside its base folder(s).

    Args:
        parameter: the parameter that holds the location (``source``, ``destination``,
            ``after_import``).
        text: its value, as the user wrote it.
        where: what the bases are (``the block's base folder``, ``the local folders``).
        bases: the base folders.
        resolved: where the location led once symlinks were followed, if that is
            what put it outside.
        hint: how to allow it, appended in parentheses.

    Example:
        ``source 'sftp://partner//etc/shadow' is outside the block's base folder '/home/cc'``
    """
    how = f" resolves to {resolved!r}, which" if resolved is not None else ""
    folders = ", ".join(repr(b) for b in bases)
    tail = f" ({hint})" if hint else ""
    return InvalidParameter(f"{parameter} {text!r}{how} is outside {where} {folders}{tail}")
