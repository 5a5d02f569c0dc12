"""Phone number verification: the job that texts a 6-digit code.

``PUT /v1/me/phone`` writes the pending ``PhoneVerification`` (only the code's
hash) and this job in one transaction. The code is derived from the job id
with ``SECRET_KEY``, so the API and the job agree on it without it ever being
stored, and a retried or redelivered job texts the same code (the SMS itself is
sent once, inside ``ctx.once``). A job whose request was superseded by a newer
one, verified, withdrawn or expired sends nothing.
"""
from __future__ import annotations

import hmac

from models.base import utcnow
from models.notifications import PhoneVerification
from services.signing import Signer
from services.sms import SmsError
from tasks.base import JobContext, Transient, job_task
from tasks.runtime import runtime

CODE_DIGITS = 6


class Undeliverable(Exception):
    """The provider refused the number for good (not a mobile, unreachable, opted out)."""

    public_detail = "A text message could not be sent to this number."


def verification_code(secret: str, job_id) -> str:
    """The code the job ``job_id`` texts: the same for every run of that job."""
    digest = Signer(secret).job_digest("phone_code", job_id)
    return str(int.from_bytes(digest[:8], "big") % 10 ** CODE_DIGITS).zfill(CODE_DIGITS)


def code_hash(secret: str, user_id, phone: str, code: str) -> bytes:
    """What ``phone_verifications.code_hash`` holds: keyed, so the table alone cannot be brute-forced."""
    # One part ``user:phone:code`` (a UUID, an E.164 number and digits hold no ":"): the bytes pending
    # rows have always held, so a code texted before a deploy still verifies after it.
    return Signer(secret).mac("phone_code_hash", f"{user_id}:{phone}:{code}")


def code_message(code: str, ttl_seconds: int) -> str:
    minutes = max(1, ttl_seconds // 60)
    return (f"{code} is your Hearth verification code. It expires in {minutes} minutes. "
            "Do not share it with anyone.")


@job_task(transient=(Transient,))
def send_code(ctx: JobContext) -> dict:
    settings = runtime().settings
    user_id, phone = ctx.input["user_id"], ctx.input["phone"]
    code = verification_code(settings.secret_key, ctx.job.id)
    pending = PhoneVerification.get_or_none(PhoneVerification.user == user_id)
    if pending is None or pending.phone != phone or not hmac.compare_digest(
            bytes(pending.code_hash), code_hash(settings.secret_key, user_id, phone, code)):
        return {"sent": False, "reason": "superseded"}
    if pending.expires_at <= utcnow():
        return {"sent": False, "reason": "expired"}

    def deliver(key):
        try:
            return {"sid": runtime().sms.send(phone, code_message(code, settings.phone_code_ttl),
                                              idempotency_key=key)}
        except SmsError as exc:
            if exc.transient:
                raise Transient(str(exc)) from exc
            raise Undeliverable(str(exc)) from exc

    ctx.once("sms", deliver)
    return {"sent": True}
