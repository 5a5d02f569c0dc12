"""Access tokens: EdDSA-signed JWTs and the key ring that signs and verifies them.

``JWT_PRIVATE_KEYS`` holds one or more PEM blocks. The first private key signs;
every key (later private keys, or public-key blocks) still verifies, so a key
can be rotated by putting the new one first and dropping the old one once the
last token it signed has expired. In development a key is generated under
``var/keys/`` on first use. Each key's ``kid`` is its RFC 7638 thumbprint.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
import uuid
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALGORITHM = "EdDSA"
CLOCK_SKEW_SECONDS = 30
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z ]+)-----.+?-----END \1-----", re.S)


class InvalidToken(Exception):
    """The token must not be honoured; ``str(exc)`` says why (for logs, not for clients)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def thumbprint(key: Ed25519PublicKey) -> str:
    members = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": _b64(_raw_public(key))},
                         separators=(",", ":"), sort_keys=True)
    return _b64(hashlib.sha256(members.encode()).digest())


@dataclass(frozen=True)
class Claims:
    user_id: str
    role: str
    session_id: str
    expires_at: int


class KeyRing:
    def __init__(self, signing_key: Ed25519PrivateKey, verify_keys: list[Ed25519PublicKey]):
        self.signing_key = signing_key
        self.signing_kid = thumbprint(signing_key.public_key())
        self.public_keys = {thumbprint(k): k for k in [signing_key.public_key(), *verify_keys]}

    @classmethod
    def from_pem(cls, text: str) -> "KeyRing":
        private, public = [], []
        for match in _PEM_BLOCK.finditer(text.replace("\\n", "\n")):
            block = match.group(0).encode()
            if "PRIVATE" in match.group(1):
                key = serialization.load_pem_private_key(block, password=None)
                if not isinstance(key, Ed25519PrivateKey):
                    raise ValueError("JWT_PRIVATE_KEYS: only Ed25519 keys are accepted")
                private.append(key)
            else:
                key = serialization.load_pem_public_key(block)
                if not isinstance(key, Ed25519PublicKey):
                    raise ValueError("JWT_PRIVATE_KEYS: only Ed25519 keys are accepted")
                public.append(key)
        if not private:
            raise ValueError("JWT_PRIVATE_KEYS holds no private key")
        return cls(private[0], [k.public_key() for k in private[1:]] + public)

    @classmethod
    def from_settings(cls, settings) -> "KeyRing":
        if settings.jwt_private_keys:
            return cls.from_pem(settings.jwt_private_keys)
        if settings.production:
            raise ValueError("JWT_PRIVATE_KEYS is required in production")
        return cls.from_pem(_development_key(settings.var_dir / "keys" / "jwt-ed25519.pem"))

    def jwks(self) -> dict:
        return {"keys": [
            {"kty": "OKP", "crv": "Ed25519", "x": _b64(_raw_public(key)), "kid": kid,
             "use": "sig", "alg": ALGORITHM}
            for kid, key in self.public_keys.items()
        ]}


def generate_private_pem() -> str:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _development_key(path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(generate_private_pem())
        try:
            os.link(tmp, path)  # first writer wins when several processes start at once
        except FileExistsError:
            pass
        os.unlink(tmp)
    return path.read_text()


class TokenIssuer:
    """Signs and verifies access tokens for one issuer/audience."""

    def __init__(self, keys: KeyRing, *, issuer: str, audience: str, ttl: int, clock=time.time):
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.ttl = ttl
        self.clock = clock

    def issue(self, *, user_id, role: str, session_id) -> tuple[str, int]:
        """Return ``(token, expires_at)`` for the user's session."""
        now = int(self.clock())
        exp = now + self.ttl
        payload = {
            "iss": self.issuer, "aud": self.audience, "sub": str(user_id), "role": role,
            "sid": str(session_id), "iat": now, "nbf": now, "exp": exp, "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(payload, self.keys.signing_key, algorithm=ALGORITHM,
                           headers={"kid": self.keys.signing_kid, "typ": "at+jwt"})
        return token, exp

    def verify(self, token: str) -> Claims:
        """Verify signature, algorithm, ``kid``, ``iss``, ``aud``, ``exp``, ``nbf``; raise InvalidToken."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"malformed: {exc}") from None
        if header.get("alg") != ALGORITHM:
            raise InvalidToken(f"algorithm {header.get('alg')!r} is not accepted")
        key = self.keys.public_keys.get(header.get("kid"))
        if key is None:
            raise InvalidToken("unknown kid")
        try:
            payload = jwt.decode(
                token, key, algorithms=[ALGORITHM], audience=self.audience, issuer=self.issuer,
                # Time is checked below against the issuer's clock, so tests can move it.
                options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "sid", "role"],
                         "verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from None
        now = self.clock()
        try:
            # Servers' clocks differ a little: a token minted by one running slightly
            # ahead must still work on the others. Expiry gets no such allowance.
            if now + CLOCK_SKEW_SECONDS < payload["nbf"] or now + CLOCK_SKEW_SECONDS < payload["iat"]:
                raise InvalidToken("not yet valid")
            if now >= payload["exp"]:
                raise InvalidToken("expired")
        except TypeError:
            raise InvalidToken("malformed time claims") from None
        return Claims(user_id=payload["sub"], role=payload["role"], session_id=payload["sid"],
                      expires_at=payload["exp"])
