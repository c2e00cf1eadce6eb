"""When a network step retries: not for what a retry cannot fix."""

from __future__ import annotations

from typing import Any

from prefect.client.schemas.objects import State, TaskRun

from contact_center.exceptions import (
    DeliveryFailed,
    DownloadInterrupted,
    HostKeyError,
    InvalidParameter,
    ObjectNotFound,
)

__all__ = ["retry_delivery", "retry_transfer"]

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


def retry_delivery(task: Any, task_run: TaskRun, state: State) -> bool:
    """Retry a delivery that failed on the way (network, server), not a setup error.

    A missing block, a bad name or a host key that is unknown or has changed will
    not fix itself in 10 seconds; the run fails at once with the reason.
    """
    try:
        state.result()
    except DeliveryFailed as exc:
        # A taken file name (FileExistsError) will not free itself either.
        return not isinstance(exc.__cause__, HostKeyError | FileExistsError)
    except Exception:
        return False
    return False
