"""A private OpenSSH sshd on loopback, for the tests' ``sshd`` fixture and the benchmarks.

It needs only its own folder: host and client keys, a config and a log. Its SFTP
start folder is ``<root>/home``, a local path the caller can read and write.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SSHD", "Sshd", "free_port", "running_sshd", "sshd_available"]

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sshd_available() -> bool:
    """Whether OpenSSH's sshd and ssh-keygen are installed."""
    return Path(SSHD).exists() and shutil.which("ssh-keygen") is not None


@dataclass
class Sshd:
    """A running test sshd."""

    host: str
    port: int
    username: str
    private_key: str
    known_hosts: str
    home: Path
    root: Path

    def known_hosts_line(self) -> str:
        """The host key as a known_hosts line."""
        return self.known_hosts


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        capture_output=True,
    )


@contextmanager
def running_sshd(root: Path) -> Iterator[Sshd]:
    """Start sshd with its keys, config and SFTP home under ``root``; stop it on exit."""
    home = root / "home"
    home.mkdir()
    _keygen(root / "host_ed25519")
    _keygen(root / "client_ed25519")
    shutil.copy(root / "client_ed25519.pub", root / "authorized_keys")
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = root / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {root / 'host_ed25519'}",
                f"PidFile {root / 'sshd.pid'}",
                f"AuthorizedKeysFile {root / 'authorized_keys'}",
                "StrictModes no",
                "UsePAM no",
                "PasswordAuthentication yes",
                "PermitRootLogin prohibit-password",
                "MaxStartups 100:30:200",
                "MaxSessions 50",
                f"ForceCommand internal-sftp -d {home}",
                "Subsystem sftp internal-sftp",
                "",
            ]
        )
    )
    proc = subprocess.Popen(
        [SSHD, "-D", "-f", str(config), "-E", str(root / "sshd.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {(root / 'sshd.log').read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    host_key = (root / "host_ed25519.pub").read_text().split()
    try:
        yield Sshd(
            host="127.0.0.1",
            port=port,
            username=getpass.getuser(),
            private_key=(root / "client_ed25519").read_text(),
            known_hosts=f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}",
            home=home,
            root=root,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
