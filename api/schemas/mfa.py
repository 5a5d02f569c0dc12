"""Schemas of two-factor login: TOTP enrollment, recovery codes, challenges and their verification."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from api.schemas import Password, Request, Response, line
from api.schemas.accounts import TokenPair

Code = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[0-9]{6}$", description="The six-digit code the authenticator app shows now", examples=["123456"]
    ),
]
RecoveryCodeText = Annotated[
    str,
    msgspec.Meta(
        min_length=12,
        max_length=20,
        pattern=r"^[A-Za-z2-7 -]+$",
        description="One of the recovery codes shown at activation (case, spaces and dashes do not matter)",
        examples=["abcd-efgh-ijkm"],
    ),
]
FriendlyName = Annotated[str, line(100, min_length=1, description="A name to tell your factors apart")]


class EnrollTotpRequest(Request):
    friendly_name: FriendlyName | None = None


class FactorView(Response):
    id: str
    factor_type: Literal["totp"]
    friendly_name: str | None
    status: Literal["unverified", "verified"]
    created_at: str
    updated_at: str
    last_used_at: str | None


class TotpEnrollment(FactorView):
    """Shown once, at enrollment: the secret never leaves Hearth again."""

    secret: str
    uri: Annotated[str, msgspec.Meta(description="otpauth:// URI (issuer Hearth, your email) for the app")]
    qr_code: Annotated[str, msgspec.Meta(description="The URI as a QR code: an SVG document")]


class CodeRequest(Request):
    code: Code


class ActivatedFactor(Response):
    factor: FactorView
    recovery_codes: Annotated[
        list[str],
        msgspec.Meta(description="Ten single-use codes, shown only now; empty when earlier ones are still unused"),
    ]
    tokens: Annotated[TokenPair, msgspec.Meta(description="This session, now at aal2, with a new refresh token")]


class RecoveryCodes(Response):
    recovery_codes: list[str]


class FactorList(Response):
    factors: list[FactorView]
    recovery_codes_left: int
    aal: Literal["aal1", "aal2"]


class RemoveFactorRequest(Request):
    password: Password
    code: Code


class ChallengeRequest(Request):
    factor_id: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-fA-F-]{36}$")] | None = None


class ChallengeFactor(Response):
    id: str
    factor_type: Literal["totp"]
    friendly_name: str | None


class MfaChallengeView(Response):
    """The password was right; a second factor is due. Not a session: no token in it."""

    mfa_required: Literal[True]
    challenge_id: str
    factors: list[ChallengeFactor]
    expires_in: int


class VerifyRequest(Request):
    challenge_id: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-fA-F-]{36}$")]
    code: Code | None = None
    recovery_code: RecoveryCodeText | None = None
