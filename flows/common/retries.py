"""When a network step retries: not for what a retry cannot fix."""

from __future__ import annotations

from typing import Any

from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun

from contact_center.exceptions import (
    DeliveryFailed,
    DownloadInterrupted,
    HostKeyError,
    InvalidParameter,
    ObjectNotFound,
)
from contact_center.settings import (
    FETCH_RETRIES,
    FETCH_RETRY_DELAYS,
    NETWORK_RETRIES,
    NETWORK_RETRY_DELAYS,
)

__all__ = [
    "DELIVERY_TASK",
    "FETCH_TASK",
    "NETWORK_TASK",
    "TRANSFER_TASK",
    "retry_delivery",
    "retry_transfer",
]

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


# The task options of each kind of network step, ``@task(**FETCH_TASK)``: one place says how
# often, how long apart and for which errors a step is tried again. No network step is cached.

#: A step that talks to another machine (a dialler, a webhook, a mail server).
NETWORK_TASK: dict[str, Any] = {
    "retries": NETWORK_RETRIES,
    "retry_delay_seconds": [float(s) for s in NETWORK_RETRY_DELAYS],
    "cache_policy": NO_CACHE,
}
#: Fetching a list file, and tidying its source, unless a retry cannot help.
FETCH_TASK: dict[str, Any] = {
    "retries": FETCH_RETRIES,
    "retry_delay_seconds": [float(s) for s in FETCH_RETRY_DELAYS],
    "retry_condition_fn": retry_transfer,
    "cache_policy": NO_CACHE,
}
#: Uploading a file, unless a retry cannot help.
TRANSFER_TASK: dict[str, Any] = NETWORK_TASK | {"retry_condition_fn": retry_transfer}
#: Delivering an export, unless a retry cannot help or its name is taken.
DELIVERY_TASK: dict[str, Any] = NETWORK_TASK | {"retry_condition_fn": retry_delivery}
