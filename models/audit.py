"""The audit log: who did what to which object, with the state before and after."""

from __future__ import annotations

from peewee import BigAutoField, ForeignKeyField, TextField
from playhouse.postgres_ext import BinaryJSONField

from models.accounts import User
from models.base import BaseModel, DateTimeTZField, utcnow


class AuditEntry(BaseModel):
    id = BigAutoField()
    at = DateTimeTZField(default=utcnow)
    actor = ForeignKeyField(User, column_name="actor_id", null=True, on_delete="SET NULL")
    action = TextField()
    target_type = TextField()
    target_id = TextField()
    before = BinaryJSONField(null=True)
    after = BinaryJSONField(null=True)
    request_id = TextField(null=True)
    ip = TextField(null=True)

    class Meta:
        table_name = "audit_log"

    @classmethod
    def record(
        cls,
        *,
        actor_id,
        action: str,
        target_type: str,
        target_id,
        before=None,
        after=None,
        request_id: str | None = None,
        ip: str | None = None,
    ) -> AuditEntry:
        return cls.create(
            actor=actor_id,
            action=action,
            target_type=target_type,
            target_id=str(target_id),
            before=before,
            after=after,
            request_id=request_id,
            ip=ip,
        )

    def view(self) -> dict:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor_id": str(self.actor_id) if self.actor_id else None,
            "action": self.action,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "before": self.before,
            "after": self.after,
            "request_id": self.request_id,
        }
