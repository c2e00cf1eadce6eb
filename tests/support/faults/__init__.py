"""Helpers of the fault-injection tests (``tests/flows/test_faults.py``).

- :mod:`support.faults.relay`: a throttled TCP relay, so that a transfer lasts long enough
  for a fault to land in its middle.
- :mod:`support.faults.sshd`: a dedicated sshd, killed (listener and sessions) and restarted.
- :mod:`support.faults.watch`: wait for a condition in a background thread, then act.
- :mod:`support.faults.lists`: generated list files and the exact records they must give.
- :mod:`support.faults.postgres`: watch the import's backend, and terminate it mid-statement.
- :mod:`support.faults.process`: the import flow in a child process, to SIGKILL.
- :mod:`support.faults.snapshot`: what a list, its import history and an export look like in
  the database, to compare before and after a fault.
"""
