"""The operators' view of notifications: every email/SMS delivery with its provider status, and the
addresses email no longer goes to (bounces, spam reports, unsubscribes)."""

from __future__ import annotations

import falcon

from api.audit import audit
from api.cursor import CursorCodec
from api.errors import not_found
from api.operation import operation
from api.schemas.notifications import DeliveryPage, DeliveryQuery, SuppressionPage, SuppressionQuery
from models.db import db
from models.notifications import EmailSuppression, Notification, NotificationDelivery

ADMIN_TAGS = ("admin",)


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def delivery_view(row: NotificationDelivery) -> dict:
    return {
        "id": row.id,
        "notification_id": str(row.notification_id),
        "user_id": str(row.user_id),
        "type": row.notification.type,
        "channel": row.channel,
        "status": row.status,
        "recipient": row.recipient,
        "attempts": row.attempts,
        "provider_message_id": row.provider_message_id,
        "provider_status": row.provider_status,
        "error": row.error,
        "sent_at": _iso(row.sent_at),
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


class AdminDeliveries:
    def __init__(self, secret: str):
        self.cursors = CursorCodec(secret, "admin-deliveries")

    @operation(
        "Notification deliveries (email and SMS)",
        query=DeliveryQuery,
        response=DeliveryPage,
        permission="admin:notifications",
        tags=ADMIN_TAGS,
        description="Newest first, filtered by status, channel and user; what each provider last said.",
    )
    def on_get(self, req, resp):
        q: DeliveryQuery = req.context.query
        query = NotificationDelivery.select(NotificationDelivery, Notification.id, Notification.type).join(Notification)
        if q.status:
            query = query.where(NotificationDelivery.status == q.status)
        if q.channel:
            query = query.where(NotificationDelivery.channel == q.channel)
        if q.user_id is not None:
            query = query.where(NotificationDelivery.user == q.user_id)
        rows, next_cursor = self.cursors.newest_first(
            query, NotificationDelivery.created_at, NotificationDelivery.id, q.cursor, q.limit
        )
        resp.media = {"items": [delivery_view(row) for row in rows], "next_cursor": next_cursor}


class AdminSuppressions:
    def __init__(self, secret: str):
        self.cursors = CursorCodec(secret, "admin-suppressions")

    @operation(
        "Email addresses that get no email",
        query=SuppressionQuery,
        response=SuppressionPage,
        permission="admin:notifications",
        tags=ADMIN_TAGS,
        description="Bounced, reported as spam, dropped or unsubscribed at the provider; newest first.",
    )
    def on_get(self, req, resp):
        q: SuppressionQuery = req.context.query
        query = EmailSuppression.select()
        if q.email:
            query = query.where(EmailSuppression.email == q.email.strip().lower())
        if q.reason:
            query = query.where(EmailSuppression.reason == q.reason)
        rows, next_cursor = self.cursors.newest_first(
            query, EmailSuppression.created_at, EmailSuppression.email, q.cursor, q.limit
        )
        resp.media = {
            "items": [
                {"email": r.email, "reason": r.reason, "detail": r.detail, "created_at": r.created_at.isoformat()}
                for r in rows
            ],
            "next_cursor": next_cursor,
        }

    @operation(
        "Allow email to an address again",
        status=204,
        permission="admin:notifications",
        errors=(404,),
        tags=ADMIN_TAGS,
        description="Audited. A later bounce or spam report suppresses it again.",
    )
    def on_delete_item(self, req, resp, email):
        address = email.strip().lower()
        if len(address) > 254 or "\x00" in address:
            raise not_found("suppressed address")
        with db.atomic():
            row = EmailSuppression.select().where(EmailSuppression.email == address).for_update().first()
            if row is None:
                raise not_found("suppressed address")
            EmailSuppression.delete().where(EmailSuppression.email == address).execute()
            audit(
                req,
                "admin.delete_email_suppression",
                address,
                target_type="email_suppression",
                before={"reason": row.reason, "detail": row.detail, "created_at": row.created_at.isoformat()},
            )
        resp.status = falcon.HTTP_204
