"""The deadlines of offers and escrows, enforced every minute by beat (``models.money_deadlines``).

Expired offers close, escrows whose deposit did not arrive in time are
cancelled (the listing goes back on the market), lapsed contingencies make the
deposit hard, and the closing date reminds the parties. Each row is handled in
its own transaction and skipped while another sweep holds it, so two runs at
once never handle one row twice; a run that finds nothing due changes nothing.
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from models import money_deadlines
from models.base import utcnow
from models.db import connection
from tasks.app import app
from tasks.runtime import runtime

log = logging.getLogger("hearth.money")


def _publish(channels: list[str], type_: str, data: dict) -> None:
    """A committed change's event on its parties' channels; the row stays the truth if Redis is away."""
    if not channels:
        return
    try:
        runtime().events.publish(channels[0], type_, data, also=tuple(channels[1:]))
    except (RedisError, OSError):
        log.warning("could not publish a deadline event", extra={"type": type_, "id": data.get("id")})


@app.task(
    name="tasks.money_deadlines.enforce_deadlines",
    acks_late=True,
    ignore_result=True,
    soft_time_limit=50,
    time_limit=55,
)
def enforce_deadlines() -> dict[str, int]:
    """Everything due now; returns how many of each kind were handled."""
    with connection():
        counts = money_deadlines.enforce(utcnow(), publish=_publish)
    if any(counts.values()):
        log.info("money deadlines enforced", extra=counts)
    return counts
