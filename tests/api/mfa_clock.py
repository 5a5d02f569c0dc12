"""Authenticator codes under the test's clock: the API's services built with a clock the test moves."""

from __future__ import annotations

import jwt
import pyotp
import pytest

from api.app import build_services
from services.totp import TotpCodes

START = 1_900_000_005.0  # a fixed time, 5 s into a 30-second step


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def next_step(self) -> None:
        self.now += 30


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def services(settings, redis, jobs, runtime, clock):
    """The API's services with the authenticator codes' clock in the test's hands."""
    return build_services(
        settings, redis=redis, jobs=jobs, totp=TotpCodes.from_secret_key(settings.secret_key, clock=clock)
    )


def claims(tokens: dict) -> dict:
    """The access token's claims (its signature is the API's business, checked elsewhere)."""
    return jwt.decode(tokens["access_token"], options={"verify_signature": False})


def code(secret: str, clock: Clock, steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(clock.now + 30 * steps)
