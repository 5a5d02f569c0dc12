"""How many relay sockets may wait for their auth message: per client address and in all.

A socket holds memory from the handshake on, and until its first message
authenticates it, it may come from anyone. ``Admission.admit(address)`` hands
out a ``Ticket`` while both caps (``RELAY_UNAUTHENTICATED_PER_ADDRESS``,
``RELAY_UNAUTHENTICATED_MAX``) have room, and ``None`` otherwise; the ticket is
released the moment the socket authenticates or ends. Authenticated sockets
are not counted here: each is bound to a live session, and its own limits
(send queue, channels, idle timeout) apply.
"""

from __future__ import annotations


class Ticket:
    __slots__ = ("address", "admission", "released")

    def __init__(self, admission: Admission, address: str):
        self.admission = admission
        self.address = address
        self.released = False

    def release(self) -> None:
        """Give the place back (once; later calls do nothing)."""
        if not self.released:
            self.released = True
            self.admission._release(self.address)


class Admission:
    """Counts unauthenticated sockets of one relay process (one event loop: no locking needed)."""

    def __init__(self, per_address: int, total: int):
        self.per_address = per_address
        self.total = total
        self.waiting: dict[str, int] = {}
        self.count = 0
        self.refused = 0  # sockets turned away since start (shown by the relay's /healthz)

    def admit(self, address: str) -> Ticket | None:
        """A ticket for one more unauthenticated socket from ``address``, or None when a cap is reached."""
        if self.count >= self.total or self.waiting.get(address, 0) >= self.per_address:
            return None
        self.waiting[address] = self.waiting.get(address, 0) + 1
        self.count += 1
        return Ticket(self, address)

    def refusal(self, address: str) -> str:
        """Why ``admit(address)`` said no, as the close reason tells the client."""
        if self.waiting.get(address, 0) >= self.per_address:
            return "too many unauthenticated connections from this address"
        return "too many unauthenticated connections"

    def _release(self, address: str) -> None:
        self.count -= 1
        left = self.waiting[address] - 1
        if left:
            self.waiting[address] = left
        else:
            del self.waiting[address]
