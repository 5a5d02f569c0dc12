"""The rules of two-factor data: a time step is claimed once, recovery codes once, sealed secrets stay put."""

from __future__ import annotations

import uuid

import pyotp
import pytest

from models import mfa
from models.mfa import MfaChallenge, MfaFactor, RecoveryCode
from services.totp import SealedSecretError, TotpCodes
from tests.factories import make_user

# Every test here writes rows: each runs in the rolled-back transaction of the test database.
pytestmark = pytest.mark.usefixtures("database")

NOW = 1_900_000_000.0


@pytest.fixture
def codes():
    return TotpCodes(b"k" * 32, clock=lambda: NOW)


def _factor(codes, user) -> tuple[MfaFactor, str]:
    factor_id = uuid.uuid4()
    secret = codes.new_secret()
    factor = MfaFactor.create(id=factor_id, user=user.id, secret_sealed=codes.seal(secret, factor_id))
    return factor, secret


def test_a_time_step_is_claimed_once_and_never_an_older_one(codes):
    factor, _ = _factor(codes, make_user())
    assert not factor.verified and not mfa.has_verified_factor(factor.user_id)
    assert factor.claim_step(100)
    assert MfaFactor.get_by_id(factor.id).verified  # the first accepted code verifies it
    stale = MfaFactor.get_by_id(factor.id)
    assert not stale.claim_step(100)
    assert not stale.claim_step(99)
    assert stale.claim_step(101)


def test_codes_match_their_step_within_one_step_of_drift(codes):
    secret = codes.new_secret()
    totp = pyotp.TOTP(secret)
    now = int(NOW) // 30
    for offset in (-1, 0, 1):
        assert codes.matching_step(secret, totp.at(NOW + 30 * offset), after=None) == now + offset
    assert codes.matching_step(secret, totp.at(NOW + 60), after=None) is None
    assert codes.matching_step(secret, totp.at(NOW), after=now) is None  # already used
    assert codes.matching_step(secret, "12345", after=None) is None
    assert codes.matching_step(secret, "abcdef", after=None) is None


def test_a_sealed_secret_opens_only_for_its_factor_and_key(codes):
    factor_id = uuid.uuid4()
    sealed = codes.seal("JBSWY3DPEHPK3PXP", factor_id)
    assert b"JBSWY3DPEHPK3PXP" not in sealed
    assert codes.open(sealed, factor_id) == "JBSWY3DPEHPK3PXP"
    with pytest.raises(SealedSecretError):
        codes.open(sealed, uuid.uuid4())
    with pytest.raises(SealedSecretError):
        TotpCodes(b"x" * 32).open(sealed, factor_id)


def test_recovery_codes_are_stored_hashed_and_work_once_for_their_owner():
    owner, stranger = make_user(), make_user()
    issued = mfa.issue_recovery_codes(owner.id)
    assert len(issued) == 10
    stored = [bytes(row.code_hash) for row in RecoveryCode.select().where(RecoveryCode.user == owner.id)]
    assert len(stored) == 10 and not any(code.replace("-", "").encode() in h for code in issued for h in stored)
    assert not mfa.redeem_recovery_code(stranger.id, issued[0])
    assert mfa.redeem_recovery_code(owner.id, " " + issued[0].upper() + " ")
    assert not mfa.redeem_recovery_code(owner.id, issued[0])
    assert mfa.recovery_codes_left(owner.id) == 9
    fresh = mfa.issue_recovery_codes(owner.id)
    assert not mfa.redeem_recovery_code(owner.id, issued[1])  # replaced
    assert mfa.recovery_codes_left(owner.id) == 10 and set(fresh).isdisjoint(issued)


def test_a_challenge_completes_once_and_dies_after_five_wrong_codes():
    user = make_user()
    challenge = MfaChallenge.start(user.id)
    assert challenge.open
    for left in (4, 3, 2, 1, 0):
        assert challenge.count_failure() == left
    assert not MfaChallenge.get_by_id(challenge.id).open
    assert not challenge.complete()
    other = MfaChallenge.start(user.id)
    assert other.complete()
    assert not other.complete()
