"""OpenPGP-encrypted list files: detected, then decrypted as they are read.

A file is encrypted when its name ends in ``.pgp``, ``.gpg`` or ``.asc``, or when
its first bytes are an OpenPGP message (:func:`is_openpgp`). It is read through
:class:`Decryptor`: a temporary GnuPG home (one per run, removed after, its agent
stopped) holds the private key, imported with python-gnupg over the distribution's
``gpg``; each :meth:`Decryptor.open` streams ``gpg --decrypt``'s output, so the
plain text is never whole in memory nor on disk. python-gnupg's own decryption
calls run gpg to the end and give no handle to stop it, while a reader that only
wants a file's head must be able to stop early, so the stream is gpg's stdout.

The key and its passphrase never reach a log, an artifact or an error: gpg gets
the passphrase on a pipe of its own, and errors are built from gpg's status
keywords, never from what it printed.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, cast

from pydantic import SecretStr

from contact_center.exceptions import InvalidFile, InvalidParameter
from contact_center.parsing.files import read_arriving_table
from contact_center.parsing.table_reader import TableReader

__all__ = [
    "ENCRYPTED_SUFFIXES",
    "GPG_HOME_PREFIX",
    "Decryptor",
    "OpenPgpKey",
    "gpg_homes_left",
    "is_openpgp",
    "read_encrypted_table",
    "remove_gpg_home",
]

#: File name endings that mark an OpenPGP-encrypted file.
ENCRYPTED_SUFFIXES = (".pgp", ".gpg", ".asc")
#: The start of a temporary GnuPG home's name, in the system's temporary folder.
GPG_HOME_PREFIX = "cctasks-gpg-"

_ARMOR = b"-----BEGIN PGP MESSAGE-----"
# The first packet of an encrypted message: a public-key (tag 1) or symmetric-key
# (tag 3) encrypted session key, in the old format (0x84-0x87, 0x8C-0x8F) or the new
# one (0xC1, 0xC3). No text encoding's first byte (BOMs included) is one of these.
_SESSION_KEY_PACKETS = frozenset({0x84, 0x85, 0x86, 0x87, 0x8C, 0x8D, 0x8E, 0x8F, 0xC1, 0xC3})
_STOP_TIMEOUT = 10.0
# A stream closed after at most this much plain text (a reader that wanted only the
# head) is kept, with what it gave, for the next open() of the same file: each gpg
# process unlocks the key once more, which with a passphrase costs seconds.
_KEEP_BYTES = 8 << 20


def is_openpgp(name: str, head: bytes) -> bool:
    """Whether a file is OpenPGP-encrypted, by its name or its first bytes."""
    if name.lower().endswith(ENCRYPTED_SUFFIXES):
        return True
    return head.lstrip().startswith(_ARMOR) or (bool(head) and head[0] in _SESSION_KEY_PACKETS)


@dataclass(frozen=True)
class OpenPgpKey:
    """A private key (ASCII-armoured) and its passphrase, from a Secret block.

    Attributes:
        block: the Secret block's name (for messages; it is not secret).
        key: the armoured private key.
        passphrase: the key's passphrase, if it has one.
    """

    block: str
    key: SecretStr
    passphrase: SecretStr | None = None

    @classmethod
    def from_secret(cls, block: str, value: Any) -> OpenPgpKey:
        """Read a Secret block's value: the armoured key, or ``{"key", "passphrase"}``.

        Raises:
            InvalidParameter: the value is neither (the message never quotes it).
        """
        if isinstance(value, dict):
            key, passphrase = value.get("key"), value.get("passphrase")
        else:
            key, passphrase = value, None
        if not isinstance(key, str) or "PGP PRIVATE KEY BLOCK" not in key:
            raise InvalidParameter(
                f"decrypt_with: the Secret block {block!r} holds no armoured OpenPGP private "
                'key (its value must be the key, or {"key": ..., "passphrase": ...})'
            )
        if passphrase is not None and not isinstance(passphrase, str):
            raise InvalidParameter(f"decrypt_with: the passphrase in {block!r} must be text")
        return cls(block, SecretStr(key), SecretStr(passphrase) if passphrase else None)


class Decryptor:
    """A temporary GnuPG home holding one key; :meth:`open` streams a file's plain text.

    Use it as a context manager: leaving it stops the home's agent and removes it.

    Raises:
        InvalidParameter: (on entering) the key cannot be imported.
    """

    def __init__(self, key: OpenPgpKey, owner: str | None = None) -> None:
        self._key = key
        self._owner = owner
        self._home: Path | None = None
        self._gpg_binary = "gpg"
        self._kept: dict[Path, _GpgStream] = {}

    def __enter__(self) -> Decryptor:
        import gnupg

        # A short path: gpg-agent's socket lives in the home, and a socket path
        # is limited to about 100 bytes. The owner (the flow run) is in its name, so
        # that the home of a killed run can be found and removed (gpg_homes_left).
        prefix = f"{GPG_HOME_PREFIX}{self._owner}-" if self._owner else GPG_HOME_PREFIX
        self._home = Path(tempfile.mkdtemp(prefix=prefix))
        try:
            gpg = gnupg.GPG(gnupghome=str(self._home))
            self._gpg_binary = gpg.gpgbinary
            imported = gpg.import_keys(self._key.key.get_secret_value())
            if not imported.sec_imported:
                raise InvalidParameter(
                    f"decrypt_with: the private key in the Secret block {self._key.block!r} "
                    "could not be imported by gpg"
                )
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the home's gpg-agent and remove the home (with the key)."""
        for stream in self._kept.values():
            stream.stop()
        self._kept.clear()
        if self._home is None:
            return
        remove_gpg_home(self._home)
        self._home = None

    def open(self, path: Path, name: str) -> IO[bytes]:
        """The plain text of the encrypted file ``path``, as gpg decrypts it.

        Reading to the end raises :class:`InvalidFile` (naming ``name``) when gpg
        failed: a wrong key or passphrase, a corrupt or truncated file. Closing early
        stops gpg, unless little was read: then the next open() of the file goes on
        from that stream (replaying what it gave) instead of starting gpg again.
        """
        assert self._home is not None, "open() needs the Decryptor entered"
        if (kept := self._kept.pop(path, None)) is not None:
            return io.BufferedReader(_Replay(kept), 1 << 20)
        read_end, write_end = os.pipe()
        command = [
            self._gpg_binary,
            "--homedir", str(self._home),
            "--batch", "--no-tty", "--quiet", "--yes",
            "--pinentry-mode", "loopback",
            "--passphrase-fd", str(read_end),
            "--status-fd", "2",
            "--decrypt", str(path),
        ]  # fmt: skip
        try:
            process = subprocess.Popen(  # noqa: S603 - a fixed command line, no shell
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(read_end,),
            )
        finally:
            os.close(read_end)
        with os.fdopen(write_end, "wb") as passphrase:
            secret = self._key.passphrase
            # gpg reads one line from the pipe; an empty line for a key without one.
            passphrase.write((secret.get_secret_value() if secret else "").encode() + b"\n")
        stream = _GpgStream(process, name, self._key.block)
        stream.keep = lambda: self._kept.__setitem__(path, stream)
        return io.BufferedReader(stream, 1 << 20)


class _Replay(io.RawIOBase):
    """A kept stream from its start: the bytes it gave, then the rest of it."""

    def __init__(self, stream: _GpgStream) -> None:
        self._stream = stream
        self._given = memoryview(bytes(stream.given))
        stream.given.clear()
        stream.keep = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._given:
            count = min(len(buffer), len(self._given))
            buffer[:count] = self._given[:count]
            self._given = self._given[count:]
            return count
        return self._stream.read_more(buffer)

    def close(self) -> None:
        if not self.closed:
            self._stream.stop()
        super().close()


class _GpgStream(io.RawIOBase):
    """gpg's stdout as a raw binary stream; its exit status is checked at the end."""

    def __init__(self, process: subprocess.Popen[bytes], name: str, block: str) -> None:
        self._process = process
        self._name = name
        self._block = block
        self._status: list[bytes] = []
        self.given = bytearray()  # the plain text given so far, while it is short
        self.keep: Any = None  # called on an early close to keep the stream
        # stderr is drained as gpg writes it, so that gpg never blocks on it.
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self._process.stderr is not None
        for line in self._process.stderr:
            if line.startswith(b"[GNUPG:] "):
                self._status.append(line[9:].split(b" ", 1)[0].strip())

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self.read_more(buffer)
        if self.keep is not None:
            if len(self.given) + count <= _KEEP_BYTES:
                self.given += memoryview(buffer)[:count]
            else:
                self.keep, self.given = None, bytearray()
        return count

    def read_more(self, buffer: Any) -> int:
        """Read gpg's next bytes into ``buffer``; at the end, check how gpg ended."""
        assert self._process.stdout is not None
        count = cast(io.BufferedReader, self._process.stdout).readinto(buffer)
        if not count:
            self._check_end()
        return count or 0

    def _check_end(self) -> None:
        code = self._process.wait()
        self._reader.join()
        if code != 0 or b"DECRYPTION_OKAY" not in self._status:
            raise InvalidFile(self._why(), file=self._name)

    def _why(self) -> str:
        # gpg 2.2 says DECRYPTION_FAILED for all of these; the keywords before it
        # tell them apart: the recipients (ENC_TO), whether our key is one of them
        # (KEY_CONSIDERED), whether it unlocked the session key (DECRYPTION_KEY).
        status = set(self._status)
        if b"DECRYPTION_KEY" in status:
            reason = "it is corrupt or truncated (its data fails to decrypt part way)"
        elif b"KEY_CONSIDERED" in status:
            reason = "the passphrase in the Secret block does not unlock the key"
        elif b"ENC_TO" in status:
            reason = "it is not encrypted to the key in the Secret block"
        else:
            reason = "it is not a readable OpenPGP message (corrupt or truncated)"
        return f"cannot be decrypted with the key in the Secret block {self._block!r}: {reason}"

    def close(self) -> None:
        if not self.closed:
            if self.keep is not None and self._process.poll() is None:
                self.keep()  # a reader that only wanted the head: kept for the next
            else:
                self.stop()
        super().close()

    def stop(self) -> None:
        """Stop gpg (if it still runs) and close its pipes."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._reader.join()
        for pipe in (self._process.stdout, self._process.stderr):
            if pipe is not None:
                pipe.close()


def read_encrypted_table(
    decryptor: Decryptor, path: Path, *, name: str, **options: Any
) -> TableReader:
    """``read_table`` (:mod:`contact_center.parsing.files`) of an encrypted file, as decrypted.

    The plain text is read as a stream, so its encoding is told from its head: a BOM,
    else UTF-8 (a later byte that is not UTF-8 fails the read); give ``encoding``
    for anything else.

    Raises:
        InvalidFile: as for ``read_table``; also when the file cannot be decrypted,
            or its plain text is a workbook or of an encoding its head cannot tell.
    """

    def whole_plain_text() -> Path:
        # A workbook, or a text whose encoding takes more than its head to tell,
        # would need the plain text written out whole: refused instead.
        raise InvalidFile(
            "an encrypted file is read as it is decrypted, so it must be delimited or "
            "fixed-width text in UTF-8 (or with a BOM), or name its encoding in the "
            "encoding parameter; an encrypted workbook cannot be read",
            file=name,
        )

    reader = read_arriving_table(
        path,
        name=name,
        opener=lambda: decryptor.open(path, name),
        # Only a size beyond the head matters (the plain text's is unknown): then the
        # head is sniffed as the start of a longer file.
        size=max(path.stat().st_size, 1) << 8,
        complete=whole_plain_text,
        **options,
    )
    # UTF-8 from the head is final: a later byte that is not UTF-8, or gpg failing
    # part way, fails the read with its own error instead of a second decryption.
    reader.encoding_guessed, reader.complete = False, None
    return reader


def gpg_homes_left() -> dict[str, list[Path]]:
    """The temporary GnuPG homes on this machine, by the flow run that made them."""
    homes: dict[str, list[Path]] = {}
    for path in Path(tempfile.gettempdir()).glob(f"{GPG_HOME_PREFIX}*-*"):
        owner = path.name[len(GPG_HOME_PREFIX):].rpartition("-")[0]
        if owner and path.is_dir() and not path.is_symlink():
            homes.setdefault(owner, []).append(path)
    return homes


def remove_gpg_home(home: Path) -> None:
    """Stop a GnuPG home's agent (it holds the key in memory) and remove the home."""
    try:
        subprocess.run(  # noqa: S603 - a fixed command line
            ["gpgconf", "--homedir", str(home), "--kill", "all"],
            capture_output=True,
            check=False,
            timeout=_STOP_TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired):
        pass  # no gpgconf, or a stuck agent: the home goes all the same
    shutil.rmtree(home, ignore_errors=True)
