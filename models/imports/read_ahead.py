"""Reading a step's next chunks while the runner writes the current one.

The runner spends much of a chunk waiting for PostgreSQL (the upserts, the import map, the
commit). ``read_ahead`` moves the source side (the server-side cursor's fetches, building each
row and its checksum) to a thread, ``depth`` chunks ahead, so the two overlap. Memory stays bounded
by ``depth`` chunks. The thread only reads the source; every write stays in the caller's thread
and transaction. An error in the thread is raised in the caller at the chunk where it happened;
leaving the loop early (an error, a cancelled job) stops the thread before the source is used again.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")
_END = object()


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


def read_ahead(chunks: Iterator[T], depth: int = 2) -> Iterator[T]:
    """The items of ``chunks`` in order, produced by a thread up to ``depth`` items ahead."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for chunk in chunks:
                if not offer(chunk):
                    return
            offer(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, raised there
            offer(_Failed(exc))

    thread = threading.Thread(target=produce, name="import-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # the generator is suspended (or finished): its cursor is closed here


__all__ = ["read_ahead"]
