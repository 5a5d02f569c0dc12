"""Phone number verification: the job that texts a 6-digit code.

``PUT /v1/me/phone`` writes the pending ``PhoneVerification`` (only the code's
hash) and this job in one transaction (``models/phone.py``). The code is
derived from the job id with ``SECRET_KEY``, so the API and the job agree on it
without it ever being stored, and a retried or redelivered job texts the same
code (the SMS itself is sent once, inside ``ctx.once``). A job whose request was
superseded by a newer one, verified, withdrawn or expired sends nothing.
"""

from __future__ import annotations

from models.phone import PhoneCodes, unsent_because
from services.signing import Signer
from services.sms import SmsError
from tasks.base import JobContext, Transient, job_task
from tasks.runtime import runtime


class Undeliverable(Exception):
    """The provider refused the number for good (not a mobile, unreachable, opted out)."""

    public_detail = "A text message could not be sent to this number."


def code_message(code: str, ttl_seconds: int) -> str:
    minutes = max(1, ttl_seconds // 60)
    return f"{code} is your Hearth verification code. It expires in {minutes} minutes. Do not share it with anyone."


@job_task(transient=(Transient,))
def send_code(ctx: JobContext) -> dict:
    settings = runtime().settings
    user_id, phone = ctx.input["user_id"], ctx.input["phone"]
    codes = PhoneCodes(Signer(settings.secret_key))
    code = codes.code(ctx.job.id)
    reason = unsent_because(user_id, phone, code, codes)
    if reason is not None:
        return {"sent": False, "reason": reason}

    def deliver(key):
        try:
            return {"sid": runtime().sms.send(phone, code_message(code, settings.phone_code_ttl), idempotency_key=key)}
        except SmsError as exc:
            if exc.transient:
                raise Transient(str(exc)) from exc
            raise Undeliverable(str(exc)) from exc

    ctx.once("sms", deliver)
    return {"sent": True}
