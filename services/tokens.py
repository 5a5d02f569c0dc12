"""Access tokens: EdDSA-signed JWTs and the key ring that signs and verifies them.

``JWT_PRIVATE_KEYS`` holds one or more PEM blocks. The first Ed25519 private key
signs; every key (later private keys, or public-key blocks) still verifies, so a
key can be rotated by putting the new one first and dropping the old one once
the last token it signed has expired. In development a key is generated under
``var/keys/`` on first use. Each key's ``kid`` is its RFC 7638 thumbprint.

The ring may also hold P-256 keys: the first P-256 private key signs the tokens
of the Supabase-compatible API as ES256, because supabase-js verifies tokens
with WebCrypto and accepts only RS256 and ES256 there. Tokens of either
algorithm are accepted everywhere; the algorithm follows the key the ``kid``
names, never the token's header.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import pathlib
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import jwt
import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from settings import Settings

ALGORITHM = "EdDSA"
COMPAT_ALGORITHM = "ES256"
# GoTrue's audience and role for signed-in users, which Supabase clients expect in the token.
COMPAT_AUDIENCE = "authenticated"
CLOCK_SKEW_SECONDS = 30
VERIFIED_CACHE_SIZE = 20000
# Ours are ~450 characters; the relay's auth message allows 4096 too.
MAX_TOKEN_CHARS = 4096
# Hearth's own claim: the session has proved a password but owes a second factor (true, or absent).
MFA_PENDING_CLAIM = "mfa_pending"
REQUIRED_CLAIMS = ("iss", "aud", "sub", "sid", "role", "iat", "nbf", "exp")
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z ]+)-----.+?-----END \1-----", re.S)


class InvalidToken(Exception):
    """The token must not be honoured; ``str(exc)`` says why (for logs, not for clients)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


PublicKey = Ed25519PublicKey | ec.EllipticCurvePublicKey


def _members(key: PublicKey) -> dict[str, str]:
    """The key's required JWK members (RFC 7638), the ones its thumbprint covers."""
    if isinstance(key, Ed25519PublicKey):
        return {"crv": "Ed25519", "kty": "OKP", "x": _b64(_raw_public(key))}
    numbers = key.public_numbers()
    return {
        "crv": "P-256",
        "kty": "EC",
        "x": _b64(numbers.x.to_bytes(32, "big")),
        "y": _b64(numbers.y.to_bytes(32, "big")),
    }


def thumbprint(key: PublicKey) -> str:
    members = json.dumps(_members(key), separators=(",", ":"), sort_keys=True)
    return _b64(hashlib.sha256(members.encode()).digest())


def _algorithm(key: PublicKey) -> str:
    return ALGORITHM if isinstance(key, Ed25519PublicKey) else COMPAT_ALGORITHM


@dataclass(frozen=True)
class Claims:
    user_id: str
    role: str
    session_id: str
    expires_at: int
    # The assurance level the session reached: aal1 (a password), aal2 (and a second factor).
    aal: str = "aal1"
    # The account has two-factor login on and this session has not proved a second factor yet:
    # it may only complete that proof (or end), nothing else (api.auth, relay.auth).
    mfa_pending: bool = False


_KEY_TYPES = "only Ed25519 and P-256 (ES256) keys are accepted"


def _accepted(key: object) -> bool:
    if isinstance(key, (Ed25519PrivateKey, Ed25519PublicKey)):
        return True
    return isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)) and isinstance(
        key.curve, ec.SECP256R1
    )


class KeyRing:
    def __init__(
        self,
        signing_key: Ed25519PrivateKey,
        verify_keys: list[PublicKey],
        compat_signing_key: ec.EllipticCurvePrivateKey | None = None,
    ) -> None:
        self.signing_key = signing_key
        self.signing_kid = thumbprint(signing_key.public_key())
        # Signs the Supabase-compatible API's tokens (ES256); None: those are signed like /v1's.
        self.compat_signing_key = compat_signing_key
        self.compat_signing_kid = thumbprint(compat_signing_key.public_key()) if compat_signing_key else None
        extra = [compat_signing_key.public_key()] if compat_signing_key else []
        self.public_keys: dict[str, PublicKey] = {
            thumbprint(k): k for k in [signing_key.public_key(), *extra, *verify_keys]
        }

    @classmethod
    def from_pem(cls, text: str) -> KeyRing:
        private: list[Any] = []
        public: list[PublicKey] = []
        for match in _PEM_BLOCK.finditer(text.replace("\\n", "\n")):
            block = match.group(0).encode()
            loaded: Any = (
                serialization.load_pem_private_key(block, password=None)
                if "PRIVATE" in match.group(1)
                else serialization.load_pem_public_key(block)
            )
            if not _accepted(loaded):
                raise ValueError(f"JWT_PRIVATE_KEYS: {_KEY_TYPES} (Ed25519 signs /v1 tokens)")
            (private if "PRIVATE" in match.group(1) else public).append(loaded)
        ed = [k for k in private if isinstance(k, Ed25519PrivateKey)]
        es = [k for k in private if isinstance(k, ec.EllipticCurvePrivateKey)]
        if not ed:
            raise ValueError("JWT_PRIVATE_KEYS holds no private key (an Ed25519 one signs /v1 tokens)")
        others = [k.public_key() for k in ed[1:] + es[1:]]
        return cls(ed[0], others + public, es[0] if es else None)

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        if settings.jwt_private_keys:
            ring = cls.from_pem(settings.jwt_private_keys)
            if settings.production and settings.supabase_compat_on and ring.compat_signing_key is None:
                raise ValueError("JWT_PRIVATE_KEYS needs a P-256 private key when SUPABASE_COMPAT is on")
            return ring
        if settings.production:
            raise ValueError("JWT_PRIVATE_KEYS is required in production")
        keys = settings.var_dir / "keys"
        return cls.from_pem(
            _development_key(keys / "jwt-ed25519.pem", generate_private_pem)
            + _development_key(keys / "jwt-es256.pem", generate_es256_pem)
        )

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {
            "keys": [
                {**_members(key), "kid": kid, "use": "sig", "alg": _algorithm(key)}
                for kid, key in self.public_keys.items()
            ]
        }


def generate_private_pem() -> str:
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )


def generate_es256_pem() -> str:
    """A P-256 private key for the Supabase-compatible API's ES256 tokens."""
    return (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )


def _development_key(path: pathlib.Path, generate: Callable[[], str]) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(generate())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)  # first writer wins when several processes start at once
        os.unlink(tmp)
    return path.read_text()


class TokenIssuer:
    """Signs and verifies access tokens for one issuer/audience."""

    def __init__(
        self, keys: KeyRing, *, issuer: str, audience: str, ttl: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.ttl = ttl
        self.clock = clock
        # Tokens already verified, by their exact text: a signature check is the
        # largest CPU cost of an authenticated request, and clients send the same
        # token for its whole life. Expiry is still checked on every use; whether
        # the session is alive is the caller's separate check.
        self._verified: dict[str, Claims] = {}

    def issue(
        self,
        *,
        user_id: uuid.UUID | str,
        role: str,
        session_id: uuid.UUID | str,
        aal: str = "aal1",
        amr: list[dict[str, Any]] | None = None,
        mfa_pending: bool = False,
    ) -> tuple[str, int]:
        """Return ``(token, expires_at)`` for the user's session, at assurance level ``aal`` proved by ``amr``.

        ``mfa_pending``: the session still owes a second factor (the token then says so).
        """
        now = int(self.clock())
        exp = now + self.ttl
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(user_id),
            "role": role,
            "sid": str(session_id),
            "iat": now,
            "nbf": now,
            "exp": exp,
            "jti": uuid.uuid4().hex,
            "aal": aal,
            "amr": amr if amr is not None else [{"method": "password", "timestamp": now}],
        }
        if mfa_pending:
            payload[MFA_PENDING_CLAIM] = True
        token = jwt.encode(
            payload, self.keys.signing_key, algorithm=ALGORITHM, headers={"kid": self.keys.signing_kid, "typ": "at+jwt"}
        )
        return token, exp

    def issue_compat(
        self,
        *,
        user_id: uuid.UUID | str,
        session_id: uuid.UUID | str,
        claims: dict[str, Any],
        mfa_pending: bool = False,
    ) -> tuple[str, int]:
        """Return ``(token, expires_at)`` in GoTrue's claim layout for the Supabase-compatible API.

        ``aud`` and ``role`` are GoTrue's ``authenticated``; ``sid`` is kept beside
        GoTrue's ``session_id`` so ``verify`` (and so ``/v1``) honours the token.
        ``claims`` adds the rest (email, phone, aal, amr, metadata); ``mfa_pending``
        as in ``issue``. Signed ES256 when the ring has a P-256 key, else like ``issue``.
        """
        now = int(self.clock())
        exp = now + self.ttl
        payload: dict[str, Any] = {
            **claims,
            "iss": self.issuer,
            "aud": COMPAT_AUDIENCE,
            "sub": str(user_id),
            "role": COMPAT_AUDIENCE,
            "sid": str(session_id),
            "session_id": str(session_id),
            "iat": now,
            "nbf": now,
            "exp": exp,
            "jti": uuid.uuid4().hex,
        }
        payload.pop(MFA_PENDING_CLAIM, None)
        if mfa_pending:
            payload[MFA_PENDING_CLAIM] = True
        key: Any = self.keys.compat_signing_key or self.keys.signing_key
        kid = self.keys.compat_signing_kid or self.keys.signing_kid
        algorithm = COMPAT_ALGORITHM if self.keys.compat_signing_key else ALGORITHM
        return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": kid, "typ": "JWT"}), exp

    def verify(self, token: str) -> Claims:
        """Verify signature, algorithm, ``kid``, ``iss``, ``aud``, ``exp``, ``nbf``; raise InvalidToken.

        PyJWT does the verification; what it said about a token is remembered
        per process (see ``_verified``), so its cost is paid once per token.
        """
        known = self._verified.get(token)
        if known is not None:
            if self.clock() >= known.expires_at:
                raise InvalidToken("expired")
            return known
        claims = self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()  # crude but bounded; a refill costs one verification per token
        self._verified[token] = claims
        return claims

    def _verify(self, token: str) -> Claims:
        # Compact serialization in the base64url alphabet, unpadded (RFC 7515), and bounded:
        # anything else is refused before it is decoded at all.
        if len(token) > MAX_TOKEN_CHARS or not _COMPACT.fullmatch(token):
            raise InvalidToken("malformed: not a compact JWS")
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self.keys.public_keys.get(kid) if isinstance(kid, str) else None
            if key is None:
                raise InvalidToken("unknown kid")
            # The algorithm is the named key's, never the token's: "none", HS256 keyed with the
            # public key and any other algorithm are refused before the key is used.
            payload = _JWT.decode(
                token, key, algorithms=[_algorithm(key)], audience=[self.audience, COMPAT_AUDIENCE], issuer=self.issuer
            )
            claims = msgspec.convert(payload, _Payload)
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"{type(exc).__name__}: {exc}") from None
        except msgspec.ValidationError as exc:
            raise InvalidToken(f"malformed claims: {exc}") from None
        # Time is checked against this issuer's clock (the one it issues with, which
        # callers may pass in), so PyJWT's own wall-clock checks are off (see _JWT).
        # Servers' clocks differ a little: a token minted by one running slightly
        # ahead must still work on the others. Expiry gets no such allowance.
        now = self.clock()
        if now + CLOCK_SKEW_SECONDS < claims.nbf or now + CLOCK_SKEW_SECONDS < claims.iat:
            raise InvalidToken("not yet valid")
        if now >= claims.exp:
            raise InvalidToken("expired")
        return Claims(
            user_id=claims.sub,
            role=claims.role,
            session_id=claims.sid,
            expires_at=claims.exp,
            aal=claims.aal,
            mfa_pending=claims.mfa_pending,
        )


_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
# Signature, algorithm, iss, aud and the presence of every claim are PyJWT's to check;
# the times are checked by TokenIssuer._verify with the issuer's clock.
_JWT = jwt.PyJWT(
    options={
        "require": list(REQUIRED_CLAIMS),
        "verify_exp": False,
        "verify_nbf": False,
        "verify_iat": False,
        "strict_aud": False,
    }
)


class _Payload(msgspec.Struct):
    """The claims a verified token must carry, with their types (other claims are ignored).

    Times are integers, as ``issue`` writes them: PyJWT's JSON parser would let
    ``NaN`` through as a float, and no comparison with NaN ever says "expired".
    """

    sub: str
    sid: str
    role: str
    exp: int
    nbf: int
    iat: int
    # Tokens from before two-factor login carry no level: a password was all they proved.
    aal: Literal["aal1", "aal2"] = "aal1"
    mfa_pending: bool = False
