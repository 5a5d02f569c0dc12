"""Two-factor login (migration 0016): TOTP factors, single-use recovery codes and challenges.

A factor is ``unverified`` from enrollment until its first correct code, then ``verified``: only
verified factors are asked for at login. Every accepted code moves the factor's ``last_used_step``
forward with a conditional update, so a code (or an older one) is accepted once, even when two
requests race with it. Recovery codes are stored as their SHA-256 and used up by a conditional
update too. A challenge is the short-lived permission to present a code: for the second step of a
login (no session yet) or to raise a signed-in session to ``aal2`` (a step-up); it dies when
verified, when it expires, or after ``CHALLENGE_MAX_ATTEMPTS`` wrong codes.
"""

from __future__ import annotations

import datetime
import hashlib
import secrets
import uuid

from peewee import BigIntegerField, BlobField, CharField, ForeignKeyField, IntegerField, TextField

from models.accounts import AuthSession, User
from models.base import BaseModel, DateTimeTZField, UUIDModel, utcnow

RECOVERY_CODE_COUNT = 10
CHALLENGE_TTL_SECONDS = 300
CHALLENGE_MAX_ATTEMPTS = 5
MAX_FACTORS = 10  # GoTrue's default cap on enrolled factors per user
_RECOVERY_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # 5 bits a character: 12 characters, 60 bits


class MfaFactor(UUIDModel):
    user = ForeignKeyField(User, column_name="user_id", on_delete="CASCADE")
    user_id: uuid.UUID
    factor_type = CharField(default="totp")
    friendly_name = TextField(null=True)
    secret_sealed = BlobField()
    status = CharField(default="unverified")
    last_used_step = BigIntegerField(null=True)
    last_used_at = DateTimeTZField(null=True)
    created_at = DateTimeTZField(default=utcnow)
    updated_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "mfa_factors"

    @property
    def verified(self) -> bool:
        return self.status == "verified"

    def view(self) -> dict:
        """What the factor's owner sees of it: never its secret."""
        return {
            "id": str(self.id),
            "factor_type": self.factor_type,
            "friendly_name": self.friendly_name,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
        }

    def claim_step(self, step: int) -> bool:
        """Record that a code of ``step`` was accepted; False when that step (or a later one) already was.

        Also verifies an unverified factor: its first accepted code proves the app holds the secret.
        """
        now = utcnow()
        claimed = (
            MfaFactor.update(last_used_step=step, last_used_at=now, updated_at=now, status="verified")
            .where((MfaFactor.id == self.id) & (MfaFactor.last_used_step.is_null() | (MfaFactor.last_used_step < step)))
            .execute()
        )
        if claimed:
            self.last_used_step, self.last_used_at, self.status = step, now, "verified"
        return bool(claimed)


class RecoveryCode(BaseModel):
    code_hash = BlobField(primary_key=True)
    user = ForeignKeyField(User, column_name="user_id", on_delete="CASCADE")
    created_at = DateTimeTZField(default=utcnow)
    used_at = DateTimeTZField(null=True)

    class Meta:
        table_name = "mfa_recovery_codes"


class MfaChallenge(UUIDModel):
    user = ForeignKeyField(User, column_name="user_id", on_delete="CASCADE")
    user_id: uuid.UUID
    factor = ForeignKeyField(MfaFactor, column_name="factor_id", null=True, on_delete="CASCADE")
    factor_id: uuid.UUID | None
    session = ForeignKeyField(AuthSession, column_name="session_id", null=True, on_delete="CASCADE")
    session_id: uuid.UUID | None
    attempts = IntegerField(default=0)
    ip = TextField(null=True)
    created_at = DateTimeTZField(default=utcnow)
    expires_at = DateTimeTZField()
    verified_at = DateTimeTZField(null=True)

    class Meta:
        table_name = "mfa_challenges"

    @property
    def open(self) -> bool:
        return self.verified_at is None and self.expires_at > utcnow() and self.attempts < CHALLENGE_MAX_ATTEMPTS

    @classmethod
    def start(cls, user_id, *, factor_id=None, session_id=None, ip: str | None = None) -> MfaChallenge:
        return cls.create(
            user=user_id,
            factor=factor_id,
            session=session_id,
            ip=ip,
            expires_at=utcnow() + datetime.timedelta(seconds=CHALLENGE_TTL_SECONDS),
        )

    def count_failure(self) -> int:
        """One more wrong code; returns the attempts left (0: the challenge is dead)."""
        rows = list(
            MfaChallenge.update(attempts=MfaChallenge.attempts + 1)
            .where(MfaChallenge.id == self.id)
            .returning(MfaChallenge.attempts)
            .execute()
        )
        self.attempts = rows[0].attempts if rows else CHALLENGE_MAX_ATTEMPTS
        return max(0, CHALLENGE_MAX_ATTEMPTS - self.attempts)

    def complete(self) -> bool:
        """Mark the challenge verified; False if it was not open any more (used, expired, out of attempts)."""
        now = utcnow()
        done = (
            MfaChallenge.update(verified_at=now)
            .where(
                (MfaChallenge.id == self.id)
                & MfaChallenge.verified_at.is_null()
                & (MfaChallenge.expires_at > now)
                & (MfaChallenge.attempts < CHALLENGE_MAX_ATTEMPTS)
            )
            .execute()
        )
        return bool(done)


def factors_of(user_id) -> list[MfaFactor]:
    return list(MfaFactor.select().where(MfaFactor.user == user_id).order_by(MfaFactor.created_at, MfaFactor.id))


def verified_factors(user_id) -> list[MfaFactor]:
    return [factor for factor in factors_of(user_id) if factor.verified]


def has_verified_factor(user_id) -> bool:
    return MfaFactor.select().where((MfaFactor.user == user_id) & (MfaFactor.status == "verified")).exists()


def second_factor_pending(session: AuthSession) -> bool:
    """Whether ``session`` proved only a password while its account has a verified factor.

    Such a session exists only on the Supabase-compatible API (supabase-js signs in at aal1, then
    raises the session with ``mfa.verify``); until then its tokens say so and open nothing else.
    """
    return session.aal != "aal2" and has_verified_factor(session.user_id)


def normalize_recovery_code(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


def _recovery_hash(code: str) -> bytes:
    return hashlib.sha256(f"mfa-recovery:{normalize_recovery_code(code)}".encode()).digest()


def issue_recovery_codes(user_id) -> list[str]:
    """Replace the user's recovery codes with ten new ones; the raw codes exist only in this answer."""
    RecoveryCode.delete().where(RecoveryCode.user == user_id).execute()
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(12))
        codes.append(f"{raw[:4]}-{raw[4:8]}-{raw[8:]}")
    RecoveryCode.insert_many([{"code_hash": _recovery_hash(code), "user": user_id} for code in codes]).execute()
    return codes


def redeem_recovery_code(user_id, code: str) -> bool:
    """Use up one of the user's recovery codes; False when it is not theirs or already used."""
    used = (
        RecoveryCode.update(used_at=utcnow())
        .where(
            (RecoveryCode.code_hash == _recovery_hash(code))
            & (RecoveryCode.user == user_id)
            & RecoveryCode.used_at.is_null()
        )
        .execute()
    )
    return bool(used)


def recovery_codes_left(user_id) -> int:
    return RecoveryCode.select().where((RecoveryCode.user == user_id) & RecoveryCode.used_at.is_null()).count()


def raise_session(session_id, method: str) -> None:
    """Record that the session proved a second factor (``method``: ``totp`` or ``recovery``): aal2."""
    session = AuthSession.get_by_id(session_id)
    amr = [*session.amr, {"method": method, "timestamp": int(utcnow().timestamp())}]
    AuthSession.update(aal="aal2", amr=amr).where(AuthSession.id == session_id).execute()


def turn_off(user_id) -> int:
    """After the user's last verified factor is gone: no recovery codes, and every session is aal1 again
    (what a refresh issues says so); returns the sessions lowered."""
    RecoveryCode.delete().where(RecoveryCode.user == user_id).execute()
    return (
        AuthSession.update(aal="aal1")
        .where((AuthSession.user == user_id) & (AuthSession.aal == "aal2") & AuthSession.revoked_at.is_null())
        .execute()
    )
