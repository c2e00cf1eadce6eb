"""The SFTP-server block: how cctasks reaches a partner's SFTP drop.

Host keys are verified by default against ``known_host_keys`` (OpenSSH
``known_hosts`` lines). An unknown or changed key fails with
:class:`~contact_center.exceptions.HostKeyError`. Secrets are ``SecretStr`` and
are unwrapped only when the connection opens.
"""

from __future__ import annotations

import io
import posixpath
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any

import paramiko
from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from contact_center.exceptions import HostKeyError, SourceUnavailable

__all__ = ["RemoteFile", "SftpServer", "SftpSession"]

# aes128-gcm goes first: the fastest cipher here (docs/performance.md has the figures).
#: A download is requested this many bytes at a time (see SftpSession.get).
READ_WINDOW_BYTES = 16 << 20
# paramiko's largest SFTP read request.
_READ_BYTES = 32768
PREFERRED_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr")
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class RemoteFile:
    """A file in a remote folder."""

    name: str
    size: int
    mtime: float


class SftpServer(Block):
    """An SFTP server that holds list files or receives exports and reports.

    Example:
        ```python
        from blocks import SftpServer
        server = SftpServer.load("BLOCK_NAME")  # e.g. "partner-drop"
        with server.open() as sftp:
            print(sftp.list("incoming"))
        ```
    """

    _block_type_name = "SFTP Server"
    _block_type_slug = "sftp-server"
    _description = "An SFTP server reached with paramiko; host keys are verified by default."

    host: str = Field(description="Host name or IP address of the SFTP server.")
    port: int = Field(default=22, description="TCP port of the SSH service.")
    username: str = Field(description="User name to log in with.")
    password: SecretStr | None = Field(
        default=None, description="Password, when the server uses password login."
    )
    private_key: SecretStr | None = Field(
        default=None, description="Private key in OpenSSH or PEM text, for key login."
    )
    private_key_passphrase: SecretStr | None = Field(
        default=None, description="Passphrase of the private key, if it has one."
    )
    known_host_keys: str | None = Field(
        default=None,
        description=(
            "The server's host keys as OpenSSH known_hosts lines "
            "(e.g. the output of `ssh-keyscan -p PORT HOST`)."
        ),
    )
    verify_host_key: bool = Field(
        default=True,
        description="Refuse servers whose key is not in known_host_keys. Leave on.",
    )
    timeout: float = Field(default=30.0, description="Connect and read timeout, in seconds.")
    base_folder: str | None = Field(
        default=None,
        description=(
            "The folder that every location on this server must resolve inside, after "
            "symlinks: sources, archive folders, deletions and destinations. An absolute "
            "path, or one relative to the login folder. Empty: the login folder."
        ),
    )

    def open(self) -> SftpSession:
        """Connect, verify the host key, log in and return a session to use in ``with``.

        Raises:
            HostKeyError: the server's key is unknown or has changed.
            SourceUnavailable: the server cannot be reached or refuses the login.
        """
        return SftpSession.connect(self)

    @property
    def address(self) -> str:
        """``user@host:port``, for messages (no secret)."""
        return f"{self.username}@{self.host}:{self.port}"

    def _host_key_names(self) -> list[str]:
        return [self.host] if self.port == 22 else [f"[{self.host}]:{self.port}", self.host]

    def _check_host_key(self, key: paramiko.PKey) -> None:
        if not self.verify_host_key:
            return
        known = paramiko.HostKeys()
        for line_no, line in enumerate((self.known_host_keys or "").splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line, lineno=line_no)
            if entry is not None:
                for name in entry.hostnames:
                    known.add(name, entry.key.get_name(), entry.key)
        for name in self._host_key_names():
            entries = known.lookup(name)
            if entries is None:
                continue
            expected = entries.get(key.get_name())
            if expected is None:
                continue
            if expected == key:
                return
            raise HostKeyError(
                f"host key of {self.host}:{self.port} has CHANGED "
                f"({key.get_name()} {key.fingerprint}); refusing to connect. "
                "Update known_host_keys only if the change is expected."
            )
        raise HostKeyError(
            f"host key of {self.host}:{self.port} is unknown ({key.get_name()} {key.fingerprint}); "
            "add it to the block's known_host_keys (ssh-keyscan output)"
        )

    def _private_key(self) -> paramiko.PKey:
        assert self.private_key is not None
        passphrase = (
            self.private_key_passphrase.get_secret_value() if self.private_key_passphrase else None
        )
        text = self.private_key.get_secret_value()
        last: Exception | None = None
        for key_class in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
            try:
                return key_class.from_private_key(io.StringIO(text), password=passphrase)
            except (paramiko.SSHException, ValueError) as exc:
                last = exc  # paramiko and cryptography say what failed, never the key
        raise SourceUnavailable(
            f"the private key of the SFTP block for {self.address} cannot be read "
            "(not an Ed25519, ECDSA or RSA key, or a wrong passphrase)"
        ) from last


class SftpSession:
    """An open SFTP connection; closes its transport on exit."""

    def __init__(self, server: SftpServer, transport: paramiko.Transport) -> None:
        self.server = server
        self._transport = transport
        sftp = paramiko.SFTPClient.from_transport(transport)
        if sftp is None:  # pragma: no cover - paramiko returns None only on failure
            raise SourceUnavailable(f"cannot open the SFTP channel on {server.address}")
        self._sftp: paramiko.SFTPClient = sftp

    @classmethod
    def connect(cls, server: SftpServer) -> SftpSession:
        """Open a connection to ``server`` (see :meth:`SftpServer.open`)."""
        try:
            sock = socket.create_connection((server.host, server.port), timeout=server.timeout)
            # SFTP is requests and answers: with Nagle's algorithm a small request
            # waited for the last answer's delayed ACK, at the start of every read
            # window and for every request that paramiko sends alone.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            raise SourceUnavailable(f"cannot reach SFTP server {server.address}: {exc}") from exc
        transport = paramiko.Transport(sock)
        try:
            options = transport.get_security_options()
            options.ciphers = tuple(
                [c for c in PREFERRED_CIPHERS if c in options.ciphers]
                + [c for c in options.ciphers if c not in PREFERRED_CIPHERS]
            )
            transport.banner_timeout = server.timeout
            transport.start_client(timeout=server.timeout)
            server._check_host_key(transport.get_remote_server_key())
            cls._authenticate(server, transport)
            return cls(server, transport)
        except HostKeyError:
            transport.close()
            raise
        except SourceUnavailable:
            transport.close()
            raise
        except (paramiko.SSHException, OSError, EOFError) as exc:
            transport.close()
            raise SourceUnavailable(
                f"SFTP connection to {server.address} failed: {type(exc).__name__}: {exc}"
            ) from exc

    @staticmethod
    def _authenticate(server: SftpServer, transport: paramiko.Transport) -> None:
        try:
            if server.private_key is not None:
                transport.auth_publickey(server.username, server._private_key())
            elif server.password is not None:
                transport.auth_password(server.username, server.password.get_secret_value())
            else:
                raise SourceUnavailable(
                    f"the SFTP block for {server.address} has neither a password nor a key"
                )
        except paramiko.AuthenticationException as exc:
            # paramiko's refusal names the methods tried, never the password or key
            # (tests/blocks/test_sftp_causes.py checks the whole chain for them).
            raise SourceUnavailable(
                f"SFTP login to {server.address} was refused (check the block's credentials)"
            ) from exc

    # -- context management ------------------------------------------------------------

    def __enter__(self) -> SftpSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the SFTP channel and the SSH transport."""
        try:
            self._sftp.close()
        finally:
            self._transport.close()

    # -- operations ----------------------------------------------------------------------

    def _fail(self, action: str, path: str, exc: BaseException) -> SourceUnavailable:
        return SourceUnavailable(
            f"cannot {action} {path!r} on {self.server.address}: {exc.__class__.__name__}: {exc}"
        )

    def list(self, folder: str) -> list[RemoteFile]:
        """The regular files in ``folder``."""
        try:
            attrs = self._sftp.listdir_attr(folder or ".")
        except (OSError, paramiko.SSHException) as exc:
            raise self._fail("list", folder, exc) from exc
        return [
            RemoteFile(a.filename, a.st_size or 0, float(a.st_mtime or 0))
            for a in attrs
            if a.st_mode is not None and stat.S_ISREG(a.st_mode)
        ]

    def stat(self, path: str) -> RemoteFile:
        """Size and time of ``path``."""
        try:
            a = self._sftp.stat(path)
        except (OSError, paramiko.SSHException) as exc:
            raise self._fail("stat", path, exc) from exc
        return RemoteFile(posixpath.basename(path), a.st_size or 0, float(a.st_mtime or 0))

    def exists(self, path: str) -> bool:
        """Whether ``path`` exists."""
        try:
            self._sftp.stat(path)
        except FileNotFoundError:
            return False
        except (OSError, paramiko.SSHException) as exc:
            raise self._fail("stat", path, exc) from exc
        return True

    def get(self, path: str, target: IO[bytes], progress: Progress | None = None) -> int:
        """Download ``path`` into the open binary file ``target``; return the bytes read.

        The file is read in windows of :data:`READ_WINDOW_BYTES`, each requested at
        once (``readv``), then read in order. paramiko's whole-file prefetch
        (``getfo``) has a race (paramiko#2519): when its requesting thread falls
        behind the responses (other threads keeping the GIL busy, as when the import
        parses the file while it arrives), it takes the prefetch for finished and
        reads the rest one request at a time, many times slower. A window bounds
        that to its own megabytes, and with ``TCP_NODELAY`` (see :meth:`connect`) a
        request sent alone waits one round trip, not a delayed ACK. Each window ends
        with one round trip of idle pipe, which a distant server makes costlier in
        small windows. docs/performance.md has the figures.
        """
        try:
            size = int(self._sftp.stat(path).st_size or 0)
            done = 0
            with self._sftp.open(path, "rb") as remote:
                for start in range(0, size, READ_WINDOW_BYTES):
                    stop = min(start + READ_WINDOW_BYTES, size)
                    chunks = [
                        (offset, min(_READ_BYTES, stop - offset))
                        for offset in range(start, stop, _READ_BYTES)
                    ]
                    for data in remote.readv(chunks):
                        target.write(data)
                        done += len(data)
                        if progress is not None:
                            progress(done, size)
            return done
        except (OSError, paramiko.SSHException) as exc:
            raise self._fail("download", path, exc) from exc

    def put(self, source: IO[bytes], path: str, progress: Progress | None = None) -> int:
        """Upload the open binary file ``source`` to ``path``; return the bytes written.

        The size is checked against the server's once the upload completes.
        """
        try:
            attrs = self._sftp.putfo(source, path, callback=progress, confirm=True)
        except (OSError, paramiko.SSHException) as exc:
            raise self._fail("upload", path, exc) from exc
        return int(attrs.st_size or 0)

    def rename(self, old: str, new: str, overwrite: bool = True) -> None:
        """Rename ``old`` to ``new``, replacing ``new`` when ``overwrite`` (posix-rename)."""
        try:
            if overwrite:
                self._sftp.posix_rename(old, new)
            else:
                self._sftp.rename(old, new)
        except (OSError, paramiko.SSHException) as exc:
            raise self._fail("rename", f"{old} -> {new}", exc) from exc

    def remove(self, path: str) -> None:
        """Delete the file ``path``."""
        try:
            self._sftp.remove(path)
        except (OSError, paramiko.SSHException) as exc:
            raise self._fail("remove", path, exc) from exc

    def makedirs(self, folder: str) -> None:
        """Create ``folder`` and its parents when missing."""
        parts = [p for p in folder.split("/") if p and p != "."]
        current = "/" if folder.startswith("/") else ""
        for part in parts:
            current = posixpath.join(current, part) if current else part
            try:
                self._sftp.stat(current)
            except FileNotFoundError:
                try:
                    self._sftp.mkdir(current)
                except (OSError, paramiko.SSHException) as exc:
                    raise self._fail("create folder", current, exc) from exc

    def raw(self) -> Any:
        """The underlying ``paramiko.SFTPClient``, for what this class does not wrap."""
        return self._sftp
