"""Helpers of the fault-injection tests (``tests/test_faults.py``).

- :mod:`faults.relay`: a throttled TCP relay, so that a transfer lasts long enough
  for a fault to land in its middle.
- :mod:`faults.sshd`: a dedicated sshd, killed (listener and sessions) and restarted.
- :mod:`faults.watch`: wait for a condition in a background thread, then act.
- :mod:`faults.lists`: generated list files and the exact records they must give.
- :mod:`faults.postgres`: watch the import's backend, and terminate it mid-statement.
- :mod:`faults.process`: the import flow in a child process, to SIGKILL.
- :mod:`faults.snapshot`: what a list, its import history and an export look like in
  the database, to compare before and after a fault.
"""
