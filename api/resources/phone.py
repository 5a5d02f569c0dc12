"""``/v1/me/phone``: a phone number proved with a code texted through Twilio, for SMS notifications.

The verification itself (the pending code, attempts, expiry) is ``models/phone.py``; the code is derived
from the job id, so a retried job texts the same code, and only its keyed hash is stored.
"""

from __future__ import annotations

import logging

import falcon

from api.audit import audit
from api.errors import Problem, conflict, too_many_requests, validation_error
from api.operation import operation
from api.schemas.accounts import Accepted
from api.schemas.notifications import PhoneCode, PhoneRequest, PhoneVerified
from models import phone as verification
from models.accounts import User
from models.db import db
from models.jobs import Job
from models.phone import PhoneCodes
from services.signing import Signer

log = logging.getLogger("hearth.notifications")
TAGS = ("notifications",)
CODES_PER_HOUR = 5
CODE_HOUR = 3600


def _no_code(message: str) -> Problem:
    return validation_error([{"field": "body.code", "message": message}], detail="Request a new code.")


class MyPhone:
    @operation(
        "Verify a phone number: text it a code",
        body=PhoneRequest,
        response=Accepted,
        status=202,
        permission="profile:write",
        errors=(409, 429),
        tags=TAGS,
        description="Texts a 6-digit code to the number (E.164); confirm it with `POST /v1/me/phone/verify` "
        "before it expires. Until then my current number, if any, stays. A new request voids "
        "the previous code. At most 5 codes an hour.",
    )
    def on_put(self, req, resp):
        services = req.context.services
        settings = services.settings
        user_id = req.context.principal.user_id
        phone = req.context.body.phone
        current = User.get_by_id(user_id)
        if current.phone == phone and current.phone_verified_at is not None:
            raise conflict("This number is already verified.", slug="phone-already-verified")
        allowance = services.limiter.hit("phone-codes", f"u:{user_id}", CODES_PER_HOUR, CODE_HOUR)
        if not allowance.allowed:
            raise too_many_requests(allowance.reset, f"At most {CODES_PER_HOUR} codes an hour; try again later.")
        with db.atomic():
            job = Job.create(
                kind="phone.send_code", queue="notify", owner=user_id, input={"user_id": user_id, "phone": phone}
            )
            verification.start(user_id, phone, job.id, PhoneCodes(Signer(settings.secret_key)), settings.phone_code_ttl)
        resp.status = falcon.HTTP_202
        resp.location = f"/v1/jobs/{job.id}"
        resp.media = {
            "status": "accepted",
            "detail": f"We are texting a 6-digit code to {phone}; send it to POST /v1/me/phone/verify "
            f"within {settings.phone_code_ttl // 60} minutes.",
        }

    @operation(
        "Confirm my phone number with the texted code",
        body=PhoneCode,
        response=PhoneVerified,
        permission="profile:write",
        errors=(422,),
        tags=TAGS,
        description="A wrong code counts against the 5 attempts a code allows; after the fifth, or once "
        "it expired, the code is void and a new one must be requested.",
    )
    def on_post_verify(self, req, resp):
        services = req.context.services
        user_id = req.context.principal.user_id
        codes = PhoneCodes(Signer(services.settings.secret_key))
        with db.atomic():
            result = verification.confirm(user_id, req.context.body.code, codes)
            if result.outcome == "verified":
                audit(req, "user.verify_phone", user_id, after={"phone": result.phone})
        if result.outcome == "none":
            raise _no_code("no code is pending; request a new code")
        if result.outcome == "void":
            raise _no_code("this code has expired or was tried too often; request a new code")
        if result.outcome == "wrong":
            left = result.attempts_left
            raise _no_code(f"is not correct ({left} attempt{'s' if left != 1 else ''} left)")
        services.sessions.store_profile(User.get_by_id(user_id))
        resp.media = {"number": result.phone, "verified": True}

    @operation(
        "Remove my phone number",
        status=204,
        permission="profile:write",
        tags=TAGS,
        description="Idempotent. Text messages are turned off for every type; a pending code is void.",
    )
    def on_delete(self, req, resp):
        user_id = req.context.principal.user_id
        with db.atomic():
            before = verification.remove_number(user_id)
            if before is not None:
                audit(req, "user.remove_phone", user_id, before={"phone": before})
        req.context.services.sessions.store_profile(User.get_by_id(user_id))
        resp.status = falcon.HTTP_204
