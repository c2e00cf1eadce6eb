"""The saved SFTP-server blocks that ``sftp://<block>/...`` locations name."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

from prefect.exceptions import ObjectNotFound as PrefectObjectNotFound

from blocks.sftp import SftpServer, SftpSession
from contact_center.exceptions import ObjectNotFound
from contact_center.parsing.locations import Location

__all__ = ["load_sftp_block", "sftp_session"]


def load_sftp_block(name: str) -> SftpServer:
    """Load the saved SFTP-server block ``name``.

    Raises:
        ObjectNotFound: no such block.
    """
    try:
        return cast(SftpServer, SftpServer.load(name))
    except (ValueError, PrefectObjectNotFound):
        raise ObjectNotFound(
            f"no SFTP Server block named {name!r}; save one (see docs/architecture.md, 'Blocks')"
        ) from None


@contextmanager
def sftp_session(location: Location) -> Iterator[SftpSession]:
    """An open session to the server of an ``sftp://`` location."""
    assert location.block is not None
    with load_sftp_block(location.block).open() as session:
        yield session
