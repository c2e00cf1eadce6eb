"""When a network step retries: not for what a retry cannot fix."""

from __future__ import annotations

from typing import Any

from prefect.client.schemas.objects import State, TaskRun

from contact_center.exceptions import (
    DownloadInterrupted,
    HostKeyError,
    InvalidParameter,
    ObjectNotFound,
)

__all__ = ["retry_transfer"]

#: Errors that a retry 10 seconds later meets again: an unknown or changed host key, a
#: bad parameter (a location outside its base folder), a missing block, and a download
#: that a reader stopped on purpose.
NOT_RETRIED = (HostKeyError, InvalidParameter, ObjectNotFound, DownloadInterrupted)


def retry_transfer(task: Any, task_run: TaskRun, state: State) -> bool:
    """A task's ``retry_condition_fn``: retry a failed transfer unless it cannot help."""
    try:
        state.result()
    except NOT_RETRIED:
        return False
    except Exception:
        return True
    return False
