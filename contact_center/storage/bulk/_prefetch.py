"""Iterating a producer in a background thread, a few items ahead.

Private to :mod:`contact_center.storage.bulk`: the list import parses the next chunk of a
file while the database ingests this one.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class _End:
    """Marks the end of a prefetched stream (carrying the producer's error, if any)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Iterate ``items`` in a background thread, up to ``depth`` items ahead.

    A load uses it to parse the next chunk of a file while the database ingests
    this one: pyarrow, regexes and the socket all release the GIL, so on two cores
    the two overlap. The producer's exception is re-raised here, in the consumer,
    at the point where its item would have come; when the consumer stops early
    (an error, a gate), the producer is told to stop and is joined.

    Args:
        items: the iterable to run ahead (e.g. parsed chunks).
        depth: how many items may wait; bounds the memory held.
    """
    handoff: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def offer(item: Any) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
        except BaseException as exc:  # handed to the consumer, which re-raises it
            offer(_End(exc))
            return
        offer(_End())

    worker = threading.Thread(target=produce, name="cctasks-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = handoff.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stop.set()
        worker.join()
