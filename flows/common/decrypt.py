"""Encrypted sources: the key from a Prefect ``Secret`` block, and the decryptor.

The key is unwrapped only here, where the decryptor imports it into a temporary
GnuPG home (see :mod:`contact_center.parsing.openpgp`); it is never logged or returned.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from prefect import get_run_logger
from prefect.blocks.system import Secret
from prefect.exceptions import ObjectNotFound as PrefectObjectNotFound

from contact_center.exceptions import InvalidParameter, ObjectNotFound
from contact_center.parsing.openpgp import Decryptor, OpenPgpKey, is_openpgp
from flows.common.workdir import current_run_id

__all__ = ["decrypting", "decryption_key", "is_encrypted_file"]

# Enough of a file's start to tell an OpenPGP message (armour or a packet header).
_HEAD_BYTES = 64


def decryption_key(block: str) -> OpenPgpKey:
    """The OpenPGP key saved as the Secret block ``block``.

    Raises:
        ObjectNotFound: there is no Secret block of that name.
        InvalidParameter: the block holds no armoured private key.
    """
    try:
        secret = cast(Secret[Any], Secret.load(block))
    except (ValueError, PrefectObjectNotFound):
        # Prefect's message names the block only; nothing secret to chain.
        raise ObjectNotFound(
            f"decrypt_with: there is no Secret block named {block!r} "
            "(save the private key as one first)"
        ) from None
    return OpenPgpKey.from_secret(block, secret.get())


def is_encrypted_file(path: Path, name: str) -> bool:
    """Whether the local file ``path`` (named ``name`` at its source) is OpenPGP."""
    with path.open("rb") as handle:
        return is_openpgp(name, handle.read(_HEAD_BYTES))


@contextmanager
def decrypting(path: Path, name: str, decrypt_with: str | None) -> Iterator[Decryptor | None]:
    """A decryptor for the file when it is encrypted (None when it is not).

    Raises:
        InvalidParameter: the file is encrypted and ``decrypt_with`` names no block.
        ObjectNotFound: the block does not exist.
    """
    if not is_encrypted_file(path, name):
        yield None
        return
    if decrypt_with is None:
        raise InvalidParameter(
            f"file {name!r} is OpenPGP-encrypted; name the Secret block that holds its "
            "private key in decrypt_with"
        )
    with Decryptor(decryption_key(decrypt_with), owner=current_run_id()) as decryptor:
        get_run_logger().info(
            "%s is OpenPGP-encrypted: decrypted as it is read, with the key in %r",
            name,
            decrypt_with,
        )
        yield decryptor
