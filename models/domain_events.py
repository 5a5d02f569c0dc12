"""Moves of the data that the processes count (escrow transitions, payment outcomes), told to listeners.

Models know nothing of how a move is counted: each composition root (the API's
``create_app``, the worker's runtime) adds ``services.metrics.count_domain_event``
with ``listen``. A listener that fails never fails the move.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger("hearth.models")
_listeners: list[Callable[..., None]] = []


def listen(listener: Callable[..., None]) -> None:
    """Call ``listener(name, **labels)`` on every move from now on (adding one twice adds it once)."""
    if listener not in _listeners:
        _listeners.append(listener)


def tell(name: str, **labels: str) -> None:
    """A move happened: ``escrow.transition`` (``to``), ``payment.status`` (``kind``, ``status``)."""
    for listener in _listeners:
        try:
            listener(name, **labels)
        except Exception:
            log.warning("a domain event listener failed", extra={"event": name}, exc_info=True)
