"""Inject a fault from a background thread once a condition holds.

The flow under test runs in the test's thread (or in a child process); a
:class:`FaultWhen` polls for evidence that the step to hit is under way (a partial
file's size, a statement in ``pg_stat_activity``), then injects the fault and keeps
what it saw, so the test can assert that the fault landed where it meant it to.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

__all__ = ["FaultWhen"]


class FaultWhen:
    """Poll ``evidence`` until it returns something, then call ``inject`` with it.

    Use it as a context manager around the run (or, when the run is another
    process, around :meth:`wait`); on exit it stops polling, waits for the thread and
    re-raises its error, if any.

    Args:
        evidence: returns None while the step has not started, else what it saw.
        inject: the fault, given that evidence; returns what it did (kept as ``done``).
        timeout: seconds to wait for the evidence before giving up.
        interval: seconds between polls.

    Attributes:
        seen: the evidence the fault was injected on (None if it never was).
        done: what ``inject`` returned.
    """

    def __init__(
        self,
        evidence: Callable[[], Any],
        inject: Callable[[Any], Any],
        *,
        timeout: float = 60.0,
        interval: float = 0.01,
    ) -> None:
        self._evidence = evidence
        self._inject = inject
        self._timeout = timeout
        self._interval = interval
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self.seen: Any = None
        self.done: Any = None
        self._thread = threading.Thread(target=self._run, name="fault-injector", daemon=True)

    def __enter__(self) -> FaultWhen:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=self._timeout)
        if self._error is not None and exc is None:
            raise self._error

    def wait(self) -> bool:
        """Wait until the fault is injected (or the evidence times out); whether it was."""
        self._thread.join(timeout=self._timeout + 5)
        return self.fired

    @property
    def fired(self) -> bool:
        """Whether the fault was injected."""
        return self.seen is not None

    def _run(self) -> None:
        deadline = time.monotonic() + self._timeout
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                seen = self._evidence()
                if seen is not None:
                    self.seen = seen
                    self.done = self._inject(seen)
                    return
                time.sleep(self._interval)
        except BaseException as exc:  # re-raised in the test's thread
            self._error = exc
