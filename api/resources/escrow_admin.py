"""``/v1/admin/escrows`` and ``/v1/admin/payments``: every escrow, an admin's resolution of a dispute, and
the payments that need someone to act on them (``?status=failed``).

Admins read any escrow through ``GET /v1/escrows/{id}``; here they list them
all and split a disputed deposit. A resolution's amounts add up to exactly what
the escrow holds; it starts the settlement job (owned by the admin) and is
audited with its written reason.
"""

from __future__ import annotations

import falcon

from api.audit import audit
from api.cursor import CursorCodec
from api.errors import conflict, not_found
from api.operation import operation
from api.resources.escrows import answer, audit_change, escrow_rules, locked, state, summary, watched_by
from api.schemas.escrows import (
    AdminPaymentView,
    EscrowList,
    EscrowListQuery,
    EscrowView,
    PaymentList,
    PaymentListQuery,
    ResolutionRequest,
)
from models import escrow_actions
from models.base import utcnow
from models.db import db
from models.escrows import Escrow
from models.payments import Payment, retry_job, retryable

TAGS = ("escrows", "admin")
PERMISSION = "admin:escrows"


class AdminEscrows:
    def __init__(self, secret: str):
        self.cursors = CursorCodec(secret, "admin-escrows")

    @operation(
        "Every escrow",
        query=EscrowListQuery,
        response=EscrowList,
        permission=PERMISSION,
        tags=TAGS,
        description="Newest first, optionally only those in one `status` (`disputed`: waiting for a "
        "resolution); pages follow `next_cursor`. Read one through `GET /v1/escrows/{id}`.",
    )
    def on_get(self, req, resp):
        q: EscrowListQuery = req.context.query
        query = Escrow.select()
        if q.status:
            query = query.where(Escrow.status == q.status)
        rows, next_cursor = self.cursors.newest_first(query, Escrow.created_at, Escrow.id, q.cursor, q.limit)
        resp.media = {"items": [summary(row, req.context.principal) for row in rows], "next_cursor": next_cursor}

    @operation(
        "Resolve a disputed escrow",
        idempotent=True,
        body=ResolutionRequest,
        response=EscrowView,
        status=202,
        permission=PERMISSION,
        errors=(404, 409, 422),
        tags=TAGS,
        description="Splits what a disputed escrow holds between the buyer and the seller: `buyer_amount` + "
        "`seller_amount` must equal its `held` exactly (422 otherwise), with a written reason. "
        "Starts the settlement job (`settlement: split`; 202 with its `Location`, yours to follow); "
        "the escrow becomes `resolved` when the money has moved. 409 unless it is disputed and not "
        "settling. Audited.",
    )
    def on_post_resolution(self, req, resp, escrow_id):
        body: ResolutionRequest = req.context.body
        principal = req.context.principal
        reason = body.reason.strip()
        with db.atomic(), escrow_rules():
            escrow = locked(escrow_id)
            before = state(escrow)
            job = escrow_actions.resolve(
                escrow,
                admin_id=principal.user_id,
                buyer=body.buyer_amount,
                seller=body.seller_amount,
                reason=reason,
                now=utcnow(),
            )
            watched_by(job, principal.user_id)
            audit_change(
                req, "resolution", before, escrow, buyer=body.buyer_amount, seller=body.seller_amount, reason=reason
            )
        answer(req, resp, escrow, "resolution", job)


class AdminPayments:
    def __init__(self, secret: str):
        self.cursors = CursorCodec(secret, "admin-payments")

    @operation(
        "Payments to act on",
        query=PaymentListQuery,
        response=PaymentList,
        permission=PERMISSION,
        tags=TAGS,
        description="Deposits, refunds and payouts of every escrow, newest first, filtered by `status` "
        "(`failed`: what the provider refused, to act on) and `kind`; pages follow `next_cursor`. "
        "No client secret is ever shown here.",
    )
    def on_get(self, req, resp):
        q: PaymentListQuery = req.context.query
        query = Payment.select()
        if q.status:
            query = query.where(Payment.status == q.status)
        if q.kind:
            query = query.where(Payment.kind == q.kind)
        rows, next_cursor = self.cursors.newest_first(query, Payment.created_at, Payment.id, q.cursor, q.limit)
        resp.media = {
            "items": [dict(row.view(), escrow_id=str(row.escrow_id)) for row in rows],
            "next_cursor": next_cursor,
        }

    @operation(
        "Pay a refused payout or refund again",
        idempotent=True,
        response=AdminPaymentView,
        status=202,
        permission=PERMISSION,
        errors=(404, 409),
        tags=TAGS,
        description="For a `failed` payout or refund (the provider refused it, or gave the money back): a job "
        "pays the same amount to the same recipient again, as a new payment with its own idempotency key, "
        "once (202 with the job's `Location`, yours to follow). Fix the cause first, e.g. the seller's "
        "`payout_account` (`PATCH /v1/admin/users/{id}`). The failed payment becomes `canceled` when the new "
        "one is made, and the escrow's history records both. 409 for any other payment, or while a retry "
        "of it is running. Audited.",
    )
    def on_post_retry(self, req, resp, payment_id):
        principal = req.context.principal
        with db.atomic():
            payment = Payment.select().where(Payment.id == payment_id).for_update().first()
            if payment is None:
                raise not_found("payment")
            if not retryable(payment):
                raise conflict(
                    f"Only a failed payout or refund can be paid again; this {payment.kind} is {payment.status}.",
                    slug="payment-not-retryable",
                )
            job, created = retry_job(payment, admin_id=principal.user_id)
            if not created:
                raise conflict("A retry of this payment is already under way.", slug="payment-retry-running")
            audit(req, "payment.retry", payment.id, target_type="payment", after={"job_id": str(job.id)})
        resp.status = falcon.HTTP_202
        resp.location = f"/v1/jobs/{job.id}"
        resp.media = dict(payment.view(), escrow_id=str(payment.escrow_id))
