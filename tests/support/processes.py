"""A stack's processes, found by the ``CCTASKS_HOME`` they were started with.

The stack tests and the scale benchmark (``bench/scale_parts.py``) both use it, so it
needs nothing but psutil: the benchmark imports it as ``tests.support.processes``.
"""

from __future__ import annotations

from pathlib import Path

import psutil


def stack_processes(home: Path) -> list[psutil.Process]:
    """Every process started for the stack of ``home`` (server, worker, flow runs)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("CCTASKS_HOME") == str(home):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found
