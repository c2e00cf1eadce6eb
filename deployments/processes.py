"""Child processes of the embedded stack, started in their own sessions and stopped as trees.

Each service (the Prefect server, the worker) runs in a new session, so a signal meant
for it never reaches the terminal's foreground group by accident and a group kill
catches its helpers. The worker starts each flow run in yet another session, so a
group kill alone would orphan a running flow: :meth:`Service.stop` therefore
snapshots the whole process tree first and kills whatever of it is left at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psutil

__all__ = ["Service", "stop_children", "stop_services"]


@dataclass
class Service:
    """A long-lived child process with its log file.

    Attributes:
        name: what the user calls it in messages (``server``, ``worker``).
        command: the argv to run.
        env: the complete environment of the child.
        log_path: where its stdout and stderr go.
        cwd: its working directory.
        signals_to_stop: how many SIGTERMs it may need before it exits (the Prefect
            worker often ignores the first one; docs/running.md says more).
    """

    name: str
    command: Sequence[str]
    env: dict[str, str]
    log_path: Path
    cwd: Path
    signals_to_stop: int = 1
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _log: IO[bytes] | None = field(default=None, init=False, repr=False)

    def start(self) -> None:
        """Start the process in a new session, its output appended to ``log_path``."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            list(self.command),
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int | None:
        """The process id, once started."""
        return self.process.pid if self.process is not None else None

    def exited(self) -> int | None:
        """The exit code when the process has ended, else ``None``."""
        return None if self.process is None else self.process.poll()

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the log, for an error message."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def tree(self) -> list[psutil.Process]:
        """The process and all its descendants that are alive now."""
        if self.process is None:
            return []
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def signal_group(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the process's session group (no error when it is gone)."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass

    def close_log(self) -> None:
        """Close the log file handle held for the child."""
        if self._log is not None:
            self._log.close()
            self._log = None


def _alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for proc in processes:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.NoSuchProcess:
            continue
    return alive


def _terminate(processes: list[psutil.Process]) -> None:
    for proc in processes:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            continue


def stop_children(service: Service, *, grace_seconds: float) -> int:
    """SIGTERM what ``service`` started (not the service) and wait for it to end.

    The worker's children are the flow runs: stopped while their worker and the server
    still run, each one reports its end (Prefect marks it Crashed) before it exits.

    Returns:
        How many processes were still alive after ``grace_seconds`` (left to
        :func:`stop_services`).
    """
    children = service.tree()[1:]
    _terminate(children)
    deadline = time.monotonic() + grace_seconds
    while _alive(children) and time.monotonic() < deadline:
        time.sleep(0.1)
    return len(_alive(children))


def stop_services(
    services: Sequence[Service], *, grace_seconds: float = 7.0, resignal_after: float = 1.0
) -> list[str]:
    """Stop ``services`` and everything they started, within ``grace_seconds`` plus a moment.

    Every service's group and every process of its tree get SIGTERM at once; services
    that need more signals get another after ``resignal_after`` seconds; whatever of
    the snapshotted trees is still alive after ``grace_seconds`` is killed with SIGKILL.

    Returns:
        The names of the services that had to be killed.
    """
    started = [s for s in services if s.process is not None]
    trees = {s.name: s.tree() for s in started}
    for service in started:
        service.signal_group(signal.SIGTERM)
        # Flow runs live in sessions of their own: ask them to stop too, so that
        # Prefect can mark them crashed before the worker kills itself.
        _terminate(trees[service.name][1:])
    deadline = time.monotonic() + grace_seconds
    resignal_at = time.monotonic() + resignal_after
    pending_signals = {s.name: s.signals_to_stop - 1 for s in started}
    while time.monotonic() < deadline:
        for service in started:
            # A run the worker spawned a moment ago is in no snapshot yet: add it
            # while it is still the worker's child, before it could be reparented.
            known = {p.pid for p in trees[service.name]}
            trees[service.name] += [p for p in service.tree() if p.pid not in known]
        if not any(_alive(tree) for tree in trees.values()):
            break
        if time.monotonic() >= resignal_at:
            for service in started:
                if pending_signals[service.name] > 0 and service.exited() is None:
                    service.signal_group(signal.SIGTERM)
                    pending_signals[service.name] -= 1
            resignal_at = time.monotonic() + resignal_after
        time.sleep(0.1)
    killed = []
    for service in started:
        leftovers = _alive(trees[service.name] + service.tree())
        if leftovers:
            killed.append(service.name)
            for proc in leftovers:
                try:
                    proc.kill()
                except psutil.NoSuchProcess:
                    continue
            psutil.wait_procs(leftovers, timeout=2)
        if service.process is not None:
            try:
                service.process.wait(timeout=2)
            except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL is final
                pass
        service.close_log()
    return killed
