"""``/v1/me/phone``: a phone number proved with a code texted through Twilio, for SMS notifications.

The code is derived from the job id (HMAC with ``SECRET_KEY``), so a retried job texts the same code;
only its keyed hash is stored. The newest request wins: an older job finds its code replaced and sends
nothing.
"""
from __future__ import annotations

import datetime
import hmac
import logging

import falcon

from api.errors import Problem, conflict, too_many_requests, validation_error
from api.operation import operation
from api.resources.auth import audit
from api.schemas.accounts import Accepted
from api.schemas.notifications import PhoneCode, PhoneRequest, PhoneVerified
from models.accounts import User
from models.base import utcnow
from models.db import db
from models.jobs import Job
from models.notifications import TYPES, PhoneVerification, turn_off
from tasks.phone import code_hash, verification_code

log = logging.getLogger("hearth.notifications")
TAGS = ("notifications",)
MAX_CODE_ATTEMPTS = 5
CODES_PER_HOUR = 5


def _count_code_request(services, user_id) -> int:
    """Count one code request; 0 when allowed, else the seconds until the next is."""
    key = f"{services.settings.redis_prefix}phone-codes:{user_id}"
    pipe = services.redis.pipeline()
    pipe.set(key, 0, ex=3600, nx=True)  # the hour starts with the first code
    pipe.incr(key)
    pipe.ttl(key)
    _, count, ttl = pipe.execute()
    return 0 if count <= CODES_PER_HOUR else max(1, int(ttl))


def _no_code(message: str) -> Problem:
    return validation_error([{"field": "body.code", "message": message}], detail="Request a new code.")


class MyPhone:
    @operation("Verify a phone number: text it a code", body=PhoneRequest, response=Accepted, status=202,
               permission="profile:write", errors=(409, 429), tags=TAGS,
               description="Texts a 6-digit code to the number (E.164); confirm it with `POST /v1/me/phone/verify` "
                           "before it expires. Until then my current number, if any, stays. A new request voids "
                           "the previous code. At most 5 codes an hour.")
    def on_put(self, req, resp):
        services = req.context.services
        settings = services.settings
        user_id = req.context.principal.user_id
        phone = req.context.body.phone
        current = User.get_by_id(user_id)
        if current.phone == phone and current.phone_verified_at is not None:
            raise conflict("This number is already verified.", slug="phone-already-verified")
        retry_after = _count_code_request(services, user_id)
        if retry_after:
            raise too_many_requests(retry_after, f"At most {CODES_PER_HOUR} codes an hour; try again later.")
        now = utcnow()
        with db.atomic():
            job = Job.create(kind="phone.send_code", queue="notify", owner=user_id,
                             input={"user_id": user_id, "phone": phone})
            fields = {"phone": phone, "attempts": 0, "created_at": now,
                      "code_hash": code_hash(settings.secret_key, user_id, phone,
                                             verification_code(settings.secret_key, job.id)),
                      "expires_at": now + datetime.timedelta(seconds=settings.phone_code_ttl)}
            (PhoneVerification.insert(user=user_id, **fields)
             .on_conflict(conflict_target=[PhoneVerification.user], update=fields).execute())
        resp.status = falcon.HTTP_202
        resp.location = f"/v1/jobs/{job.id}"
        resp.media = {"status": "accepted",
                      "detail": f"We are texting a 6-digit code to {phone}; send it to POST /v1/me/phone/verify "
                                f"within {settings.phone_code_ttl // 60} minutes."}

    @operation("Confirm my phone number with the texted code", body=PhoneCode, response=PhoneVerified,
               permission="profile:write", errors=(422,), tags=TAGS,
               description="A wrong code counts against the 5 attempts a code allows; after the fifth, or once "
                           "it expired, the code is void and a new one must be requested.")
    def on_post_verify(self, req, resp):
        services = req.context.services
        secret = services.settings.secret_key
        user_id = req.context.principal.user_id
        now = utcnow()
        with db.atomic():
            pending = PhoneVerification.select().where(PhoneVerification.user == user_id).for_update().first()
            if pending is None:
                outcome = "none"
            elif pending.expires_at <= now or pending.attempts >= MAX_CODE_ATTEMPTS:
                outcome = "void"
            elif not hmac.compare_digest(bytes(pending.code_hash),
                                         code_hash(secret, user_id, pending.phone, req.context.body.code)):
                outcome = "void" if pending.attempts + 1 >= MAX_CODE_ATTEMPTS else "wrong"
                (PhoneVerification.update(attempts=PhoneVerification.attempts + 1)
                 .where(PhoneVerification.user == user_id).execute())
            else:
                outcome = "verified"
                User.update(phone=pending.phone, phone_verified_at=now, updated_at=now).where(
                    User.id == user_id).execute()
                audit(req, "user.verify_phone", user_id, after={"phone": pending.phone})
            if outcome in ("void", "verified"):
                PhoneVerification.delete().where(PhoneVerification.user == user_id).execute()
        if outcome == "none":
            raise _no_code("no code is pending; request a new code")
        if outcome == "void":
            raise _no_code("this code has expired or was tried too often; request a new code")
        if outcome == "wrong":
            left = MAX_CODE_ATTEMPTS - pending.attempts - 1
            raise _no_code(f"is not correct ({left} attempt{'s' if left != 1 else ''} left)")
        services.sessions.store_profile(User.get_by_id(user_id))
        resp.media = {"number": pending.phone, "verified": True}

    @operation("Remove my phone number", status=204, permission="profile:write", tags=TAGS,
               description="Idempotent. Text messages are turned off for every type; a pending code is void.")
    def on_delete(self, req, resp):
        user_id = req.context.principal.user_id
        with db.atomic():
            turn_off(user_id, "sms", TYPES)
            PhoneVerification.delete().where(PhoneVerification.user == user_id).execute()
            before = User.get_by_id(user_id).phone
            if before is not None:
                User.update(phone=None, phone_verified_at=None, updated_at=utcnow()).where(
                    User.id == user_id).execute()
                audit(req, "user.remove_phone", user_id, before={"phone": before})
        req.context.services.sessions.store_profile(User.get_by_id(user_id))
        resp.status = falcon.HTTP_204
