"""Blocks (``/v1/me/blocks``) and reports (``/v1/reports``, ``/v1/admin/reports``).

A block stops new messages both ways between two people, in every
conversation they share, and stops either starting one with the other; it
hides nothing already said. The blocked person is not told, beyond the 403
``blocked`` their next message meets.

A report is how a user tells the operators about someone; the report view is
the only way an admin reads a conversation, and each reading is audited.
"""

from __future__ import annotations

import falcon

from api.audit import audit
from api.cursor import CursorCodec
from api.errors import conflict, not_found, validation_error
from api.operation import operation
from api.schemas.moderation import (
    BlockList,
    BlockListQuery,
    ReportDetail,
    ReportList,
    ReportListQuery,
    ReportReceipt,
    ReportRequest,
    ReportResolution,
    ReportView,
)
from models import message_views
from models.accounts import User
from models.conversations import (
    Message,
    UserBlock,
    UserReport,
    block,
    file_report,
    participates,
    resolve_report,
    unblock,
)
from models.db import db

TAGS = ("moderation",)
CONTEXT_MESSAGES = 50


class MyBlocks:
    def __init__(self, secret: str | None = None):
        self.cursors = CursorCodec(secret or "", "blocks")

    @operation(
        "People I blocked",
        query=BlockListQuery,
        response=BlockList,
        tags=("me",),
        description="Most recently blocked first; pages follow `next_cursor`.",
    )
    def on_get(self, req, resp):
        q: BlockListQuery = req.context.query
        query = (
            UserBlock.select(UserBlock, User.id, User.full_name)
            .join(User, on=(UserBlock.blocked == User.id))
            .where(UserBlock.blocker == req.context.principal.user_id)
        )
        rows, next_cursor = self.cursors.newest_first(query, UserBlock.created_at, UserBlock.blocked, q.cursor, q.limit)
        resp.media = {
            "items": [
                {
                    "user_id": str(row.blocked_id),
                    "full_name": row.blocked.full_name,
                    "blocked_at": row.created_at.isoformat(),
                }
                for row in rows
            ],
            "next_cursor": next_cursor,
        }

    @operation(
        "Block someone",
        status=204,
        permission="messages:write",
        errors=(404, 422),
        tags=("me",),
        description="Idempotent. From now on neither of you can message the other, in a conversation "
        "you share or a new one; what was said stays visible. 404 for an unknown user, 422 "
        "for yourself.",
    )
    def on_put_item(self, req, resp, user_id):
        principal = req.context.principal
        if str(user_id) == principal.user_id:
            raise validation_error([{"field": "path.user_id", "message": "you cannot block yourself"}])
        if not User.select().where(User.id == user_id).exists():
            raise not_found("user")
        block(principal.user_id, user_id)
        resp.status = falcon.HTTP_204

    @operation(
        "Unblock someone",
        status=204,
        permission="messages:write",
        tags=("me",),
        description="Idempotent: unblocking someone who is not blocked changes nothing.",
    )
    def on_delete_item(self, req, resp, user_id):
        unblock(req.context.principal.user_id, user_id)
        resp.status = falcon.HTTP_204


class Reports:
    def __init__(self, secret: str | None = None):
        self.secret = secret

    @operation(
        "Report a user",
        body=ReportRequest,
        response=ReportReceipt,
        status=201,
        permission="messages:write",
        errors=(404, 422),
        tags=TAGS,
        also={200: "Your open report about the same user and message, unchanged"},
        description="Operators review reports. `conversation_id` must name a conversation you and the "
        "reported user take part in (404 otherwise); `message_id` a message of it that they "
        "sent (422 otherwise). While your report about the same user and message is open, "
        "reporting again returns it (200) and files nothing new.",
    )
    def on_post(self, req, resp):
        body: ReportRequest = req.context.body
        principal = req.context.principal
        reported = str(body.user_id)
        if reported == principal.user_id:
            raise validation_error([{"field": "body.user_id", "message": "you cannot report yourself"}])
        if body.message_id is not None and body.conversation_id is None:
            raise validation_error(
                [{"field": "body.conversation_id", "message": "name the conversation of the message"}]
            )
        if not User.select().where(User.id == reported).exists():
            raise not_found("user")
        if body.conversation_id is not None and not participates(body.conversation_id, principal.user_id, reported):
            raise not_found("conversation")
        if (
            body.message_id is not None
            and not Message.select()
            .where(
                (Message.id == body.message_id)
                & (Message.conversation == body.conversation_id)
                & (Message.sender == reported)
            )
            .exists()
        ):
            raise validation_error(
                [{"field": "body.message_id", "message": "no message of the reported user in this conversation"}]
            )
        with db.atomic():
            report, created = file_report(
                reporter_id=principal.user_id,
                reported_id=reported,
                reason=body.reason,
                details=body.details.strip() if body.details else None,
                conversation_id=body.conversation_id,
                message_id=body.message_id,
            )
        resp.status = falcon.HTTP_201 if created else falcon.HTTP_200
        resp.media = {"id": str(report.id), "status": report.status, "created_at": report.created_at.isoformat()}


def _person(user: User | None) -> dict | None:
    if user is None:
        return None
    return {
        "id": str(user.id),
        "full_name": user.full_name,
        "email": user.email,
        "role": user.role,
        "banned": user.is_banned,
    }


def report_view(report: UserReport, people: dict) -> dict:
    return {
        "id": str(report.id),
        "status": report.status,
        "reason": report.reason,
        "details": report.details,
        "reporter": _person(people.get(report.reporter_id)),
        "reported": _person(people[report.reported_id]),
        "conversation_id": str(report.conversation_id) if report.conversation_id else None,
        "message_id": report.message_id,
        "resolution": report.resolution,
        "resolved_by": str(report.resolved_by_id) if report.resolved_by_id else None,
        "resolved_at": report.resolved_at.isoformat() if report.resolved_at else None,
        "created_at": report.created_at.isoformat(),
    }


def _people(reports) -> dict:
    ids = {r.reporter_id for r in reports if r.reporter_id} | {r.reported_id for r in reports}
    return {user.id: user for user in User.select().where(User.id.in_(list(ids)))} if ids else {}


def _load(report_id) -> UserReport:
    report = UserReport.get_or_none(UserReport.id == report_id)
    if report is None:
        raise not_found("report")
    return report


class AdminReports:
    def __init__(self, secret: str | None = None):
        self.cursors = CursorCodec(secret or "", "admin-reports")

    @operation(
        "Reports about users",
        query=ReportListQuery,
        response=ReportList,
        permission="admin:reports",
        tags=("admin",),
        description="Newest first, optionally only those in one `status`; pages follow `next_cursor`.",
    )
    def on_get(self, req, resp):
        q: ReportListQuery = req.context.query
        query = UserReport.select()
        if q.status:
            query = query.where(UserReport.status == q.status)
        rows, next_cursor = self.cursors.newest_first(query, UserReport.created_at, UserReport.id, q.cursor, q.limit)
        people = _people(rows)
        resp.media = {"items": [report_view(row, people) for row in rows], "next_cursor": next_cursor}

    @operation(
        "One report, with the messages it is about",
        response=ReportDetail,
        permission="admin:reports",
        errors=(404,),
        tags=("admin",),
        description="The reporter and the reported user, the reported message, and up to 50 messages of "
        "the conversation around it (its latest 50 when no message was named). This is the "
        "only way an admin reads a conversation; every reading is audited.",
    )
    def on_get_item(self, req, resp, report_id):
        report = _load(report_id)
        view = report_view(report, _people([report]))
        context = []
        if report.conversation_id is not None:
            context = message_views.messages_around(report.conversation_id, report.message_id, CONTEXT_MESSAGES)
            with db.atomic():
                audit(
                    req,
                    "report.conversation_read",
                    report.id,
                    target_type="report",
                    after={"conversation_id": str(report.conversation_id), "message_ids": [m.id for m in context]},
                )
        reported = next((m for m in context if m.id == report.message_id), None)
        if reported is None and report.message_id is not None:
            reported = Message.get_or_none(Message.id == report.message_id)
        resp.media = dict(
            view,
            message=message_views.message_view(reported) if reported else None,
            messages=[message_views.message_view(m) for m in context],
        )

    @operation(
        "Resolve a report",
        body=ReportResolution,
        response=ReportView,
        permission="admin:reports",
        errors=(404, 409),
        tags=("admin",),
        description="`actioned` (something was done: a warning, a ban through `/v1/admin/users`) or "
        "`dismissed`. Only an open report can be resolved (409 otherwise). Audited.",
    )
    def on_patch_item(self, req, resp, report_id):
        body: ReportResolution = req.context.body
        report = _load(report_id)
        with db.atomic():
            resolved = resolve_report(
                report.id,
                status=body.status,
                resolution=body.resolution.strip() if body.resolution else None,
                admin_id=req.context.principal.user_id,
            )
            if resolved is None:
                raise conflict(
                    f"The report is already {UserReport.get_by_id(report.id).status}.", slug="report-resolved"
                )
            audit(
                req,
                "report.resolved",
                report.id,
                target_type="report",
                before={"status": report.status},
                after={"status": resolved.status, "resolution": resolved.resolution},
            )
        resp.media = report_view(resolved, _people([resolved]))
