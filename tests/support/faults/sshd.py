"""A dedicated sshd that a test may kill: its listener and every session it forked.

Killing only the listener would leave the session processes (one per connection)
serving their transfers; a crashed or rebooted server takes them all, so
:meth:`KillableSshd.kill` SIGKILLs the whole tree. :meth:`KillableSshd.restart` starts
the same server again (same config, port and host key), as an operator would.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from support.sshd_server import SSHD, Sshd, running_sshd

__all__ = ["KillableSshd", "killable_sshd"]


@dataclass
class KillableSshd:
    """A running test sshd (see ``tests/support/sshd_server.py``) that can be killed and restarted.

    Attributes:
        server: the sshd's connection details and folders.
        killed: how many processes the last :meth:`kill` ended.
    """

    server: Sshd
    killed: int = 0
    _restarted: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def home(self) -> Path:
        """The SFTP start folder, a local path."""
        return self.server.home

    def host_key(self) -> str:
        """The host key as ``type base64``, for a known_hosts line of any port."""
        kind, key, *_ = (self.server.root / "host_ed25519.pub").read_text().split()
        return f"{kind} {key}"

    def listener(self) -> psutil.Process:
        """The listening sshd process."""
        return psutil.Process(int((self.server.root / "sshd.pid").read_text()))

    def kill(self) -> int:
        """SIGKILL the listener and every session process under it; return how many."""
        top = self.listener()
        processes = [top, *top.children(recursive=True)]
        for process in processes:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(processes, timeout=10)
        self.killed = len(processes)
        return self.killed

    def sessions(self) -> list[psutil.Process]:
        """The session processes (one per open connection, with their helpers)."""
        return self.listener().children(recursive=True)

    def restart(self) -> None:
        """Start the same sshd again and wait until it accepts connections."""
        root = self.server.root
        process = subprocess.Popen(
            [SSHD, "-D", "-f", str(root / "sshd_config"), "-E", str(root / "sshd.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._restarted.append(process)
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.server.port), timeout=0.5).close()
                return
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (root / "sshd.log").read_text()
                    raise RuntimeError(f"sshd did not restart: {log}") from None
                time.sleep(0.05)

    def stop_restarted(self) -> None:
        """Stop the servers that :meth:`restart` started."""
        for process in self._restarted:
            process.terminate()
            process.wait(timeout=10)


@contextmanager
def killable_sshd(root: Path) -> Iterator[KillableSshd]:
    """A dedicated sshd under ``root`` (not the session one other tests share)."""
    root.mkdir(parents=True, exist_ok=True)
    with running_sshd(root) as server:
        sshd = KillableSshd(server)
        try:
            yield sshd
        finally:
            sshd.stop_restarted()
