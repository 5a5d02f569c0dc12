"""Phone numbers proved with a texted code: the pending code, its attempts and expiry, and the proved number.

``PUT /v1/me/phone`` starts a verification (``start``): the pending row holds
only a keyed hash of the code, which the ``phone.send_code`` job derives again
from its own id and texts. The newest request wins: an older job finds its
code replaced and sends nothing (``unsent_because``). ``confirm`` checks a code
against the pending one: a wrong code counts against ``MAX_CODE_ATTEMPTS``; the
last wrong attempt, or expiry, voids the code; the right one proves the number.

The code and its hash come from ``PhoneCodes``, made with the deployment's
signer (``services.signing.Signer``), so the API and the worker agree on them.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from peewee import BlobField, ForeignKeyField, SmallIntegerField, TextField

from models.accounts import User
from models.base import BaseModel, DateTimeTZField, utcnow
from models.notifications import TYPES, turn_off

CODE_DIGITS = 6
MAX_CODE_ATTEMPTS = 5


class PhoneVerification(BaseModel):
    user = ForeignKeyField(User, column_name="user_id", primary_key=True, on_delete="CASCADE")
    phone = TextField()
    code_hash = BlobField()
    attempts = SmallIntegerField(default=0)
    expires_at = DateTimeTZField()
    created_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "phone_verifications"


class PhoneCodes:
    """The code a ``phone.send_code`` job texts, and the keyed hash stored instead of it.

    ``signer`` is a ``services.signing.Signer`` for ``SECRET_KEY``.
    """

    def __init__(self, signer):
        self.signer = signer

    def code(self, job_id) -> str:
        """The code the job ``job_id`` texts: the same for every run of that job."""
        digest = self.signer.job_digest("phone_code", job_id)
        return str(int.from_bytes(digest[:8], "big") % 10**CODE_DIGITS).zfill(CODE_DIGITS)

    # One part ``user:phone:code`` (a UUID, an E.164 number and digits hold no ":"): the bytes pending
    # rows have always held, so a code texted before this module existed still verifies.
    def hash(self, user_id, phone: str, code: str) -> bytes:
        """What ``phone_verifications.code_hash`` holds: keyed, so the table alone cannot be brute-forced."""
        return self.signer.mac("phone_code_hash", f"{user_id}:{phone}:{code}")

    def matches(self, code_hash: bytes, user_id, phone: str, code: str) -> bool:
        """True when ``code_hash`` is the hash of ``code`` for this user and number (constant time)."""
        return self.signer.verify("phone_code_hash", bytes(code_hash), f"{user_id}:{phone}:{code}")


def start(user_id, phone: str, job_id, codes: PhoneCodes, ttl_seconds: int) -> None:
    """Make the code of job ``job_id`` the one pending for ``user_id`` (voiding any earlier one), in the
    caller's transaction."""
    now = utcnow()
    fields = {
        "phone": phone,
        "attempts": 0,
        "created_at": now,
        "code_hash": codes.hash(user_id, phone, codes.code(job_id)),
        "expires_at": now + datetime.timedelta(seconds=ttl_seconds),
    }
    (
        PhoneVerification.insert(user=user_id, **fields)
        .on_conflict(conflict_target=[PhoneVerification.user], update=fields)
        .execute()
    )


@dataclass(frozen=True)
class Confirmation:
    """What a code did: ``verified``, ``wrong`` (``attempts_left`` more allowed), ``void`` or ``none`` pending."""

    outcome: str
    phone: str | None = None
    attempts_left: int = 0


def confirm(user_id, code: str, codes: PhoneCodes) -> Confirmation:
    """Check ``code`` against the pending one and apply the result, in the caller's transaction.

    The right code proves the number (``users.phone``, ``phone_verified_at``);
    it, an expired code and the last wrong attempt end the verification.
    """
    now = utcnow()
    pending = PhoneVerification.select().where(PhoneVerification.user == user_id).for_update().first()
    if pending is None:
        return Confirmation("none")
    if pending.expires_at <= now or pending.attempts >= MAX_CODE_ATTEMPTS:
        result = Confirmation("void", pending.phone)
    elif not codes.matches(pending.code_hash, user_id, pending.phone, code):
        left = MAX_CODE_ATTEMPTS - pending.attempts - 1
        result = Confirmation("wrong" if left > 0 else "void", pending.phone, left)
        (
            PhoneVerification.update(attempts=PhoneVerification.attempts + 1)
            .where(PhoneVerification.user == user_id)
            .execute()
        )
    else:
        result = Confirmation("verified", pending.phone)
        User.update(phone=pending.phone, phone_verified_at=now, updated_at=now).where(User.id == user_id).execute()
    if result.outcome in ("void", "verified"):
        PhoneVerification.delete().where(PhoneVerification.user == user_id).execute()
    return result


def unsent_because(user_id, phone: str, code: str, codes: PhoneCodes) -> str | None:
    """Why a job must not text ``code`` to ``phone`` (``superseded``, ``expired``), or None when it is pending."""
    pending = PhoneVerification.get_or_none(PhoneVerification.user == user_id)
    if pending is None or pending.phone != phone or not codes.matches(pending.code_hash, user_id, phone, code):
        return "superseded"
    if pending.expires_at <= utcnow():
        return "expired"
    return None


def number_changed(user_id) -> None:
    """The user's number changed without a code: it is unproven, and a code pending for any number is void."""
    User.update(phone_verified_at=None).where(User.id == user_id).execute()
    PhoneVerification.delete().where(PhoneVerification.user == user_id).execute()


def remove_number(user_id) -> str | None:
    """Forget the user's number (texts turned off for every type, a pending code void), in the caller's
    transaction; the number it had, or None when it had none."""
    turn_off(user_id, "sms", TYPES)
    PhoneVerification.delete().where(PhoneVerification.user == user_id).execute()
    before = User.get_by_id(user_id).phone
    if before is not None:
        User.update(phone=None, phone_verified_at=None, updated_at=utcnow()).where(User.id == user_id).execute()
    return before


__all__ = [
    "CODE_DIGITS",
    "MAX_CODE_ATTEMPTS",
    "Confirmation",
    "PhoneCodes",
    "PhoneVerification",
    "confirm",
    "number_changed",
    "remove_number",
    "start",
    "unsent_because",
]
