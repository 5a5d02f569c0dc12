"""Which address a request came from, for rate limits, lockouts and the relay's connection caps.

Behind ``TRUSTED_PROXIES`` reverse proxies, each appending the address it saw
to ``X-Forwarded-For``, the client is the entry that many hops from the right:
entries further left were written by the client and prove nothing. With no
trusted proxy the header is ignored and the peer address counts.
"""

from __future__ import annotations

import ipaddress


def client_address(remote_addr: str | None, forwarded_for: str | None, trusted_proxies: int) -> str:
    """The client's address, trusting ``X-Forwarded-For`` only through ``trusted_proxies`` proxies."""
    if trusted_proxies:
        forwarded = [part.strip() for part in (forwarded_for or "").split(",") if part.strip()]
        if len(forwarded) >= trusted_proxies:
            return forwarded[-trusted_proxies]
    return remote_addr or "unknown"


def address_bucket(address: str) -> str:
    """What limits count an address as: an IPv6 address by its /64, which one host commonly holds
    whole (counted one by one, each of its addresses would get a fresh allowance); IPv4 as it is."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if parsed.version == 4:
        return str(parsed)
    if parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
