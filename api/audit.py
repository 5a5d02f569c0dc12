"""The audit row of a request: who did what to which object, from where, under which request id.

The row itself is ``models.audit.AuditEntry``; this adds what only the request
knows. Write it inside the transaction of the change it records.
"""

from __future__ import annotations

from api.operation import client_ip
from models.audit import AuditEntry


def audit(req, action: str, target_id, *, target_type: str = "user", before=None, after=None) -> None:
    """An audit row for this request: its caller (or, signed out, the user it is about), request id and address."""
    AuditEntry.record(
        actor_id=getattr(req.context.principal, "user_id", None) or target_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        before=before,
        after=after,
        request_id=req.context.request_id,
        ip=client_ip(req, req.context.services),
    )


__all__ = ["audit"]
