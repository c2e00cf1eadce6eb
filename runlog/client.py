"""The Prefect client every view reads with; a server that does not answer is named."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.settings import PREFECT_API_URL

from contact_center.exceptions import SourceUnavailable

__all__ = ["PAGE_SIZE", "prefect_client"]

# Prefect's API returns at most PREFECT_SERVER_API_DEFAULT_LIMIT (200) objects a read.
PAGE_SIZE = 200


@contextmanager
def prefect_client(timeout: float | None = None) -> Iterator[SyncPrefectClient]:
    """A Prefect client; a server that cannot be reached becomes ``SourceUnavailable``.

    Args:
        timeout: seconds a request may take (default: Prefect's setting).

    Raises:
        SourceUnavailable: naming the API URL, when the server does not answer.
    """
    url = PREFECT_API_URL.value() or "(PREFECT_API_URL is not set)"
    settings: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
    try:
        with get_client(sync_client=True, httpx_settings=settings) as client:
            yield client
    except httpx.TransportError as exc:
        raise SourceUnavailable(
            f"the Prefect server at {url} is not reachable ({type(exc).__name__}); "
            "start it (make up) or set PREFECT_API_URL"
        ) from exc
