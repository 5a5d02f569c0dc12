"""Which address a request came from, for rate limits, lockouts and the relay's connection caps.

Behind ``TRUSTED_PROXIES`` reverse proxies, each appending the address it saw
to ``X-Forwarded-For``, the client is the entry that many hops from the right:
entries further left were written by the client and prove nothing. With no
trusted proxy the header is ignored and the peer address counts.
"""
from __future__ import annotations


def client_address(remote_addr: str | None, forwarded_for: str | None, trusted_proxies: int) -> str:
    """The client's address, trusting ``X-Forwarded-For`` only through ``trusted_proxies`` proxies."""
    if trusted_proxies:
        forwarded = [part.strip() for part in (forwarded_for or "").split(",") if part.strip()]
        if len(forwarded) >= trusted_proxies:
            return forwarded[-trusted_proxies]
    return remote_addr or "unknown"
