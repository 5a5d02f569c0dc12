"""Events on the parties' user channels, published once the change that caused them has committed.

Inside an idempotent request the change commits with its stored response,
after the responder returns; elsewhere it has committed already and the event
goes at once. A failure to publish is logged: the rows stay the truth.
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from models.db import after_commit_to

log = logging.getLogger("hearth.events")


def publish_to_parties(req, user_ids, type_: str, data: dict) -> None:
    """``type_`` with ``data`` on each of ``user_ids``' ``user:{id}`` channels, after the commit."""
    channels = [f"user:{user_id}" for user_id in user_ids]
    if not channels:
        return

    def send() -> None:
        try:
            req.context.services.events.publish(channels[0], type_, data, also=tuple(channels[1:]))
        except (RedisError, OSError):
            log.warning("could not publish an event", extra={"type": type_, "id": data.get("id")}, exc_info=True)

    after_commit_to(req.context.job_submission.base, send)
